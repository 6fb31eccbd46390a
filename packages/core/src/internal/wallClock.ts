/**
 * Waiting on the wall clock, whatever `Clock` the fiber has: processes, sockets and the event
 * loop live in real time, and a `TestClock` in a test would never end an `Effect.sleep` while it
 * waits on them.
 *
 * @internal
 */
import { Effect } from "effect"

/** A pause of `ms` milliseconds on the wall clock (`setTimeout`), interruptible. */
export const sleep = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })
