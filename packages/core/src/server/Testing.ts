/**
 * Helpers for testing code that embeds the server: a scoped temporary directory, a server on a
 * free loopback port, and clients that stay usable for the whole scope. Used by this repository's
 * own tests; handy for anyone testing an integration against a real server.
 *
 * @since 0.1.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Context, Effect, Layer, Option, Queue, Scope } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Client from "../Client.js"
import { sleep } from "../internal/wallClock.js"
import { type CreateWorkerRequest, type WorkerProvider, WorkerProviders } from "../WorkerProvider.js"
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

/**
 * Runs `check` every 20 ms (wall clock) until it yields a value, for at most `timeoutMs`
 * (default 10 s); dies saying what it waited for otherwise.
 *
 * @since 0.1.0
 * @category testing
 */
export const eventually = <A, E, R>(what: string, check: Effect.Effect<Option.Option<A>, E, R>, timeoutMs = 10_000) =>
  Effect.gen(function*() {
    const end = Date.now() + timeoutMs
    for (;;) {
      const r = yield* check
      if (Option.isSome(r)) return r.value
      if (Date.now() > end) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* sleep(20)
    }
  })

/**
 * A worker provider whose machines are the test: `create` records the request (with its
 * bootstrap secret) on `requests`, so that the test can play the agent over real HTTP
 * (`bootstrapAgent`). `machines` (instance id → worker) is what `list` reports; pass the same map
 * to a server started again to model machines that outlive a restart, as EC2 instances do.
 *
 * @since 0.1.0
 * @category testing
 */
export const manualProvider = (options?: {
  readonly name?: string | undefined
  readonly targets?: ReadonlyArray<string> | undefined
  readonly limit?: number | undefined
  readonly machines?: Map<string, string> | undefined
}) =>
  Effect.gen(function*() {
    const requests = yield* Queue.unbounded<CreateWorkerRequest>()
    const destroyed: Array<string> = []
    const machines = options?.machines ?? new Map<string, string>()
    const provider: WorkerProvider = {
      name: options?.name ?? "manual",
      targets: options?.targets ?? ["default"],
      limit: options?.limit ?? 4,
      create: (req) =>
        Effect.gen(function*() {
          machines.set(`m-${req.worker}`, req.worker)
          yield* Queue.offer(requests, req)
          return { instanceId: `m-${req.worker}`, worker: req.worker }
        }),
      destroy: (id) =>
        Effect.sync(() => {
          machines.delete(id)
          destroyed.push(id)
        }),
      list: Effect.sync(() => [...machines].map(([instanceId, worker]) => ({ instanceId, worker })))
    }
    return { provider, layer: Layer.succeed(WorkerProviders, [provider]), requests, destroyed, machines }
  })

/**
 * Plays the agent of the worker `req` asked for: chooses a token and bootstraps with the request's
 * secret (retrying until the server has associated the worker). Returns a client acting as the
 * worker, its id and token.
 *
 * @since 0.1.0
 * @category testing
 */
export const bootstrapAgent = (url: string, req: Pick<CreateWorkerRequest, "bootstrap">) =>
  Effect.gen(function*() {
    const token = Crypto.randomBytes(32).toString("hex")
    const c = yield* client(url, token)
    const boot = yield* eventually(
      "the worker to bootstrap",
      c.api.bootstrap.bootstrap({ payload: { bootstrap: req.bootstrap, token } }).pipe(Effect.option)
    )
    return { c, id: boot.id, token }
  })

/**
 * Pings as the agent `c` until the server assigns it a job; the job.
 *
 * @since 0.1.0
 * @category testing
 */
export const awaitJob = (c: Effect.Effect.Success<ReturnType<typeof client>>) =>
  eventually("a job to be assigned", Effect.map(c.api.worker.ping(), (p) => Option.fromNullable(p.job)))
