/**
 * Test harness: a real core server on a loopback port with a real SQLite file in a temp dir,
 * and a worker provider that hands each worker's bootstrap value to the test, so the test can
 * speak the agent's side of the protocol over real HTTP.
 */
import { WorkerProvider } from "@buildomat/core"
import { ArchiveQueue, Config, type Server, Testing } from "@buildomat/core/server"
import { Context, Effect, Layer, Queue } from "effect"

export const ADMIN = "test-admin-token-0123456789"

export const tempDir = (prefix = "bmat-test-") => Testing.tempDirectory(prefix)

export interface Started {
  readonly url: string
  readonly queue: ArchiveQueue.ArchiveQueueShape
  readonly requests: Queue.Queue<WorkerProvider.CreateWorkerRequest>
  readonly destroyed: Array<string>
}

/**
 * Starts a server in the current scope with a provider whose workers the test drives; `options`
 * are passed on to `Server.layer`.
 */
export const startServer = (
  dataDir: string,
  limit = 4,
  options: Omit<Server.ServerOptions, "dataDir" | "adminToken" | "host" | "port"> = {}
) =>
  Effect.gen(function*() {
    const requests = yield* Queue.unbounded<WorkerProvider.CreateWorkerRequest>()
    const destroyed: Array<string> = []
    const live = new Map<string, string>()
    const provider: WorkerProvider.WorkerProvider = {
      name: "manual",
      targets: ["default"],
      limit,
      create: (req) =>
        Effect.gen(function*() {
          live.set(`m-${req.worker}`, req.worker)
          yield* Queue.offer(requests, req)
          return { instanceId: `m-${req.worker}`, worker: req.worker }
        }),
      destroy: (id) =>
        Effect.sync(() => {
          live.delete(id)
          destroyed.push(id)
        }),
      list: Effect.sync(() => [...live].map(([instanceId, worker]) => ({ instanceId, worker })))
    }
    const ctx = yield* Testing.serveContext(
      { ...options, dataDir, adminToken: ADMIN },
      Layer.succeed(WorkerProvider.WorkerProviders, [provider])
    )
    const url = Context.get(ctx, Config.ServerUrl)
    const queue = Context.get(ctx, ArchiveQueue.ArchiveQueue)
    return { url, queue, requests, destroyed } satisfies Started
  })

/** A client for `url` with `token`. */
export const client = (url: string, token?: string) => Testing.client(url, token)

/** Creates a user through the admin API and returns a client acting as them. */
export const userClient = (url: string, name: string) => Testing.userClient(url, ADMIN, name)

/** A plain fetch, for requests the typed client cannot make (bad JSON, wrong types). */
export const raw = (url: string, path: string, init: RequestInit & { token?: string } = {}) =>
  Effect.promise(async () => {
    const headers = new Headers(init.headers)
    if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`)
    const res = await fetch(`${url}${path}`, { ...init, headers })
    const text = await res.text()
    let json: any
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: res.status, headers: res.headers, text, json }
  })

export const job = (name: string, script = "echo hello", extra: Record<string, unknown> = {}) => ({
  name,
  target: "default",
  output_rules: [],
  tasks: [{ name: "t", script, env_clear: false, env: {} }],
  ...extra
})
