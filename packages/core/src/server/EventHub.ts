/**
 * In-memory fan-out of "something changed" per job, so that watchers wake the moment an event is
 * stored or the job's state changes instead of polling. The database stays the source of truth:
 * a watcher takes a signal, reads what is new, and waits on the signal only if nothing was new,
 * so no change between the read and the wait is missed.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, Layer } from "effect"

/**
 * The hub: `signal(job)` returns a `Deferred` completed by the next `notify(job)`.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventHub {
  readonly notify: (job: string) => Effect.Effect<void>
  readonly signal: (job: string) => Effect.Effect<Deferred.Deferred<void>>
}

/**
 * The hub key for "something changed for this worker" (a job assigned to it, the worker recycled,
 * deleted, held or released), which the long-poll `GET /ext/0/worker/ping` waits on. Job keys are
 * bare job ids; worker keys never collide with them.
 *
 * @since 0.1.0
 * @category utils
 */
export const workerKey = (worker: string): string => `worker/${worker}`

/**
 * @since 0.1.0
 * @category context
 */
export const EventHub = Context.GenericTag<EventHub>("@buildomat/core/server/EventHub")

/**
 * Makes a hub. Entries exist only while someone waits, so memory follows the number of watchers,
 * not the number of jobs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<EventHub> = Effect.sync(() => {
  const waiting = new Map<string, Deferred.Deferred<void>>()
  return {
    notify: (job) =>
      Effect.suspend(() => {
        const d = waiting.get(job)
        if (d === undefined) return Effect.void
        waiting.delete(job)
        return Deferred.succeed(d, undefined)
      }),
    signal: (job) =>
      Effect.suspend(() => {
        const d = waiting.get(job)
        if (d !== undefined) return Effect.succeed(d)
        return Deferred.make<void>().pipe(Effect.tap((n) => Effect.sync(() => waiting.set(job, n))))
      })
  }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<EventHub> = Layer.effect(EventHub, make)
