/**
 * Helpers for testing code that embeds the server: a scoped temporary directory, a server on a
 * free loopback port, and clients that stay usable for the whole scope. Used by this repository's
 * own tests; handy for anyone testing an integration against a real server.
 *
 * @since 0.1.0
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Layer, Scope } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Client from "../Client.js"
import { WorkerProviders } from "../WorkerProvider.js"
import { ServerUrl } from "./Config.js"
import * as Server from "./Server.js"

/**
 * A temporary directory, removed with everything in it when the scope closes.
 *
 * @since 0.1.0
 * @category testing
 */
export const tempDirectory = (prefix = "buildomat-test-") =>
  Effect.acquireRelease(
    Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), prefix))),
    (d) => Effect.sync(() => NodeFs.rmSync(d, { recursive: true, force: true }))
  )

/**
 * Starts a server on `127.0.0.1` and a free port for the rest of the scope, with the given
 * providers layer; returns what the server layer provides (`ServerUrl`, `ArchiveQueue`).
 * Closing the scope stops the server.
 *
 * @since 0.1.0
 * @category testing
 */
export const serveContext = <E>(
  options: Omit<Server.ServerOptions, "host" | "port">,
  providers: Layer.Layer<WorkerProviders, E>
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.Scope
    return yield* Layer.buildWithScope(
      Server.layer({ ...options, host: "127.0.0.1", port: 0 }).pipe(Layer.provide(providers)),
      scope
    )
  })

/**
 * Starts a server on `127.0.0.1` and a free port for the rest of the scope, with the given
 * providers layer; returns its URL. Closing the scope stops the server (and, through their own
 * scopes, the providers' workers).
 *
 * @since 0.1.0
 * @category testing
 */
export const serve = <E>(
  options: Omit<Server.ServerOptions, "host" | "port">,
  providers: Layer.Layer<WorkerProviders, E>
) => Effect.map(serveContext(options, providers), (ctx) => Context.get(ctx, ServerUrl))

/**
 * An HTTP client layer on undici's global dispatcher, which outlives any one scope, so clients
 * made with it keep working after the effect that made them ends.
 *
 * @since 0.1.0
 * @category testing
 */
export const httpClientLayer = NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
  Layer.provide(NodeHttpClient.dispatcherLayerGlobal)
)

/**
 * A client for `url` acting with `token`.
 *
 * @since 0.1.0
 * @category testing
 */
export const client = (url: string, token?: string) =>
  Client.make({ url, token }).pipe(Effect.provide(httpClientLayer))

/**
 * Creates a user with the admin token and returns it with a client acting as that user.
 *
 * @since 0.1.0
 * @category testing
 */
export const userClient = (url: string, adminToken: string, name: string) =>
  Effect.gen(function*() {
    const admin = yield* client(url, adminToken)
    const user = yield* admin.api.users.create({ payload: { name } })
    return { user, c: yield* client(url, user.token) }
  })
