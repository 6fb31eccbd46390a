/**
 * The assignment loop (buildomat §5.1): fails cancelled jobs, aborts jobs past `max_runtime`,
 * fails jobs whose worker went away, releases waiting jobs (`Waiters`), and hands queued jobs to
 * free workers of their target, oldest job first. It runs when woken
 * (submit, bootstrap, completion, cancel) and at least once a second. A job submitted while a
 * free worker of its target waits, and no older job queues for it, is assigned by the submit
 * itself (`JobStore.submit`), in the same transaction.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { EventHub, workerKey } from "./EventHub.js"
import { JobStore } from "./JobStore.js"
import { Signals } from "./Signals.js"
import { maxRuntimeOnce, waitersOnce } from "./Waiters.js"

/**
 * One pass of the assignment loop. Returns the number of jobs assigned.
 *
 * @since 0.1.0
 * @category loops
 */
export const assignOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobStore
  const hub = yield* EventHub
  const signals = yield* Signals

  const cancelled = yield* sql<{ id: string; worker: string | null }>`
    SELECT id, worker FROM job WHERE complete = 0 AND cancelled = 1`
  for (const j of cancelled) {
    if (j.worker !== null) {
      yield* sql`UPDATE worker SET recycle = 1 WHERE id = ${j.worker} AND deleted = 0`
      yield* hub.notify(workerKey(j.worker))
    }
    yield* jobs.complete(j.id, true).pipe(Effect.catchAll(() => Effect.void))
  }

  // Jobs past `job.max_runtime` have their worker recycled, so the next step fails them.
  yield* maxRuntimeOnce

  const orphaned = yield* sql<{ id: string }>`
    SELECT j.id FROM job j JOIN worker w ON w.id = j.worker
    WHERE j.complete = 0 AND (w.deleted = 1 OR w.recycle = 1)`
  for (const j of orphaned) {
    yield* jobs.control(j.id, "worker failed without completing job").pipe(sql.withTransaction)
    yield* jobs.complete(j.id, true).pipe(Effect.catchAll(() => Effect.void))
  }

  // Waiting jobs whose inputs and dependencies are all there become queued (or fail).
  const woke = yield* waitersOnce

  const assigned = yield* sql.withTransaction(
    Effect.gen(function*() {
      const queued = yield* jobs.queued(10000)
      if (queued.length === 0) return []
      const free = yield* jobs.freeWorkers()
      const byTarget = new Map<string, Array<(typeof free)[number]>>()
      for (const w of free) {
        const list = byTarget.get(w.target) ?? []
        list.push(w)
        byTarget.set(w.target, list)
      }
      const done: Array<{ readonly job: string; readonly worker: string }> = []
      for (const j of queued) {
        const w = byTarget.get(j.target_id)?.shift()
        if (w === undefined) continue
        yield* jobs.assign(j.id, w)
        done.push({ job: j.id, worker: w.id })
      }
      return done
    })
  )
  for (const a of assigned) yield* jobs.announceAssigned(a.job, a.worker)
  if (assigned.length > 0 || cancelled.length > 0 || orphaned.length > 0 || woke > 0) yield* signals.provisioner.wake
  return assigned.length
}).pipe(Effect.orDie, Effect.withSpan("Scheduler.assignOnce"))

/**
 * The loop as a layer: runs `assignOnce` whenever woken and every second, for as long as the
 * layer lives. A failing pass is logged and the loop goes on.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const signals = yield* Signals
    yield* assignOnce.pipe(
      Effect.catchAllCause((c) => Effect.logError("assignment pass failed", c)),
      Effect.zipRight(signals.scheduler.wait("1 second")),
      Effect.forever,
      Effect.forkScoped
    )
  })
)
