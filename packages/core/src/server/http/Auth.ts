/**
 * Bearer-token authentication: the middleware implementations for users, administrators and workers.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, Redacted } from "effect"
import { AdminAuth, CurrentAdmin, UserAuth, WorkerAuth } from "../../Api.js"
import { Unauthorized } from "../../Errors.js"
import * as Ids from "../../Ids.js"
import { ServerConfig } from "../Config.js"
import * as Tokens from "../internal/tokens.js"
import { UserStore } from "../UserStore.js"
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
 * User tokens, looked up by hash.
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
        users.byToken(Redacted.value(token).trim()).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (u) => Effect.succeed({ id: u.id, name: u.name, privileges: u.privileges })
          }))
        )
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
 * Fails with 401 unless the administrator holds `admin.<privilege>` (or is the admin token).
 *
 * @since 0.1.0
 * @category middleware
 */
export const requireAdmin = (privilege: string) =>
  Effect.flatMap(CurrentAdmin, (a) =>
    a._tag === "Root" || a.privileges.includes(`admin.${privilege}`) ? Effect.void : Effect.fail(unauthorized()))
