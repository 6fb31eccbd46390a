/**
 * The in-memory signals that long-polls and event streams wait on: a wait ends when its key is
 * notified, when it times out, or at once once the hub is closed (the server stopping).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as EventHub from "../src/server/EventHub.js"

describe("EventHub", () => {
  it.live("a notify wakes every waiter of its key, and only of its key", () =>
    Effect.gen(function*() {
      const hub = yield* EventHub.make
      const a = yield* hub.signal("a")
      const b = yield* hub.signal("b")
      const waiters = yield* Effect.all([hub.wait(a, 10_000), hub.wait(a, 10_000)], { concurrency: 2 }).pipe(Effect.fork)
      const other = yield* hub.wait(b, 200).pipe(Effect.fork)
      yield* Effect.sleep("20 millis")
      const t0 = Date.now()
      yield* hub.notify("a")
      assert.deepStrictEqual(yield* Fiber.join(waiters), [true, true])
      assert.isBelow(Date.now() - t0, 1_000)
      assert.isTrue(a.fired)
      assert.strictEqual(yield* Fiber.join(other), false, "b was not notified: its wait times out")
      // A fired signal is not reused: the next change needs a new one.
      const next = yield* hub.signal("a")
      assert.isFalse(next.fired)
    }))

  it.live("a change before the wait is not missed; a notify with no one waiting is dropped", () =>
    Effect.gen(function*() {
      const hub = yield* EventHub.make
      yield* hub.notify("k") // nobody holds a signal: nothing to wake, nothing kept
      const s = yield* hub.signal("k")
      assert.isFalse(s.fired)
      yield* hub.notify("k") // between taking the signal and waiting on it
      assert.isTrue(yield* hub.wait(s, 10_000))
    }))

  it.live("an interrupted wait leaves the signal working for the others", () =>
    Effect.gen(function*() {
      const hub = yield* EventHub.make
      const s = yield* hub.signal("k")
      const gone = yield* hub.wait(s, 10_000).pipe(Effect.fork)
      const stays = yield* hub.wait(s, 10_000).pipe(Effect.fork)
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(gone)
      yield* hub.notify("k")
      assert.isTrue(yield* Fiber.join(stays))
    }))

  it.live("close wakes every waiter at once, and later signals come already fired", () =>
    Effect.gen(function*() {
      const hub = yield* EventHub.make
      const s = yield* hub.signal("job")
      const w = yield* hub.signal("worker/w")
      const waiting = yield* Effect.all([hub.wait(s, 600_000), hub.wait(w, 600_000)], { concurrency: 2 }).pipe(
        Effect.fork
      )
      yield* Effect.sleep("10 millis")
      yield* hub.close
      assert.deepStrictEqual(yield* Fiber.join(waiting), [true, true])
      const later = yield* hub.signal("job")
      assert.isTrue(later.fired)
      assert.isTrue(yield* hub.wait(later, 600_000))
    }))
})
