/**
 * Users and their privileges. Tokens are shown once at creation and stored as SHA-256 hashes.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import { BadRequest, Conflict, NotFound } from "../Errors.js"
import * as Ids from "../Ids.js"
import { now } from "../Schemas.js"
import type { User } from "../Users.js"
import * as Tokens from "./internal/tokens.js"

/**
 * A user as the server sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface UserRecord {
  readonly id: Ids.UserId
  readonly name: string
  readonly time_create: string
  readonly privileges: ReadonlyArray<string>
}

/**
 * Whether a string is a valid privilege name: non-empty, only `[0-9a-z._/-]` (buildomat
 * `user_privilege_grant`). Privileges buildomat gives meaning to: `delegate`, `admin.<x>`, and
 * whatever privilege a target requires.
 *
 * @since 0.1.0
 * @category utils
 */
export const isPrivilegeName = (s: string): boolean => /^[0-9a-z._/-]+$/.test(s)

/**
 * Whether a string may name a user: 1 to 64 characters of `[A-Za-z0-9._-]`, not shaped like a
 * ULID (the rule of `Users.UserName`).
 *
 * @since 0.1.0
 * @category utils
 */
export const isUserName = (s: string): boolean => /^[A-Za-z0-9._-]{1,64}$/.test(s) && !/^[A-Za-z0-9]{26}$/.test(s)

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const withPrivileges = (rows: ReadonlyArray<{ id: string; name: string; time_create: string }>) =>
    Effect.gen(function*() {
      if (rows.length === 0) return []
      const privs = yield* sql<{ user: string; privilege: string }>`
        SELECT user, privilege FROM user_privilege WHERE ${sql.in("user", rows.map((r) => r.id))} ORDER BY privilege`
      return rows.map((r): UserRecord => ({
        id: r.id as Ids.UserId,
        name: r.name,
        time_create: r.time_create,
        privileges: privs.filter((p) => p.user === r.id).map((p) => p.privilege)
      }))
    })

  /** `POST /0/users`: a new user with a fresh 48-character token (409 if the name is taken). */
  const create = (name: string) =>
    Effect.gen(function*() {
      const token = Tokens.generate(48)
      const id = Ids.make()
      const taken = yield* sql.withTransaction(
        Effect.gen(function*() {
          const existing = yield* sql`SELECT 1 FROM user WHERE name = ${name}`
          if (existing.length > 0) return true
          yield* sql`INSERT INTO user ${sql.insert({ id, name, token_hash: Tokens.hash(token), time_create: now() })}`
          return false
        })
      ).pipe(Effect.orDie)
      if (taken) return yield* Effect.fail(new Conflict({ message: `a user named ${JSON.stringify(name)} already exists` }))
      return { id, name, token }
    })

  /** `GET /0/users`, optionally only the user of that name. */
  const list = (name: string | undefined) =>
    (name === undefined
      ? sql<{ id: string; name: string; time_create: string }>`SELECT id, name, time_create FROM user ORDER BY id`
      : sql<{ id: string; name: string; time_create: string }>`SELECT id, name, time_create FROM user WHERE name = ${name}`).pipe(
        Effect.flatMap(withPrivileges),
        Effect.map((us): ReadonlyArray<User> => us),
        Effect.orDie
      )

  /** `GET /0/users/{user}`. */
  const get = (id: string) =>
    sql<{ id: string; name: string; time_create: string }>`SELECT id, name, time_create FROM user WHERE id = ${id}`.pipe(
      Effect.flatMap(withPrivileges),
      Effect.orDie,
      Effect.flatMap((us) =>
        us[0] === undefined ? Effect.fail(new NotFound({ message: `user ${id} does not exist` })) : Effect.succeed(us[0])
      )
    )

  // The users of the tokens seen lately, by token hash, so that authenticating a request reads
  // nothing. Only `grant` and `revoke` change what is kept here (users are never deleted and
  // their tokens never change); they clear it, and `generation` keeps a lookup that read before
  // their write from storing what it read.
  const known = new Map<string, UserRecord>()
  let generation = 0
  const forget = Effect.sync(() => {
    generation++
    known.clear()
  })

  /** The user a bearer token belongs to (one statement, or none for a token seen lately). */
  const byToken = (token: string) =>
    Effect.suspend(() => {
      const h = Tokens.hash(token)
      const hit = known.get(h)
      if (hit !== undefined) return Effect.succeed(Option.some(hit))
      const seen = generation
      return sql<{ id: string; name: string; time_create: string; token_hash: string; privileges: string }>`
        SELECT id, name, time_create, token_hash,
          (SELECT json_group_array(privilege) FROM
            (SELECT privilege FROM user_privilege WHERE user = u.id ORDER BY privilege)) AS privileges
        FROM user u WHERE token_hash = ${h}`.pipe(
        Effect.map(([r]) => {
          if (r === undefined || !Tokens.hashesEqual(r.token_hash, h)) return Option.none<UserRecord>()
          const u: UserRecord = {
            id: r.id as Ids.UserId,
            name: r.name,
            time_create: r.time_create,
            privileges: JSON.parse(r.privileges)
          }
          if (seen === generation) {
            if (known.size >= 4096) known.clear()
            known.set(h, u)
          }
          return Option.some(u)
        })
      )
    }).pipe(Effect.orDie)

  /**
   * `PUT /0/users/{user}/privilege/{privilege}`: idempotent. 400 for an invalid privilege name,
   * 404 for an unknown user.
   */
  const grant = (id: string, privilege: string) =>
    Effect.gen(function*() {
      if (!isPrivilegeName(privilege)) {
        return yield* Effect.fail(
          new BadRequest({ message: `invalid privilege name ${JSON.stringify(privilege)}: it must match [0-9a-z._/-]+` })
        )
      }
      yield* get(id)
      yield* sql`INSERT OR IGNORE INTO user_privilege (user, privilege) VALUES (${id}, ${privilege})`.pipe(
        Effect.ensuring(forget),
        Effect.orDie
      )
    })

  /** `DELETE /0/users/{user}/privilege/{privilege}`: idempotent; 404 for an unknown user. */
  const revoke = (id: string, privilege: string) =>
    Effect.gen(function*() {
      yield* get(id)
      yield* sql`DELETE FROM user_privilege WHERE user = ${id} AND privilege = ${privilege}`.pipe(
        Effect.ensuring(forget),
        Effect.orDie
      )
    })

  /**
   * The user of that name, created (with a token nobody is shown) if missing: what a
   * `delegate` user's `X-Buildomat-Delegate` header acts as (buildomat `user_ensure`).
   */
  const ensure = (name: string) =>
    Effect.gen(function*() {
      const find = sql<{ id: string; name: string; time_create: string }>`
        SELECT id, name, time_create FROM user WHERE name = ${name}`
      yield* sql.withTransaction(
        Effect.gen(function*() {
          if ((yield* find).length > 0) return
          yield* sql`INSERT INTO user ${
            sql.insert({ id: Ids.make(), name, token_hash: Tokens.hash(Tokens.generate(48)), time_create: now() })
          }`
        })
      )
      const [u] = yield* find.pipe(Effect.flatMap(withPrivileges))
      return u!
    }).pipe(Effect.orDie)

  return { create, list, get, byToken, grant, revoke, ensure } as const
})

/**
 * @since 0.1.0
 * @category context
 */
export class UserStore extends Context.Tag("@buildomat/core/server/UserStore")<
  UserStore,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(UserStore, make)
