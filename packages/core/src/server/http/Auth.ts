/**
 * Bearer-token authentication: the middleware implementations for users, administrators and workers.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Effect, Layer, Option, Redacted } from "effect"
import { AdminAuth, CurrentAdmin, FactoryAuth, UserAuth, WorkerAuth } from "../../Api.js"
import { BadRequest, Unauthorized } from "../../Errors.js"
import * as Ids from "../../Ids.js"
import { ServerConfig } from "../Config.js"
import { FactoryStore } from "../FactoryStore.js"
import * as Tokens from "../internal/tokens.js"
import { isUserName, UserStore } from "../UserStore.js"
import { WorkerStore } from "../WorkerStore.js"


/**
 * The 401 every authentication failure gets; it never says which part was wrong.
 *
 * @since 0.1.0
 * @category errors
 */
export const unauthorized = () => new Unauthorized({ message: "not authorised" })

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/**
 * User tokens, looked up by hash. With an `X-Buildomat-Delegate: <user name>` header (trimmed),
 * a user holding the `delegate` privilege acts as the named user, created if missing (buildomat
 * `require_user`); a user without it gets 401, and a name that is not a valid user name 400.
 *
 * @since 0.1.0
 * @category middleware
 */
export const UserAuthLive = Layer.effect(
  UserAuth,
  Effect.gen(function*() {
    const users = yield* UserStore
    return {
      bearer: (token) =>
        Effect.gen(function*() {
          const found = yield* users.byToken(Redacted.value(token).trim())
          if (Option.isNone(found)) return yield* Effect.fail(unauthorized())
          const u = found.value
          const req = yield* HttpServerRequest.HttpServerRequest
          const header = req.headers["x-buildomat-delegate"]
          if (header === undefined) return { id: u.id, name: u.name, privileges: u.privileges }
          if (!u.privileges.includes("delegate")) {
            yield* Effect.logWarning(`user ${u.name} tried to use delegated auth without the delegate privilege`)
            return yield* Effect.fail(unauthorized())
          }
          const name = header.trim()
          if (!isUserName(name)) {
            return yield* Effect.fail(
              new BadRequest({
                message: `X-Buildomat-Delegate: ${JSON.stringify(name)} is not a valid user name ` +
                  `(1 to 64 characters of [A-Za-z0-9._-], not shaped like a ULID)`
              })
            )
          }
          const d = yield* users.ensure(name)
          return { id: d.id, name: d.name, privileges: d.privileges }
        })
    }
  })
)

/**
 * The configured admin token (compared in constant time), or a user token.
 *
 * @since 0.1.0
 * @category middleware
 */
export const AdminAuthLive = Layer.effect(
  AdminAuth,
  Effect.gen(function*() {
    const users = yield* UserStore
    const config = yield* ServerConfig
    const adminHash = Tokens.hash(config.adminToken)
    return {
      bearer: (token) => {
        const t = Redacted.value(token).trim()
        if (t.length >= 3 && Tokens.hashesEqual(Tokens.hash(t), adminHash)) {
          return Effect.succeed({ _tag: "Root" } as const)
        }
        return users.byToken(t).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (u) => Effect.succeed({ _tag: "User", id: u.id, name: u.name, privileges: u.privileges } as const)
          }))
        )
      }
    }
  })
)

/**
 * Worker tokens bound at bootstrap; a deleted worker's token no longer works.
 *
 * @since 0.1.0
 * @category middleware
 */
export const WorkerAuthLive = Layer.effect(
  WorkerAuth,
  Effect.gen(function*() {
    const workers = yield* WorkerStore
    return {
      bearer: (token) =>
        workers.byToken(Redacted.value(token).trim()).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (w) => Effect.succeed({ id: w.id as Ids.WorkerId })
          }))
        )
    }
  })
)

/**
 * Factory tokens, looked up by hash (`POST /0/admin/factory` makes them). The records of
 * in-process providers have no token and never match.
 *
 * @since 0.1.0
 * @category middleware
 */
export const FactoryAuthLive = Layer.effect(
  FactoryAuth,
  Effect.gen(function*() {
    const factories = yield* FactoryStore
    return {
      bearer: (token) =>
        factories.byToken(Redacted.value(token).trim()).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (f) => Effect.succeed({ id: f.id as Ids.FactoryId, name: f.name })
          }))
        )
    }
  })
)

/**
 * Fails with 401 unless the administrator holds `admin.<privilege>` (or is the admin token).
 *
 * @since 0.1.0
 * @category middleware
 */
export const requireAdmin = (privilege: string) =>
  Effect.flatMap(CurrentAdmin, (a) =>
    a._tag === "Root" || a.privileges.includes(`admin.${privilege}`) ? Effect.void : Effect.fail(unauthorized()))
