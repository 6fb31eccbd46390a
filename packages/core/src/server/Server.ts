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
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, FiberRef, Layer } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { ServeError } from "@effect/platform/HttpServerError"
import { BuildomatApi } from "../Api.js"
import type { WorkerProviders } from "../WorkerProvider.js"
import * as ArchiveQueue from "./ArchiveQueue.js"
import * as Background from "./Background.js"
import * as ChunkCleanup from "./ChunkCleanup.js"
import { DEFAULT_MAX_BYTES_PER_FILE, ServerConfig, ServerUrl } from "./Config.js"
import * as Control from "./Control.js"
import * as Database from "./Database.js"
import * as EventHub from "./EventHub.js"
import * as FactoryStore from "./FactoryStore.js"
import * as HeapGrowth from "./HeapGrowth.js"
import * as GracefulHttp from "./internal/httpServer.js"
import {
  AdminAuthLive,
  AdminLive,
  BootstrapLive,
  errorMapping,
  FactoriesLive,
  FactoryAuthLive,
  FactoryLive,
  JobsLive,
  TargetsLive,
  UserAuthLive,
  UsersLive,
  WorkerAuthLive,
  WorkerDiagnosticsLive,
  WorkerExtLive,
  WorkerLive
} from "./Http.js"
import { JobInputsLive, JobOutputsLive, JobStoreLive, PublicLive, WorkerJobLive } from "./http/JobModel.js"
import * as Inputs from "./Inputs.js"
import * as JobValues from "./JobValues.js"
import * as Publishing from "./Publishing.js"
import { agentFileLayer } from "./http/AgentFile.js"
import * as FileArchive from "./FileArchive.js"
import * as JobArchive from "./JobArchive.js"
import * as JobStore from "./JobStore.js"
import * as ObjectStore from "./ObjectStore.js"
import * as Provisioner from "./Provisioner.js"
import * as Purge from "./Purge.js"
import * as Scheduler from "./Scheduler.js"
import * as Signals from "./Signals.js"
import * as TargetStore from "./TargetStore.js"
import * as Uploads from "./Uploads.js"
import * as UserStore from "./UserStore.js"
import * as WorkerAdmin from "./WorkerAdmin.js"
import * as WorkerCleanup from "./WorkerCleanup.js"
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
 * - `maxRuntime`: how long a job may run once assigned, in seconds (buildomat
 *   `job.max_runtime`; default 24 hours).
 * - `hold`: start with new worker creation on hold (buildomat `admin.hold`; default false).
 * - `bootTimeoutMs`: how long an in-process provider's worker may take to bootstrap, in
 *   milliseconds from its creation, when the provider sets no `bootTimeoutMs`; default 30
 *   minutes (buildomat's "never bootstrapped" rule).
 * - `targets`: target names to make at start if missing, besides those of the in-process
 *   providers (for providers run by separate factory processes).
 * - `agentBundle`: the agent bundle served at `GET /file/agent` and `/file/agent.gz`; default
 *   `@buildomat/agent/bundle` resolved next to core.
 * - `objectStore`: another object store layer for the primary tier, where uploads are committed
 *   (for example `S3ObjectStore.layer`).
 * - `archiveStore`: an archive tier (for example `S3ObjectStore.layerArchive`, buildomat's
 *   arrangement): files of completed jobs are copied there and job archives written there; reads
 *   fall back to it. Without one, the primary store is the only one.
 * - `background`: what the background loops do on their own (`Background.BackgroundOptions`:
 *   `jobAutoArchive`, `jobAutoPurge`, `purgeAfter`, `purgeDelay`, `fileAutoArchive`), by default
 *   buildomat's.
 * - `shutdownGraceMs`: when the server stops, how long requests still in flight (a download, an
 *   upload) may take to complete before their connections are cut, in milliseconds; default
 *   10,000. Idle keep-alive connections are closed at once, and each connection in flight as
 *   soon as its response is complete, so a stop does not wait on clients to drop their
 *   connections.
 * - `keepAliveTimeoutMs`: how long an idle keep-alive connection is kept open, in milliseconds
 *   (Node's `server.keepAliveTimeout`); default Node's, 5,000. Behind a proxy or load balancer,
 *   set it above the proxy's own idle timeout.
 * - `tracing`: whether the server makes spans (one per HTTP request, one per SQL statement) with
 *   the current `Tracer`; default false. Effect's default tracer keeps them nowhere, and on a
 *   2-core machine they cost about a millisecond on the way from a submit to the agent that
 *   runs it; turn them on with a tracer that exports them (`@effect/opentelemetry`).
 * - `heapGrowingPercent`: V8's heap growing factor for the process while the server runs, as
 *   `HeapGrowth.layer` sets it; default 100 (the heap may grow to twice its live size before a
 *   full garbage collection). Without it, large uploads drive back-to-back full collections and
 *   run at about two thirds of the speed (see `HeapGrowth`). 0 leaves V8's dynamic factor; a
 *   process started with `--heap-growing-percent` keeps its own.
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
  readonly maxRuntime?: number | undefined
  readonly objectStore?: Layer.Layer<ObjectStore.ObjectStore> | undefined
  readonly hold?: boolean | undefined
  readonly agentBundle?: string | undefined
  readonly bootTimeoutMs?: number | undefined
  readonly targets?: ReadonlyArray<string> | undefined
  readonly archiveStore?: Layer.Layer<ObjectStore.ArchiveStore> | undefined
  readonly background?: Partial<Background.BackgroundOptions> | undefined
  readonly shutdownGraceMs?: number | undefined
  readonly keepAliveTimeoutMs?: number | undefined
  readonly tracing?: boolean | undefined
  readonly heapGrowingPercent?: number | undefined
}

/**
 * The HTTP application alone (API, OpenAPI document at `/openapi.json`, error mapping), for
 * embedding in another server. Needs the stores and `ServerConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const ApiLive = HttpApiBuilder.api(BuildomatApi).pipe(
  Layer.provide([JobsLive, UsersLive, BootstrapLive, WorkerLive, AdminLive, TargetsLive, FactoriesLive, FactoryLive]),
  Layer.provide([JobInputsLive, JobStoreLive, JobOutputsLive, PublicLive, WorkerJobLive]),
  Layer.provide([WorkerExtLive, WorkerDiagnosticsLive]),
  Layer.provide([UserAuthLive, AdminAuthLive, WorkerAuthLive, FactoryAuthLive])
)

/**
 * The whole server as a layer. It provides `ServerUrl` (where it is listening) and `ArchiveQueue`
 * (to ask for jobs to be archived or purged from code), and requires `WorkerProviders`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: ServerOptions
): Layer.Layer<ServerUrl | ArchiveQueue.ArchiveQueue, ServeError, WorkerProviders> => {
  const dataDir = NodePath.resolve(options.dataDir)
  const config = Layer.sync(ServerConfig, () => {
    NodeFs.mkdirSync(dataDir, { recursive: true })
    return {
      dataDir,
      adminToken: options.adminToken,
      maxBytesPerFile: options.maxBytesPerFile ?? DEFAULT_MAX_BYTES_PER_FILE,
      publicUrl: options.publicUrl,
      maxRuntime: options.maxRuntime,
      hold: options.hold,
      bootTimeoutMs: options.bootTimeoutMs,
      targets: options.targets
    }
  })
  const http = NodeHttpServer.layer(
    () => GracefulHttp.make({ graceMs: options.shutdownGraceMs ?? 10_000, keepAliveTimeoutMs: options.keepAliveTimeoutMs }),
    { host: options.host ?? "127.0.0.1", port: options.port ?? 9979 }
  )
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
  const storage = ObjectStore.layerTiers.pipe(
    Layer.provide(options.archiveStore !== undefined ? Layer.merge(objects, options.archiveStore) : objects)
  )
  const jobModel = Layer.mergeAll(Inputs.layer, JobValues.layer, Publishing.layer)
  const stores = Layer.mergeAll(jobModel, FactoryStore.layer, JobArchive.layer).pipe(
    Layer.provideMerge(
      Layer.mergeAll(UserStore.layer, WorkerStore.layer, Uploads.layer, TargetStore.layer, WorkerAdmin.layer)
    ),
    Layer.provideMerge(JobStore.layer),
    Layer.provideMerge(Control.layer),
    Layer.provideMerge(
      Layer.mergeAll(EventHub.layer, Signals.layer, storage, ArchiveQueue.layer, Background.layerConfig(options.background))
    ),
    Layer.provideMerge(Layer.merge(db, config))
  )
  const serve = HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.middleware(errorMapping)),
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
    Layer.provide(agentFileLayer({ bundle: options.agentBundle })),
    Layer.provide(ApiLive)
  )
  const loops = Layer.mergeAll(
    Scheduler.layer,
    Provisioner.layer,
    WorkerCleanup.layer,
    FileArchive.layer,
    JobArchive.loopLayer,
    Purge.layer,
    ChunkCleanup.layer
  )
  const exposed = Layer.effect(ArchiveQueue.ArchiveQueue, ArchiveQueue.ArchiveQueue)
  // Released first: long-polls and event streams end before the HTTP server waits for them.
  const stopping = Signals.announceStop
  // The stores (the database) are built before the HTTP server and released after it: a stop
  // lets the requests in flight finish (`shutdownGraceMs`) while the database is still open.
  const server = Layer.mergeAll(serve, loops, exposed, stopping, HeapGrowth.layer(options.heapGrowingPercent)).pipe(
    Layer.provideMerge(url),
    Layer.provideMerge(http),
    Layer.provide(stores.pipe(Layer.provide(NodeContext.layer)))
  )
  // Only while the server's layers are built: its fibers (request handlers, loops) inherit it,
  // the program around them keeps its own setting.
  return options.tracing === true ? server : Layer.locally(server, FiberRef.currentTracerEnabled, false)
}
