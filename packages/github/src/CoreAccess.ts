/**
 * The seam through which the App acts as a repository's core user. Every GitHub repository maps
 * to the core user `gong-<repository id>` (stable across renames and transfers), who owns that
 * repository's jobs, so that core's per-user isolation and per-target privileges apply per
 * repository (buildomat-github.md §9 "Isolation in core").
 *
 * Two ways to act as that user:
 *
 * - `delegate`: buildomat's way. One core token holding the `delegate` privilege, with the header
 *   `X-Buildomat-Delegate: gong-<id>` on every request; core creates the user on demand.
 * - `repoUsers`: for a core without delegation. The core admin token creates each user once
 *   (`POST /0/users`) and the App keeps the user's token in its own database (`core_user`).
 *
 * Both give the same `Client`, so nothing else in the App knows which one is in use.
 *
 * @since 0.1.0
 */
import { Client } from "@buildomat/core"
import * as HttpClient from "@effect/platform/HttpClient"
import { Context, Data, Effect, Layer, Option } from "effect"
import { AppConfig } from "./Config.js"
import { Store } from "./Store.js"

/**
 * The header buildomat uses to act as another user (needs the `delegate` privilege).
 *
 * @since 0.1.0
 * @category constants
 */
export const DELEGATE_HEADER = "X-Buildomat-Delegate"

/**
 * The core user name for a GitHub repository id: `gong-<id>` (buildomat).
 *
 * @since 0.1.0
 * @category utils
 */
export const coreUserName = (repo: number): string => `gong-${repo}`

/**
 * The App could not get a client for a repository's core user; `message` says why.
 *
 * @since 0.1.0
 * @category errors
 */
export class CoreAccessError extends Data.TaggedError("CoreAccessError")<{ readonly message: string }> {}

/**
 * - `forRepo(id)`: a core client acting as `gong-<id>`;
 * - `url`: core's base URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface CoreAccessShape {
  readonly url: string
  readonly forRepo: (repo: number) => Effect.Effect<Client.Client, CoreAccessError>
}

/**
 * @since 0.1.0
 * @category context
 */
export class CoreAccess extends Context.Tag("@buildomat/github/CoreAccess")<CoreAccess, CoreAccessShape>() {}

/**
 * Acting through delegation: `token` must hold core's `delegate` privilege.
 *
 * @since 0.1.0
 * @category layers
 */
export const delegate = (options: { readonly url: string; readonly token: string }): Layer.Layer<CoreAccess, never, HttpClient.HttpClient> =>
  Layer.effect(
    CoreAccess,
    Effect.gen(function*() {
      const http = yield* HttpClient.HttpClient
      const clients = new Map<number, Client.Client>()
      const forRepo = (repo: number) =>
        Effect.suspend(() => {
          const c = clients.get(repo)
          if (c !== undefined) return Effect.succeed(c)
          return Client.make({ url: options.url, token: options.token, headers: { [DELEGATE_HEADER]: coreUserName(repo) } }).pipe(
            Effect.provideService(HttpClient.HttpClient, http),
            Effect.tap((c) => Effect.sync(() => clients.set(repo, c)))
          )
        })
      return { url: options.url, forRepo }
    })
  )

/**
 * Acting as per-repository users that the admin token creates; their tokens are kept in the
 * App's database. A user that exists in core but whose token the database does not have (the
 * database was lost) is an error that says so; an operator must then remove or rename it.
 *
 * @since 0.1.0
 * @category layers
 */
export const repoUsers = (
  options: { readonly url: string; readonly adminToken: string }
): Layer.Layer<CoreAccess, never, HttpClient.HttpClient | Store> =>
  Layer.effect(
    CoreAccess,
    Effect.gen(function*() {
      const http = yield* HttpClient.HttpClient
      const store = yield* Store
      const lock = yield* Effect.makeSemaphore(1)
      const clients = new Map<number, Client.Client>()
      const mk = (token: string) => Client.make({ url: options.url, token }).pipe(Effect.provideService(HttpClient.HttpClient, http))
      const admin = yield* mk(options.adminToken)
      const create = (repo: number) =>
        Effect.gen(function*() {
          const known = yield* store.getCoreUser(repo)
          if (Option.isSome(known)) return known.value.token
          const name = coreUserName(repo)
          const u = yield* admin.api.users.create({ payload: { name } }).pipe(
            Effect.mapError((e) =>
              new CoreAccessError({
                message: e._tag === "Conflict"
                  ? `core user ${name} exists, but its token is not in this App's database`
                  : `could not create core user ${name}: ${String((e as { message?: unknown }).message ?? e)}`
              })
            )
          )
          yield* store.putCoreUser(repo, name, u.token)
          return u.token
        })
      const forRepo = (repo: number) =>
        Effect.suspend(() => {
          const c = clients.get(repo)
          if (c !== undefined) return Effect.succeed(c)
          return lock.withPermits(1)(create(repo)).pipe(
            Effect.flatMap(mk),
            Effect.tap((c) => Effect.sync(() => clients.set(repo, c)))
          )
        })
      return { url: options.url, forRepo }
    })
  )

/**
 * The access the configuration asks for (`core.identity`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<CoreAccess, never, AppConfig | HttpClient.HttpClient | Store> = Layer.unwrapEffect(
  Effect.map(AppConfig, (c) =>
    c.core.identity === "delegate"
      ? delegate({ url: c.core.url, token: c.core.token })
      : repoUsers({ url: c.core.url, adminToken: c.core.token }))
)
