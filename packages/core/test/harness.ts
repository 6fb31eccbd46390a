/**
 * Test harness: a real core server on a loopback port with a real SQLite file in a temp dir,
 * and a worker provider that hands each worker's bootstrap value to the test, so the test can
 * speak the agent's side of the protocol over real HTTP.
 */
import { WorkerProvider } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import { ArchiveQueue, Config, type Server, Testing } from "@buildomat/core/server"
import { Context, Effect, Queue, Schedule } from "effect"
import * as Crypto from "node:crypto"

export const ADMIN = "test-admin-token-0123456789"

export const tempDir = (prefix = "bmat-test-") => Testing.tempDirectory(prefix)

const machinesOf = new Map<string, Map<string, string>>()

export interface Started {
  readonly url: string
  readonly queue: ArchiveQueue.ArchiveQueueShape
  readonly requests: Queue.Queue<WorkerProvider.CreateWorkerRequest>
  readonly destroyed: Array<string>
}

/**
 * Starts a server in the current scope with a provider whose workers the test drives; `options`
 * adds server options (`maxRuntime`, `objectStore`, ...).
 */
export const startServer = (
  dataDir: string,
  limit = 4,
  options: Partial<Omit<Server.ServerOptions, "dataDir" | "adminToken" | "host" | "port">> = {}
) =>
  Effect.gen(function*() {
    // Machines outlive a server restart (as EC2 instances do), so the provider's view of them is
    // kept per data directory.
    const machines = machinesOf.get(dataDir) ?? new Map<string, string>()
    machinesOf.set(dataDir, machines)
    const { layer, requests, destroyed } = yield* Testing.manualProvider({ limit, machines })
    const ctx = yield* Testing.serveContext(
      { ...options, dataDir, adminToken: ADMIN },
      layer
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

/** Plays the agent: bootstraps the next worker the provider was asked for (retrying until associated). */
export const agentFor = (url: string, requests: Queue.Queue<WorkerProvider.CreateWorkerRequest>) =>
  Effect.gen(function*() {
    const req = yield* Queue.take(requests)
    const token = Crypto.randomBytes(32).toString("hex")
    const c = yield* client(url, token)
    const boot = yield* c.api.bootstrap.bootstrap({ payload: { bootstrap: req.bootstrap, token } }).pipe(
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds")))
    )
    return { c, id: boot.id, req, token }
  })

/** Pings as the agent until a job is assigned; dies after about 5 s. */
export const waitForJob = (c: Client.Client) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      const p = yield* c.api.worker.ping()
      if (p.job) return p.job
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die("no job assigned")
  })

/** Polls `check` every 20 ms until it returns true; dies after `seconds`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, seconds = 10) =>
  Effect.gen(function*() {
    const deadline = Date.now() + seconds * 1000
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("20 millis")
    }
  })
