import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import * as EventQueue from "../src/internal/events.js"
import type { Event } from "../src/internal/events.js"

describe("EventQueue", () => {
  it.scopedLive("sends every event once, in order, in batches of at most 100", () =>
    Effect.gen(function*() {
      const batches = yield* Ref.make<Array<ReadonlyArray<Event>>>([])
      const q = yield* EventQueue.make((batch) => Ref.update(batches, (b) => [...b, batch]))
      for (let i = 0; i < 250; i++) yield* q.emit(i % 2 === 0 ? "stdout" : "stderr", `line ${i}`, 3)
      yield* q.flush
      const sent = yield* Ref.get(batches)
      assert.isTrue(sent.every((b) => b.length >= 1 && b.length <= 100))
      const all = sent.flat()
      assert.deepStrictEqual(all.map((e) => e.payload), Array.from({ length: 250 }, (_, i) => `line ${i}`))
      assert.strictEqual(all[1]!.stream, "stderr")
      assert.strictEqual(all[1]!.task, 3)
      assert.isFalse(Number.isNaN(Date.parse(all[0]!.time)))
    }))

  it.scopedLive("flush waits until earlier events have been sent, and an event without a task has none", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const sent = yield* Ref.make<Array<Event>>([])
      const q = yield* EventQueue.make((batch) =>
        Deferred.await(gate).pipe(Effect.zipRight(Ref.update(sent, (s) => [...s, ...batch])))
      )
      yield* q.emit("worker", "hello")
      const flushing = yield* Effect.fork(q.flush)
      yield* Effect.sleep("100 millis")
      assert.isNull(flushing.unsafePoll(), "flush returned before the send")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(flushing)
      const events = yield* Ref.get(sent)
      assert.deepStrictEqual(events.map((e) => e.payload), ["hello"])
      assert.isFalse("task" in events[0]!)
    }))

  it.scopedLive("emit suspends while the queue is full (back-pressure) and resumes once it drains", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const count = yield* Ref.make(0)
      const q = yield* EventQueue.make(
        (batch) => Deferred.await(gate).pipe(Effect.zipRight(Ref.update(count, (n) => n + batch.length))),
        { capacity: 10, batchSize: 5 }
      )
      // 5 go into the batch stuck in `send`, 10 fill the queue, the 16th must wait.
      const producer = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 16 }, (_, i) => i), (i) => q.emit("stdout", `${i}`), { discard: true })
      )
      yield* Effect.sleep("200 millis")
      assert.isNull(producer.unsafePoll(), "emit did not suspend on a full queue")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(producer)
      yield* q.flush
      assert.strictEqual(yield* Ref.get(count), 16)
    }))
})
