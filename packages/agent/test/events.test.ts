import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as fs from "node:fs"
import * as EventLog from "../src/internal/events.js"
import type { Batch } from "../src/internal/events.js"

const payloadsOf = (batches: ReadonlyArray<Batch>) => batches.flatMap((b) => b.runs.flatMap((r) => r.payloads))

describe("EventLog", () => {
  it.scopedLive("sends every event once, in order, in consecutively numbered batches within the limits", () =>
    Effect.gen(function*() {
      const sent: Array<Batch> = []
      const log = yield* EventLog.make((b) => Effect.sync(() => (sent.push(b), "sent" as const)), { maxBatchLines: 300 })
      for (let i = 0; i < 2500; i++) log.append(3, i % 2 === 0 ? "stdout" : "stderr", [`line ${i}`])
      log.append(undefined, "worker", ["a", "b", "c"])
      yield* log.flush
      assert.isTrue(sent.every((b) => b.lines >= 1 && b.lines <= 300))
      assert.deepStrictEqual(sent.map((b) => b.batch), sent.map((_, i) => i + 1))
      assert.deepStrictEqual(payloadsOf(sent), [...Array.from({ length: 2500 }, (_, i) => `line ${i}`), "a", "b", "c"])
      const runs = sent.flatMap((b) => b.runs)
      assert.strictEqual(runs[1]!.stream, "stderr")
      assert.strictEqual(runs[1]!.task, 3)
      assert.isFalse("task" in runs[runs.length - 1]!)
      assert.isFalse(Number.isNaN(Date.parse(runs[0]!.time)))
      assert.deepStrictEqual(log.stats().sent, 2503)
    }))

  it.scopedLive("a few lines go out after the time window; a flush sends at once and waits for the server", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const sent: Array<Batch> = []
      const log = yield* EventLog.make(
        (b) => Deferred.await(gate).pipe(Effect.zipRight(Effect.sync(() => (sent.push(b), "sent" as const)))),
        { windowMillis: 200 }
      )
      log.append(0, "stdout", ["hello"])
      const flushing = yield* Effect.fork(log.flush)
      yield* Effect.sleep("100 millis")
      assert.isNull(flushing.unsafePoll(), "flush returned before the server answered")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(flushing)
      assert.deepStrictEqual(payloadsOf(sent), ["hello"])

      const t0 = Date.now()
      log.append(0, "stdout", ["late"])
      while (payloadsOf(sent).length < 2) yield* Effect.sleep("5 millis")
      assert.isAtLeast(Date.now() - t0, 150, "a lone line waits for the window")
    }))

  it.scopedLive("while the server is away, lines beyond the memory limit go to a spool file, then out in order", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory("agent-spool-")
      const gate = yield* Deferred.make<void>()
      const sent: Array<Batch> = []
      let spool: string | undefined
      let maxMemory = 0
      const log = yield* EventLog.make(
        (b) => Deferred.await(gate).pipe(Effect.zipRight(Effect.sync(() => (sent.push(b), "sent" as const)))),
        { memoryBytes: 64 * 1024, spoolDir: dir, onSpool: (f) => (spool = f), maxBatchLines: 1000 }
      )
      const lines = Array.from({ length: 50_000 }, (_, i) => `${"x".repeat(70)} ${i}`)
      for (let i = 0; i < lines.length; i += 100) {
        log.append(0, "stdout", lines.slice(i, i + 100))
        maxMemory = Math.max(maxMemory, log.stats().memoryBytes)
      }
      assert.isDefined(spool)
      assert.isAbove(fs.statSync(spool!).size, 3_000_000, "the lines are on disk")
      assert.isAtMost(maxMemory, 64 * 1024, "memory stays within its limit")
      assert.isAbove(log.stats().spooledRuns, 400)
      yield* Deferred.succeed(gate, undefined)
      yield* log.flush
      assert.deepStrictEqual(payloadsOf(sent), lines)
      assert.deepStrictEqual(sent.map((b) => b.batch), sent.map((_, i) => i + 1))
      assert.strictEqual(fs.statSync(spool!).size, 0, "the spool is emptied once sent")
    }))

  it.scopedLive("past the spool limit it asks readers to pause, until the spool drains", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory("agent-spool-")
      const gate = yield* Deferred.make<void>()
      const log = yield* EventLog.make(
        () => Deferred.await(gate).pipe(Effect.as("sent" as const)),
        { memoryBytes: 1024, spoolDir: dir, maxSpoolBytes: 10_000, maxBatchBytes: 2048 }
      )
      for (let i = 0; i < 500 && !log.overloaded(); i++) log.append(0, "stdout", [`${"y".repeat(100)} ${i}`])
      assert.isTrue(log.overloaded())
      const waiting = yield* Effect.fork(log.waitRoom)
      yield* Effect.sleep("50 millis")
      assert.isNull(waiting.unsafePoll())
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(waiting).pipe(Effect.timeout("5 seconds"))
      yield* log.flush
      assert.isFalse(log.overloaded())
    }))

  it.scopedLive("a batch the server refuses for good is dropped, and flush still returns", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.make(() => Effect.succeed("dropped" as const))
      log.append(0, "stdout", ["lost"])
      yield* log.flush.pipe(Effect.timeout("5 seconds"))
      assert.deepStrictEqual(log.stats().dropped, 1)
    }))
})
