/**
 * Operator requests to archive or purge a job (buildomat `POST /0/admin/jobs/{job}/archive` and
 * `.../purge`, §2.4). The job archiving and purge loops serve these requests before anything they
 * would do on their own (`job.auto_archive`, `job.auto_purge`). Like buildomat's, the queues are
 * in memory: after a restart, an operator repeats a request that had not been served.
 *
 * The administrative routes that call `requestArchive` and `requestPurge` belong to the
 * administration API.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Option, Queue } from "effect"
import { BadRequest, NotFound } from "../Errors.js"

/**
 * The queue of requests.
 *
 * - `requestArchive(job)`: 404 if the job does not exist, 400 unless it is complete (buildomat);
 *   a job already archived, or already queued, is accepted and left as it is.
 * - `requestPurge(job)`: 404 if the job does not exist, 400 unless it is archived (buildomat);
 *   a job already purged, or already queued, is accepted and left as it is.
 * - `nextArchive` / `nextPurge`: the oldest request, removed from the queue.
 * - `requeueArchive(job)`: puts a request that could not be served yet at the back.
 * - `waitArchive(timeout)` / `waitPurge(timeout)`: waits for a new request, or the timeout.
 *
 * @since 0.1.0
 * @category models
 */
export interface ArchiveQueueShape {
  readonly requestArchive: (job: string) => Effect.Effect<void, NotFound | BadRequest>
  readonly requestPurge: (job: string) => Effect.Effect<void, NotFound | BadRequest>
  readonly nextArchive: Effect.Effect<Option.Option<string>>
  readonly nextPurge: Effect.Effect<Option.Option<string>>
  readonly requeueArchive: (job: string) => Effect.Effect<void>
  readonly waitArchive: (timeout: Duration.DurationInput) => Effect.Effect<void>
  readonly waitPurge: (timeout: Duration.DurationInput) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category context
 */
export class ArchiveQueue extends Context.Tag("@buildomat/core/server/ArchiveQueue")<ArchiveQueue, ArchiveQueueShape>() {}

const wakeup = Effect.map(Queue.sliding<void>(1), (q) => ({
  wake: Effect.asVoid(Queue.offer(q, undefined)),
  wait: (timeout: Duration.DurationInput) => Queue.take(q).pipe(Effect.timeoutOption(timeout), Effect.asVoid)
}))

/**
 * Makes the queue. Needs `SqlClient` to check a job's state when a request arrives.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const archives: Array<string> = []
  const purges: Array<string> = []
  const archiveWake = yield* wakeup
  const purgeWake = yield* wakeup

  const job = (id: string) =>
    sql<{ complete: number; time_archived: string | null; time_purged: string | null }>`
      SELECT complete, time_archived, time_purged FROM job WHERE id = ${id}`.pipe(
      Effect.orDie,
      Effect.flatMap((r) =>
        r[0] === undefined ? Effect.fail(new NotFound({ message: `job ${id} does not exist` })) : Effect.succeed(r[0])
      )
    )

  const requestArchive = (id: string) =>
    Effect.gen(function*() {
      const j = yield* job(id)
      if (!j.complete) return yield* Effect.fail(new BadRequest({ message: "job cannot be archived until complete" }))
      if (j.time_archived !== null || archives.includes(id)) return
      archives.push(id)
      yield* archiveWake.wake
    })

  const requestPurge = (id: string) =>
    Effect.gen(function*() {
      const j = yield* job(id)
      if (j.time_archived === null) {
        return yield* Effect.fail(new BadRequest({ message: "job cannot be purged until archived" }))
      }
      if (j.time_purged !== null || purges.includes(id)) return
      purges.push(id)
      yield* purgeWake.wake
    })

  return {
    requestArchive,
    requestPurge,
    nextArchive: Effect.sync(() => Option.fromNullable(archives.shift())),
    nextPurge: Effect.sync(() => Option.fromNullable(purges.shift())),
    requeueArchive: (id: string) => Effect.sync(() => void (archives.includes(id) || archives.push(id))),
    waitArchive: archiveWake.wait,
    waitPurge: purgeWake.wait
  } satisfies ArchiveQueueShape
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ArchiveQueue, never, SqlClient.SqlClient> = Layer.effect(ArchiveQueue, make)
