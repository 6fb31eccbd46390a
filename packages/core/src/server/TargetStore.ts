/**
 * Targets: create, list, require or drop a privilege, redirect, and rename leaving a signpost
 * (buildomat §1.5). Jobs resolve the name they give through redirects at submit time
 * (`JobStore.submit`); factories and workers refer to targets by id.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import { BadRequest, Conflict, NotFound } from "../Errors.js"
import * as Ids from "../Ids.js"
import type { Target } from "../Targets.js"
import { isPrivilegeName } from "./UserStore.js"

/**
 * A `target` row.
 *
 * @since 0.1.0
 * @category models
 */
export interface TargetRow {
  readonly id: string
  readonly name: string
  readonly desc: string
  readonly redirect: string | null
  readonly privilege: string | null
}

/** The longest redirect chain resolution follows (buildomat: 32). */
const MAX_HOPS = 32

const validName = (name: string) =>
  name.length === 0 || name !== name.trim()
    ? Effect.fail(new BadRequest({ message: `invalid target name ${JSON.stringify(name)}: it must be non-empty and trimmed` }))
    : /^[A-Za-z0-9]{26}$/.test(name)
    ? Effect.fail(new BadRequest({ message: `target names must not look like ULIDs, got ${JSON.stringify(name)}` }))
    : Effect.void

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const view = (t: TargetRow): Target => ({
    id: t.id,
    name: t.name,
    desc: t.desc,
    redirect: t.redirect,
    privilege: t.privilege
  })

  const byId = (id: string) =>
    sql<TargetRow>`SELECT * FROM target WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  const byName = (name: string) =>
    sql<TargetRow>`SELECT * FROM target WHERE name = ${name}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  /** The target, or `NotFound`. */
  const get = (id: string) =>
    Effect.flatMap(
      byId(id),
      Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `target ${id} does not exist` })),
        onSome: Effect.succeed
      })
    )

  /** `GET /0/admin/targets`, ordered by id. */
  const list = sql<TargetRow>`SELECT * FROM target ORDER BY id`.pipe(Effect.map((rows) => rows.map(view)), Effect.orDie)

  /** `POST /0/admin/target`: 409 if the name is taken. */
  const create = (name: string, desc: string) =>
    Effect.gen(function*() {
      yield* validName(name)
      const id = Ids.make()
      const taken = yield* sql.withTransaction(
        Effect.gen(function*() {
          if ((yield* sql`SELECT 1 FROM target WHERE name = ${name}`).length > 0) return true
          yield* sql`INSERT INTO target ${sql.insert({ id, name, desc, redirect: null, privilege: null })}`
          return false
        })
      ).pipe(Effect.orDie)
      if (taken) return yield* Effect.fail(new Conflict({ message: `a target named ${JSON.stringify(name)} already exists` }))
      return { id }
    })

  /**
   * Makes sure a target of this name exists (for the targets in-process providers serve);
   * returns its id. An existing target is left as it is.
   */
  const ensure = (name: string, desc: string) =>
    Effect.gen(function*() {
      const t = yield* byName(name)
      if (Option.isSome(t)) return t.value.id
      const id = Ids.make()
      yield* sql`INSERT OR IGNORE INTO target ${sql.insert({ id, name, desc, redirect: null, privilege: null })}`.pipe(
        Effect.orDie
      )
      return Option.getOrElse(Option.map(yield* byName(name), (r) => r.id), () => id)
    })

  /** `PUT /0/admin/targets/{target}/require/{privilege}` (or `null`: `DELETE .../require`). */
  const require = (id: string, privilege: string | null) =>
    Effect.gen(function*() {
      if (privilege !== null && !isPrivilegeName(privilege)) {
        return yield* Effect.fail(
          new BadRequest({ message: `invalid privilege name ${JSON.stringify(privilege)}: it must match [0-9a-z._/-]+` })
        )
      }
      yield* get(id)
      yield* sql`UPDATE target SET privilege = ${privilege} WHERE id = ${id}`.pipe(Effect.orDie)
    })

  /**
   * `PUT /0/admin/targets/{target}/redirect`: `redirect` must name an existing target, and may
   * not lead back to this one (a loop would make every name on it unresolvable).
   */
  const redirect = (id: string, to: string | null) =>
    Effect.gen(function*() {
      yield* get(id)
      if (to !== null) {
        const dest = yield* byId(to)
        if (Option.isNone(dest)) {
          return yield* Effect.fail(new BadRequest({ message: `cannot redirect to target ${to}: it does not exist` }))
        }
        let cur: Option.Option<TargetRow> = dest
        for (let hops = 0; Option.isSome(cur) && hops <= MAX_HOPS; hops++) {
          if (cur.value.id === id) {
            return yield* Effect.fail(
              new BadRequest({ message: `redirecting target ${id} to ${to} would make a redirect loop` })
            )
          }
          cur = cur.value.redirect === null ? Option.none() : yield* byId(cur.value.redirect)
        }
      }
      yield* sql`UPDATE target SET redirect = ${to} WHERE id = ${id}`.pipe(Effect.orDie)
    })

  /**
   * `POST /0/admin/targets/{target}/rename`: in one transaction, renames the target and creates a
   * signpost with the old name, `signpostDesc` and the same privilege that redirects to it.
   * Returns the signpost's id. 409 if the new name is taken or is already the target's name.
   */
  const rename = (id: string, newName: string, signpostDesc: string) =>
    Effect.gen(function*() {
      yield* validName(newName)
      const t = yield* get(id)
      const signpost = Ids.make()
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          if (t.name === newName) return `target ${id} already has name ${JSON.stringify(newName)}`
          const [other] = yield* sql<{ id: string }>`SELECT id FROM target WHERE name = ${newName}`
          if (other !== undefined) return `target ${other.id} with name ${JSON.stringify(newName)} already exists`
          yield* sql`UPDATE target SET name = ${newName} WHERE id = ${id} AND name = ${t.name}`
          yield* sql`INSERT INTO target ${
            sql.insert({ id: signpost, name: t.name, desc: signpostDesc, redirect: id, privilege: t.privilege })
          }`
          return undefined
        })
      ).pipe(Effect.orDie)
      if (r !== undefined) return yield* Effect.fail(new Conflict({ message: r }))
      return { id: signpost }
    })

  return { get, byId, byName, list, create, ensure, require, redirect, rename } as const
})

/**
 * The target store.
 *
 * @since 0.1.0
 * @category context
 */
export class TargetStore extends Context.Tag("@buildomat/core/server/TargetStore")<
  TargetStore,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(TargetStore, make)
