/**
 * The worker cleanup loop (buildomat §5.2 and the "never bootstrapped" rule of §5.1), every 47 s.
 * Each step is its own function so that more can be added (the job `max_runtime` check is
 * another step of this loop in buildomat):
 *
 * - `recycleSurplus`: a bootstrapped worker that never got a job and is older than 30 min is
 *   recycled ("surplus worker").
 * - `recycleNeverBootstrapped`: a worker whose agent never bootstrapped, 30 min after it was
 *   created, is recycled.
 * - `failUnresponsive`: a bootstrapped worker that has not pinged for 10 min fails: its running
 *   job fails, and the worker is held (for an operator to look at) and recycled. Only once the
 *   server has itself been up for 10 min, so that agents can reach a restarted server first.
 *
 * Held, recycled and deleted workers are left alone. Times are read on the `Clock`.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Layer } from "effect"
import { loop, ServerStart } from "./Background.js"
import { JobStore } from "./JobStore.js"
import { WorkerStore } from "./WorkerStore.js"

/**
 * How often the loop runs (buildomat: 47 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const INTERVAL = Duration.seconds(47)

/**
 * Age after which an idle bootstrapped worker is surplus (buildomat: 30 min from creation).
 *
 * @since 0.1.0
 * @category constants
 */
export const SURPLUS_AFTER = Duration.minutes(30)

/**
 * Time a worker has to bootstrap after its creation (buildomat: 30 min).
 *
 * @since 0.1.0
 * @category constants
 */
export const BOOTSTRAP_TIMEOUT = Duration.minutes(30)

/**
 * Ping silence after which an agent is unresponsive (buildomat: 10 min); also the uptime the
 * server waits for before applying it.
 *
 * @since 0.1.0
 * @category constants
 */
export const PING_TIMEOUT = Duration.minutes(10)

const cutoff = (age: Duration.Duration) =>
  Effect.map(Clock.currentTimeMillis, (now) => new Date(now - Duration.toMillis(age)).toISOString())

/**
 * Recycles bootstrapped workers that never got a job and were created more than
 * `SURPLUS_AFTER` ago. Returns their ids.
 *
 * @since 0.1.0
 * @category steps
 */
export const recycleSurplus = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const workers = yield* WorkerStore
  const before = yield* cutoff(SURPLUS_AFTER)
  const rows = yield* sql<{ id: string }>`
    SELECT w.id FROM worker w
    WHERE w.deleted = 0 AND w.recycle = 0 AND w.hold_time IS NULL AND w.token_hash IS NOT NULL
      AND w.time_create < ${before}
      AND NOT EXISTS (SELECT 1 FROM job j WHERE j.worker = w.id)`
  for (const w of rows) {
    yield* Effect.logInfo(`recycling surplus worker ${w.id}: no job after ${Duration.format(SURPLUS_AFTER)}`)
    yield* workers.recycle(w.id)
  }
  return rows.map((r) => r.id)
}).pipe(Effect.orDie, Effect.withSpan("WorkerCleanup.recycleSurplus"))

/**
 * Recycles workers whose agent has not bootstrapped `BOOTSTRAP_TIMEOUT` after their creation.
 * Returns their ids.
 *
 * @since 0.1.0
 * @category steps
 */
export const recycleNeverBootstrapped = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const workers = yield* WorkerStore
  const before = yield* cutoff(BOOTSTRAP_TIMEOUT)
  const rows = yield* sql<{ id: string }>`
    SELECT id FROM worker
    WHERE deleted = 0 AND recycle = 0 AND hold_time IS NULL AND token_hash IS NULL AND time_create < ${before}`
  for (const w of rows) {
    yield* Effect.logWarning(`recycling worker ${w.id}: never bootstrapped within ${Duration.format(BOOTSTRAP_TIMEOUT)}`)
    yield* workers.recycle(w.id)
  }
  return rows.map((r) => r.id)
}).pipe(Effect.orDie, Effect.withSpan("WorkerCleanup.recycleNeverBootstrapped"))

/**
 * Fails bootstrapped workers that have not pinged for `PING_TIMEOUT`, once the server has been up
 * that long: the running job (if any) gets a control event saying why and fails, and the worker
 * is held and recycled (`WorkerStore.fail`, as for an agent reporting a fatal error). Returns
 * their ids.
 *
 * @since 0.1.0
 * @category steps
 */
export const failUnresponsive = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const workers = yield* WorkerStore
  const jobs = yield* JobStore
  const started = yield* ServerStart
  const now = yield* Clock.currentTimeMillis
  if (now - started < Duration.toMillis(PING_TIMEOUT)) return []
  const before = yield* cutoff(PING_TIMEOUT)
  const rows = yield* sql<{ id: string; lastping: string | null }>`
    SELECT id, lastping FROM worker
    WHERE deleted = 0 AND recycle = 0 AND hold_time IS NULL AND token_hash IS NOT NULL
      AND lastping IS NOT NULL AND lastping < ${before}`
  for (const w of rows) {
    const silent = Math.round((now - Date.parse(w.lastping!)) / 1000)
    yield* Effect.logWarning(`worker ${w.id} has not pinged for ${silent} s: agent became unresponsive`)
    const [j] = yield* sql<{ id: string }>`SELECT id FROM job WHERE worker = ${w.id} AND complete = 0`
    if (j !== undefined) {
      yield* jobs.control(j.id, `worker ${w.id} has not pinged for ${silent} seconds; agent became unresponsive`).pipe(
        sql.withTransaction
      )
    }
    yield* workers.fail(w.id, "agent became unresponsive")
  }
  return rows.map((r) => r.id)
}).pipe(Effect.orDie, Effect.withSpan("WorkerCleanup.failUnresponsive"))

/**
 * One pass: every step in order.
 *
 * @since 0.1.0
 * @category loops
 */
export const cleanupOnce = Effect.gen(function*() {
  const surplus = yield* recycleSurplus
  const unbooted = yield* recycleNeverBootstrapped
  const unresponsive = yield* failUnresponsive
  return { surplus, unbooted, unresponsive }
}).pipe(Effect.withSpan("WorkerCleanup.cleanupOnce"))

/**
 * The loop: a pass at start, then every `INTERVAL`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(loop("worker cleanup", cleanupOnce, INTERVAL))
