/**
 * In-memory fan-out of "something changed" per job, so that watchers wake the moment an event is
 * stored or the job's state changes instead of polling. The database stays the source of truth:
 * a watcher takes a signal, reads what is new, and waits on the signal only if nothing was new,
 * so no change between the read and the wait is missed.
 *
 * A wait is one callback on the signal and one timer, not a race of fibers: the long-poll that
 * hands a job to an agent resumes in one step of the scheduler after the assignment commits.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"

/**
 * One "next change" of a key, taken with `EventHub.signal` before reading and waited on with
 * `EventHub.wait` after. It fires once; a later change needs a new signal.
 *
 * @since 0.1.0
 * @category models
 */
export interface Signal {
  /** Whether the change it stands for has happened (or the hub has closed). */
  readonly fired: boolean
}

/**
 * The hub.
 *
 * - `notify(key)`: fires the key's signal, if anyone took one.
 * - `signal(key)`: the key's next signal (shared by everyone who waits on the key).
 * - `wait(signal, millis)`: waits until the signal fires or the hub closes (`true`), or for
 *   `millis` ms (`false`). Interruptible; an interrupted wait leaves nothing behind.
 * - `close`: fires every signal, and every signal taken from then on is already fired, so that
 *   waiters answer at once when the server begins to stop (`Signals.announceStop`).
 *
 * @since 0.1.0
 * @category models
 */
export interface EventHub {
  readonly notify: (key: string) => Effect.Effect<void>
  readonly signal: (key: string) => Effect.Effect<Signal>
  readonly wait: (signal: Signal, millis: number) => Effect.Effect<boolean>
  readonly close: Effect.Effect<void>
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

class SignalImpl implements Signal {
  fired = false
  readonly listeners = new Set<() => void>()
  fire() {
    if (this.fired) return
    this.fired = true
    for (const f of this.listeners) f()
    this.listeners.clear()
  }
}

const FIRED: SignalImpl = (() => {
  const s = new SignalImpl()
  s.fire()
  return s
})()

/**
 * Makes a hub. Entries exist only while someone waits, so memory follows the number of watchers,
 * not the number of jobs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<EventHub> = Effect.sync(() => {
  const waiting = new Map<string, SignalImpl>()
  let closed = false
  return {
    notify: (key) =>
      Effect.sync(() => {
        const s = waiting.get(key)
        if (s === undefined) return
        waiting.delete(key)
        s.fire()
      }),
    signal: (key) =>
      Effect.sync(() => {
        if (closed) return FIRED
        let s = waiting.get(key)
        if (s === undefined) waiting.set(key, (s = new SignalImpl()))
        return s
      }),
    wait: (signal, millis) =>
      Effect.async<boolean>((resume) => {
        const s = signal as SignalImpl
        if (s.fired) return resume(Effect.succeed(true))
        const timer = setTimeout(() => {
          s.listeners.delete(woken)
          resume(Effect.succeed(false))
        }, Math.max(0, millis))
        const woken = () => {
          clearTimeout(timer)
          resume(Effect.succeed(true))
        }
        s.listeners.add(woken)
        return Effect.sync(() => {
          clearTimeout(timer)
          s.listeners.delete(woken)
        })
      }),
    close: Effect.sync(() => {
      closed = true
      for (const s of waiting.values()) s.fire()
      waiting.clear()
    })
  }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<EventHub> = Layer.effect(EventHub, make)
