/**
 * The operator's archive and purge requests (`POST /0/admin/jobs/{job}/archive` and
 * `.../purge`): validated as buildomat does, then queued in memory for the archive and purge
 * loops, which take from here before they pick jobs of their own (buildomat §5.4, §5.5). As in
 * buildomat the queues do not survive a restart; a job already queued is not queued twice.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Ref } from "effect"
import { BadRequest, NotFound } from "../Errors.js"
import { JobStore } from "./JobStore.js"

/**
 * - `requestArchive(job)`: queues a job for archiving. Fails with `NotFound` for an unknown job
 *   and `BadRequest` ("job cannot be archived until complete") for one not yet complete.
 * - `requestPurge(job)`: queues a job for purging. Fails with `NotFound` for an unknown job and
 *   `BadRequest` ("job cannot be purged until archived") for one not yet archived.
 * - `takeArchive` / `takePurge`: the oldest request not yet taken, if any (for the loops; they
 *   must check the job's state again, since it may have changed since the request).
 * - `pendingArchive` / `pendingPurge`: the job ids waiting, oldest first.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdminQueueShape {
  readonly requestArchive: (job: string) => Effect.Effect<void, NotFound | BadRequest>
  readonly requestPurge: (job: string) => Effect.Effect<void, NotFound | BadRequest>
  readonly takeArchive: Effect.Effect<Option.Option<string>>
  readonly takePurge: Effect.Effect<Option.Option<string>>
  readonly pendingArchive: Effect.Effect<ReadonlyArray<string>>
  readonly pendingPurge: Effect.Effect<ReadonlyArray<string>>
}

/**
 * @since 0.1.0
 * @category context
 */
export class AdminQueue extends Context.Tag("@buildomat/core/server/AdminQueue")<AdminQueue, AdminQueueShape>() {}

const enqueue = (q: Ref.Ref<ReadonlyArray<string>>, id: string) =>
  Ref.update(q, (xs) => (xs.includes(id) ? xs : [...xs, id]))

const take = (q: Ref.Ref<ReadonlyArray<string>>) =>
  Ref.modify(q, (xs): [Option.Option<string>, ReadonlyArray<string>] =>
    xs.length === 0 ? [Option.none(), xs] : [Option.some(xs[0]!), xs.slice(1)])

/**
 * Needs `JobStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<AdminQueue, never, JobStore> = Layer.effect(
  AdminQueue,
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const archive = yield* Ref.make<ReadonlyArray<string>>([])
    const purge = yield* Ref.make<ReadonlyArray<string>>([])
    return {
      requestArchive: (id) =>
        Effect.gen(function*() {
          const j = yield* jobs.mustExist(id)
          if (!j.complete) return yield* Effect.fail(new BadRequest({ message: "job cannot be archived until complete" }))
          yield* enqueue(archive, j.id)
          yield* Effect.logInfo(`admin: requested archive of job ${j.id}`)
        }),
      requestPurge: (id) =>
        Effect.gen(function*() {
          const j = yield* jobs.mustExist(id)
          if (j.time_archived === null) {
            return yield* Effect.fail(new BadRequest({ message: "job cannot be purged until archived" }))
          }
          yield* enqueue(purge, j.id)
          yield* Effect.logInfo(`admin: requested purge of job ${j.id}`)
        }),
      takeArchive: take(archive),
      takePurge: take(purge),
      pendingArchive: Ref.get(archive),
      pendingPurge: Ref.get(purge)
    }
  })
)
