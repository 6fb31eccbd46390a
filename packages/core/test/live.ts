/**
 * Helpers for tests that run the real server under `TestClock` (`it.scoped`): real-time waits
 * (the TestClock does not move by itself), advancing the clock step by step so that each loop pass
 * finishes its I/O before the next, reading the SQLite file directly, and playing the agent's side
 * of the protocol over real HTTP.
 */
import { type Client, Ids } from "@buildomat/core"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Duration, Effect, Queue, TestClock } from "effect"
import * as NodePath from "node:path"
import { Testing } from "@buildomat/core/server"

/** Waits `ms` of real time, whatever the Clock. */
export const realSleep = (ms: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, ms)))

/** Lets the server's fibers and I/O run for a moment of real time. */
export const settle = realSleep(40)

/**
 * Moves the TestClock forward by `total`, `step` at a time, letting each step's work finish, and
 * running `each` after every step (an agent that keeps pinging, for example).
 */
export const advance = <E = never, R = never>(
  total: Duration.DurationInput,
  step: Duration.DurationInput = "10 seconds",
  each: Effect.Effect<unknown, E, R> = Effect.void
) =>
  Effect.gen(function*() {
    let left = Duration.toMillis(total)
    const s = Duration.toMillis(step)
    while (left > 0) {
      const d = Math.min(s, left)
      yield* TestClock.adjust(Duration.millis(d))
      yield* settle
      yield* each
      left -= d
    }
  })

/** Polls `check` in real time until it returns `Some`, or dies after `timeoutMs`. */
export const eventually = Testing.eventually

/** Runs a query on the server's database file (a second connection; SQLite WAL allows it). */
export const query = <A extends object = Record<string, unknown>>(dataDir: string, text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, params as Array<any>)).pipe(
    Effect.provide(SqliteClient.layer({ filename: NodePath.join(dataDir, "data.sqlite3") })),
    Effect.orDie
  )

/** The agent of the next worker the manual provider was asked for, bootstrapped. */
export const bootAgent = (url: string, requests: Queue.Dequeue<{ readonly bootstrap: string; readonly worker: string }>) =>
  Effect.flatMap(eventually("a worker to be created", Queue.poll(requests)), (req) => bootAgentFor(url, req))

/** Bootstraps the agent of a worker the manual provider was asked for. */
export const bootAgentFor = (url: string, req: { readonly bootstrap: string; readonly worker: string }) =>
  Effect.map(Testing.bootstrapAgent(url, req), (a) => ({ ...a, req }))

/** Pings until the worker is given a job. */
export const assigned = (c: Client.Client) => Testing.awaitJob(c)

/**
 * Plays the agent for one job: `lines` events on task 0, one output per entry of `outputs`
 * (uploaded in 1 MiB chunks and committed), task and job completion.
 */
export const runAssigned = (
  c: Client.Client,
  job: string,
  opts: { readonly lines?: number; readonly outputs?: ReadonlyArray<{ path: string; data: Uint8Array }>; readonly failed?: boolean } = {}
) =>
  Effect.gen(function*() {
    const j = job as any
    const n = opts.lines ?? 0
    const time = new Date().toISOString()
    for (let i = 0; i < n; i += 100) {
      const batch = Array.from({ length: Math.min(100, n - i) }, (_, k) => ({
        stream: (i + k) % 3 === 0 ? "stderr" : "stdout",
        time,
        payload: `line ${i + k} ${"é".repeat((i + k) % 5)}`,
        task: 0
      }))
      yield* c.api.worker.append({ path: { job: j }, payload: batch })
    }
    for (const o of opts.outputs ?? []) {
      const chunks: Array<string> = []
      for (let off = 0; off < o.data.length || (off === 0 && chunks.length === 0); off += 1024 * 1024) {
        const r = yield* c.api.worker.chunk({ path: { job: j }, payload: o.data.subarray(off, off + 1024 * 1024) })
        chunks.push(r.id)
        if (o.data.length === 0) break
      }
      const add = { path: o.path, size: o.data.length, chunks, commit_id: Ids.make() }
      let res = yield* c.api.worker.addOutput({ path: { job: j }, payload: add })
      while (!res.complete) res = yield* c.api.worker.addOutput({ path: { job: j }, payload: add })
      if (res.error != null) return yield* Effect.die(new Error(`commit failed: ${res.error}`))
    }
    yield* c.api.worker.taskComplete({ path: { job: j, task: 0 }, payload: { failed: opts.failed ?? false } })
    yield* c.api.worker.jobComplete({ path: { job: j }, payload: { failed: opts.failed ?? false } })
  })
