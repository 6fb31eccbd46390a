/**
 * Two steps of the assignment loop (`Scheduler`) for the job model:
 *
 * - `waitersOnce` (buildomat §5.1 step 3, `job_waiters_one`): releases `waiting` jobs whose
 *   dependencies are satisfied and whose inputs are all uploaded, and fails those whose
 *   dependencies never can be.
 * - `maxRuntimeOnce` (buildomat §5.2, `worker_cleanup`): aborts jobs that have run longer than
 *   `job.max_runtime` by recycling their worker; the assignment loop then fails them.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import * as Ids from "../Ids.js"
import { now } from "../Schemas.js"
import { DEFAULT_MAX_RUNTIME, ServerConfig } from "./Config.js"
import { EventHub } from "./EventHub.js"
import { renderDuration } from "./internal/jobModel.js"
import { JobStore } from "./JobStore.js"

interface DependRow {
  readonly name: string
  readonly prior_job: string
  readonly copy_outputs: number
  readonly on_failed: number
  readonly on_completed: number
}

/**
 * Whether an output path can become part of an input name: absolute, and no empty, `.` or `..`
 * component (so `/input/<dep>/<path>` stays under `/input/<dep>`).
 *
 * @since 0.1.0
 * @category utils
 */
export const copyablePath = (path: string): boolean =>
  path.startsWith("/") && !path.includes("\0") && path.split("/").slice(1).every((p) => p !== "" && p !== "." && p !== "..")

/**
 * One pass over the waiting jobs, oldest first (at most 10 000). For each:
 *
 * - cancelled: completed as failed;
 * - each unsatisfied dependency whose prior job is complete: satisfied if the prior job ended as
 *   the dependency asks (`on_completed`, `on_failed`), copying the prior job's outputs as inputs
 *   named `<dep>/<path>` when `copy_outputs`; otherwise the job fails with a control event saying
 *   why (buildomat's messages). A prior job still running leaves the job waiting;
 * - all dependencies satisfied and every input uploaded: the job is released (`ready` time,
 *   control event `job dependencies complete; ready to run (waiting for <duration>)`).
 *
 * Returns the number of jobs released or failed.
 *
 * @since 0.1.0
 * @category loops
 */
