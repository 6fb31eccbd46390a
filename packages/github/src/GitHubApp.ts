/**
 * The GitHub App as one layer: its database, the GitHub and core clients, the HTTP server with
 * the webhook and the pages, and the background loop. Give it a `GitHubAppConfig` and launch it,
 * alone or next to a core server:
 *
 * ```ts
 * const config = yield* Config.fromTable(toml.github, dir, { coreUrl, coreToken: adminToken })
 * Layer.launch(GitHubApp.layer(config)).pipe(NodeRuntime.runMain)
 * ```
 *
 * The loop (buildomat's `bgtask`): process every ready delivery in order, then step every suite
 * in `created`, `planned` or `running`, oldest first, then sleep `pollIntervalMs` or until a
 * new delivery rings. A step that fails is logged and tried again on the next pass.
 *
 * @since 0.1.0
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import { Context, Effect, Layer, Option } from "effect"
import { createServer } from "node:http"
import * as Checks from "./Checks.js"
import type { GitHubAppConfig } from "./Config.js"
import { AppConfig } from "./Config.js"
import * as CoreAccess from "./CoreAccess.js"
import * as Database from "./Database.js"
import * as Deliveries from "./Deliveries.js"
import * as GitHubApi from "./GitHubApi.js"
import * as Pages from "./Pages.js"
import * as Store from "./Store.js"
import * as Wakeup from "./Wakeup.js"

/**
 * Where the App's HTTP server listens (its base URL, without a trailing `/`).
 *
 * @since 0.1.0
 * @category context
 */
export class AppUrl extends Context.Tag("@buildomat/github/GitHubApp/AppUrl")<AppUrl, string>() {}

/** How many steps one suite may take in one pass, so that a new suite reaches its jobs at once. */
const STEPS_PER_PASS = 4

/**
 * The background loop as an effect that runs forever. Needs the App's services.
 *
 * @since 0.1.0
 * @category loops
 */
export const loop = Effect.gen(function*() {
  const deliveries = yield* Deliveries.Deliveries
  const checks = yield* Checks.Checks
  const store = yield* Store.Store
  const wakeup = yield* Wakeup.Wakeup
  const config = yield* AppConfig
  const pass = Effect.gen(function*() {
    yield* deliveries.processAll
    for (const first of yield* store.activeSuites) {
      let cs = first
      for (let step = 0; step < STEPS_PER_PASS; step++) {
        const before = cs.state
        const ok = yield* checks.processSuite(cs).pipe(
          Effect.as(true),
          Effect.catchAllCause((cause) =>
            Effect.logWarning(`suite ${cs.id} (${cs.state}): ${Checks.errorText(cause._tag === "Fail" ? cause.error : cause)}`).pipe(
              Effect.as(false)
            )
          )
        )
        if (!ok) break
        const after = yield* store.getSuite(cs.id)
        if (Option.isNone(after) || after.value.state === before || !["created", "planned", "running"].includes(after.value.state)) break
        cs = after.value
      }
    }
  }).pipe(Effect.catchAllCause((cause) => Effect.logError("background pass failed", cause)))
  return yield* Effect.forever(pass.pipe(Effect.zipRight(wakeup.wait(config.pollIntervalMs))))
})

/**
 * The App's services (without the HTTP server and the loop), for a given `AppConfig` and
 * `HttpClient`: `Store`, `Wakeup`, `GitHubApi`, `CoreAccess`, `Checks`, `Deliveries`.
 *
 * @since 0.1.0
 * @category layers
 */
export const services = (databasePath: string) => {
  const store = Store.layer.pipe(Layer.provideMerge(Database.layer(databasePath)))
  const base = Layer.mergeAll(store, Wakeup.layer, GitHubApi.layer)
  const access = CoreAccess.layer.pipe(Layer.provideMerge(base))
  const checks = Checks.layer.pipe(Layer.provideMerge(access))
  return Deliveries.layer.pipe(Layer.provideMerge(checks))
}

/**
 * The whole App: HTTP server on `host:port`, services, loop. Provides `AppUrl`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: GitHubAppConfig): Layer.Layer<AppUrl, ServeError> => {
  const server = NodeHttpServer.layer(createServer, { host: config.host, port: config.port })
  const url = Layer.effect(
    AppUrl,
    Effect.gen(function*() {
      const s = yield* HttpServer.HttpServer
      const a = s.address
      if (a._tag === "UnixAddress") return `http://unix:${a.path}`
      const host = a.hostname === "0.0.0.0" || a.hostname === "::" ? "127.0.0.1" : a.hostname
      return `http://${host.includes(":") ? `[${host}]` : host}:${a.port}`
    })
  )
  const appConfig = Layer.effect(
    AppConfig,
    Effect.map(AppUrl, (u) => ({ ...config, baseUrl: config.baseUrl ?? u }))
  )
  const env = services(config.databasePath).pipe(
    Layer.provideMerge(Layer.merge(appConfig, NodeHttpClient.layerUndici))
  )
  const http = Layer.unwrapEffect(Effect.map(Pages.router, (router) => HttpServer.serve(router)))
  const background = Layer.scopedDiscard(
    Effect.gen(function*() {
      const gh = yield* GitHubApi.GitHubApi
      yield* gh.app<{ slug?: string; name?: string }>("GET /app").pipe(
        Effect.tap((r) => Effect.logInfo(`GitHub App ${r.data.slug ?? r.data.name ?? config.appId}`)),
        Effect.catchAll((e) => Effect.logWarning(`GET /app failed (is the App id and key right?): ${e.message}`)),
        Effect.forkScoped
      )
      yield* Effect.forkScoped(loop)
    })
  )
  return Layer.mergeAll(http, background).pipe(
    Layer.provide(env),
    Layer.provideMerge(url),
    Layer.provide(server)
  )
}
