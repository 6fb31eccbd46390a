/**
 * Wake-ups for the background loops. Submitting a job, a worker bootstrapping or a job completing
 * wakes the scheduler and the provisioner at once, so dispatch takes milliseconds; the loops still
 * run on a timer as a safety net.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Layer, Option, Queue } from "effect"
import { EventHub } from "./EventHub.js"

/**
 * A coalescing wake-up: many `wake`s before one `wait` count as one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Wakeup {
  readonly wake: Effect.Effect<void>
  /** Waits for a wake-up or the timeout, whichever comes first. */
  readonly wait: (timeout: Duration.DurationInput) => Effect.Effect<void>
}

const makeWakeup = Effect.map(Queue.sliding<void>(1), (q): Wakeup => ({
  wake: Effect.asVoid(Queue.offer(q, undefined)),
  wait: (timeout) => Queue.take(q).pipe(Effect.timeoutOption(timeout), Effect.map(Option.getOrUndefined), Effect.asVoid)
}))

/**
 * @since 0.1.0
 * @category context
 */
export class Signals extends Context.Tag("@buildomat/core/server/Signals")<
  Signals,
  {
    readonly scheduler: Wakeup
    readonly provisioner: Wakeup
    readonly wakeAll: Effect.Effect<void>
    /**
     * Completed when the server begins to stop (`announceStop`), before the HTTP server waits
     * for the requests in flight: long-polls and event streams then answer at once, while the
     * database is still open.
     */
    readonly stopping: Deferred.Deferred<void>
  }
>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Signals> = Layer.effect(
  Signals,
  Effect.gen(function*() {
    const scheduler = yield* makeWakeup
    const provisioner = yield* makeWakeup
    const stopping = yield* Deferred.make<void>()
    return { scheduler, provisioner, wakeAll: Effect.zipRight(scheduler.wake, provisioner.wake), stopping }
  })
)

/**
 * Completes `Signals.stopping` and closes the `EventHub` (every waiter answers) when its scope
 * closes: the server puts it among the layers released first, before the HTTP server and the
 * stores.
 *
 * @since 0.1.0
 * @category layers
 */
export const announceStop: Layer.Layer<never, never, Signals | EventHub> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const s = yield* Signals
    const hub = yield* EventHub
    yield* Effect.addFinalizer(() => Effect.zipRight(Deferred.succeed(s.stopping, undefined), hub.close))
  })
)