export const waitersOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobStore
  const hub = yield* EventHub

  const fail = (job: string, message: string) =>
    Effect.gen(function*() {
      yield* jobs.control(job, message).pipe(sql.withTransaction)
      yield* jobs.complete(job, true).pipe(Effect.catchAll(() => Effect.void))
    })

  /** Satisfies a dependency in one transaction; returns a failure message if its outputs cannot be copied. */
  const satisfy = (job: string, d: DependRow) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const [j] = yield* sql<{ waiting: number; complete: number }>`SELECT waiting, complete FROM job WHERE id = ${job}`
        if (j === undefined || !j.waiting || j.complete) return Option.none<string>()
        const [cur] = yield* sql<{ satisfied: number }>`
          SELECT satisfied FROM job_depend WHERE job = ${job} AND name = ${d.name}`
        if (cur === undefined || cur.satisfied) return Option.none<string>()
        if (d.copy_outputs) {
          const outputs = yield* sql<{ path: string; id: string }>`
            SELECT path, id FROM job_output WHERE job = ${d.prior_job} ORDER BY id`
          const bad = outputs.find((o) => !copyablePath(o.path))
          if (bad !== undefined) {
            return Option.some(
              `this job depends on job ${d.prior_job} (${d.name}), whose output ${JSON.stringify(bad.path)} ` +
                `cannot be copied as an input (it could escape /input/${d.name}); failing job`
            )
          }
          for (const o of outputs) {
            yield* sql`INSERT OR REPLACE INTO job_input ${
              sql.insert({ job, name: `${d.name}${o.path}`, id: o.id, other_job: d.prior_job })
            }`
          }
        }
        yield* sql`UPDATE job_depend SET satisfied = 1 WHERE job = ${job} AND name = ${d.name}`
        return Option.none<string>()
      })
    )

  const wakeup = (job: string) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const [j] = yield* sql<{ waiting: number }>`SELECT waiting FROM job WHERE id = ${job} AND complete = 0`
        if (j === undefined || !j.waiting) return false
        const t = now()
        yield* jobs.setTime(job, "ready", t)
        const [submit] = yield* sql<{ time: string }>`SELECT time FROM job_time WHERE job = ${job} AND name = 'submit'`
        const since = submit !== undefined ? Date.parse(submit.time) : Ids.timestamp(job)
        yield* jobs.control(job, `job dependencies complete; ready to run (waiting for ${renderDuration(Date.parse(t) - since)})`)
        yield* sql`UPDATE job SET waiting = 0 WHERE id = ${job} AND waiting = 1`
        return true
      })
    )

  let changed = 0
  const waiting = yield* sql<{ id: string; cancelled: number }>`
    SELECT id, cancelled FROM job WHERE waiting = 1 AND complete = 0 ORDER BY id LIMIT 10000`
  job: for (const j of waiting) {
    if (j.cancelled) {
      yield* jobs.complete(j.id, true).pipe(Effect.catchAll(() => Effect.void))
      changed++
      continue
    }
    const depends = yield* sql<DependRow>`
      SELECT name, prior_job, copy_outputs, on_failed, on_completed FROM job_depend
      WHERE job = ${j.id} AND satisfied = 0 ORDER BY name`
    for (const d of depends) {
      const [prior] = yield* sql<{ complete: number; failed: number }>`
        SELECT complete, failed FROM job WHERE id = ${d.prior_job}`
      let failure: string | undefined
      if (prior === undefined) {
        failure = `this job depends on job ${d.prior_job} (${d.name}) which has been deleted; failing job`
      } else if (!prior.complete) {
        continue job
      } else if (prior.failed ? d.on_failed : d.on_completed) {
        failure = Option.getOrUndefined(yield* satisfy(j.id, d))
      } else if (prior.failed) {
        failure = `this job depends on job ${d.prior_job} (${d.name}) completing, but it has failed; failing job`
      } else {
        failure = `this job depends on job ${d.prior_job} (${d.name}) failing but it has completed; failing job`
      }
      if (failure !== undefined) {
        yield* fail(j.id, failure)
        changed++
        continue job
      }
    }
    const missing = yield* sql`SELECT 1 FROM job_input WHERE job = ${j.id} AND id IS NULL LIMIT 1`
    if (missing.length > 0) continue
    if (yield* wakeup(j.id)) {
      yield* hub.notify(j.id)
      changed++
    }
  }
  return changed
}).pipe(Effect.orDie, Effect.withSpan("Waiters.waitersOnce"))

/**
 * Aborts jobs running longer than `job.max_runtime` seconds since they were assigned: a control
 * event `job duration N exceeds M seconds; aborting` and the worker recycled (buildomat). Held,
 * recycled and deleted workers are left alone, as buildomat's cleanup loop does. Returns the
 * number of jobs aborted.
 *
 * @since 0.1.0
 * @category loops
 */
export const maxRuntimeOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobStore
  const hub = yield* EventHub
  const config = yield* ServerConfig
  const max = config.maxRuntime ?? DEFAULT_MAX_RUNTIME
  const running = yield* sql<{ id: string; worker: string; assigned: string }>`
    SELECT j.id AS id, j.worker AS worker, t.time AS assigned
    FROM job j JOIN worker w ON w.id = j.worker JOIN job_time t ON t.job = j.id AND t.name = 'assigned'
    WHERE j.complete = 0 AND w.deleted = 0 AND w.recycle = 0 AND w.hold_time IS NULL`
  let aborted = 0
  for (const r of running) {
    const age = Math.floor((Date.now() - Date.parse(r.assigned)) / 1000)
    if (!(age > max)) continue
    yield* sql.withTransaction(
      Effect.gen(function*() {
        yield* jobs.control(r.id, `job duration ${age} exceeds ${max} seconds; aborting`)
        yield* sql`UPDATE worker SET recycle = 1 WHERE id = ${r.worker} AND deleted = 0`
      })
    )
    yield* Effect.logWarning(`job ${r.id} duration ${age} exceeds ${max} seconds; recycling worker ${r.worker}`)
    yield* hub.notify(r.id)
    aborted++
  }
  return aborted
}).pipe(Effect.orDie, Effect.withSpan("Waiters.maxRuntimeOnce"))
