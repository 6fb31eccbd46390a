/**
 * A doorbell for the background loop: the webhook rings it when a delivery is stored, so that
 * processing starts in milliseconds instead of at the next poll.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Queue } from "effect"

/**
 * - `wake`: ring (rings coalesce);
 * - `wait(ms)`: until rung, or `ms` milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface WakeupShape {
  readonly wake: Effect.Effect<void>
  readonly wait: (ms: number) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category context
 */
export class Wakeup extends Context.Tag("@buildomat/github/Wakeup")<Wakeup, WakeupShape>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(
  Wakeup,
  Effect.gen(function*() {
    const q = yield* Queue.sliding<void>(1)
    return {
      wake: Queue.offer(q, undefined).pipe(Effect.asVoid),
      wait: (ms: number) => Queue.take(q).pipe(Effect.timeoutOption(Duration.millis(ms)), Effect.asVoid)
    }
  })
)
