/**
 * The core server, composed from its layers: the SQLite database, the object store, the stores,
 * the HTTP API with authentication, the scheduler and the provisioning loop. Provide
 * `WorkerProviders` (for example `LocalProvider.layer(...)` from `@buildomat/provider-local`)
 * and launch it.
 *
 * ```ts
 * const Main = Server.layer({ dataDir: "./data", adminToken, port: 9979 }).pipe(
 *   Layer.provide(LocalProvider.layer({ scratchRoot: "./data/workers" }))
 * )
 * Layer.launch(Main).pipe(NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 */
import { HttpApiBuilder, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import { createServer } from "node:http"
import * as NodePath from "node:path"
import type { ServeError } from "@effect/platform/HttpServerError"
import { BuildomatApi } from "../Api.js"
import type { WorkerProviders } from "../WorkerProvider.js"
import { DEFAULT_MAX_BYTES_PER_FILE, ServerConfig, ServerUrl } from "./Config.js"
import * as Database from "./Database.js"
import * as EventHub from "./EventHub.js"
import {
  AdminAuthLive,
  BootstrapLive,
  errorMapping,
  JobsLive,
  UserAuthLive,
  UsersLive,
  WorkerAuthLive,
  WorkerDiagnosticsLive,
  WorkerExtLive,
  WorkerJobStoreInterimLive,
  WorkerLive
} from "./Http.js"
import * as JobStore from "./JobStore.js"
import * as ObjectStore from "./ObjectStore.js"
import * as Provisioner from "./Provisioner.js"
import * as Scheduler from "./Scheduler.js"
import * as Signals from "./Signals.js"
import * as Uploads from "./Uploads.js"
import * as UserStore from "./UserStore.js"
import * as WorkerStore from "./WorkerStore.js"

/**
 * How to run a server.
 *
 * - `dataDir`: created if missing; holds `data.sqlite3`, `chunk/` and (unless `objectStore` is
 *   given) `objects/`.
 * - `adminToken`: the global admin bearer token.
 * - `host`/`port`: where to listen (default `127.0.0.1:9979`; port 0 picks a free port).
 * - `publicUrl`: the URL agents and clients use, if not the listening address.
 * - `maxBytesPerFile`: the largest output, in bytes (default 1 GiB).
 * - `objectStore`: another object store layer (for example S3).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions {
  readonly dataDir: string
  readonly adminToken: string
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly publicUrl?: string | undefined
  readonly maxBytesPerFile?: number | undefined
  readonly objectStore?: Layer.Layer<ObjectStore.ObjectStore> | undefined
}

/**
 * The HTTP application alone (API, OpenAPI document at `/openapi.json`, error mapping), for
 * embedding in another server. Needs the stores and `ServerConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const ApiLive = HttpApiBuilder.api(BuildomatApi).pipe(
  Layer.provide([JobsLive, UsersLive, BootstrapLive, WorkerLive]),
  Layer.provide([WorkerExtLive, WorkerDiagnosticsLive, WorkerJobStoreInterimLive]),
  Layer.provide([UserAuthLive, AdminAuthLive, WorkerAuthLive])
)

/**
 * The whole server as a layer. It provides `ServerUrl` (where it is listening) and requires
 * `WorkerProviders`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ServerOptions): Layer.Layer<ServerUrl, ServeError, WorkerProviders> => {
  const dataDir = NodePath.resolve(options.dataDir)
  const config = Layer.sync(ServerConfig, () => {
    NodeFs.mkdirSync(dataDir, { recursive: true })
    return {
      dataDir,
      adminToken: options.adminToken,
      maxBytesPerFile: options.maxBytesPerFile ?? DEFAULT_MAX_BYTES_PER_FILE,
      publicUrl: options.publicUrl
    }
  })
  const http = NodeHttpServer.layer(createServer, { host: options.host ?? "127.0.0.1", port: options.port ?? 9979 })
  const url = Layer.effect(
    ServerUrl,
    Effect.gen(function*() {
      if (options.publicUrl !== undefined) return options.publicUrl.replace(/\/+$/, "")
      const server = yield* HttpServer.HttpServer
      const a = server.address
      if (a._tag === "UnixAddress") return `http://unix:${a.path}`
      const host = a.hostname === "0.0.0.0" || a.hostname === "::" ? "127.0.0.1" : a.hostname
      return `http://${host.includes(":") ? `[${host}]` : host}:${a.port}`
    })
  )
  const db = Layer.suspend(() => {
    NodeFs.mkdirSync(dataDir, { recursive: true })
    return Database.layer(NodePath.join(dataDir, "data.sqlite3"))
  })
  const objects = options.objectStore ?? ObjectStore.layerFileSystem(NodePath.join(dataDir, "objects"))
  const stores = Layer.mergeAll(UserStore.layer, WorkerStore.layer, Uploads.layer).pipe(
    Layer.provideMerge(JobStore.layer),
    Layer.provideMerge(Layer.mergeAll(EventHub.layer, Signals.layer, objects)),
    Layer.provideMerge(Layer.merge(db, config))
  )
  const serve = HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.middleware(errorMapping)),
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
    Layer.provide(ApiLive)
  )
  const loops = Layer.mergeAll(Scheduler.layer, Provisioner.layer)
  return Layer.mergeAll(serve, loops).pipe(
    Layer.provideMerge(url),
    Layer.provide(stores),
    Layer.provideMerge(http)
  )
}
