/**
 * `ServerOptions.heapGrowingPercent` (`HeapGrowth`): while the layer is in use, V8 lets the heap
 * grow by about the set share of its live size before the next full garbage collection, and
 * after it V8's own factor is back. A value V8 could not take is refused when the server starts.
 * (What the factor does to uploads is measured by `npm run bench`.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer } from "effect"
import * as NodeV8 from "node:v8"
import { constants, PerformanceObserver } from "node:perf_hooks"
import * as NodeVm from "node:vm"
import * as HeapGrowth from "../src/server/HeapGrowth.js"

// A full collection on demand (as `node --expose-gc` gives), to start each measurement from the
// same heap.
NodeV8.setFlagsFromString("--expose-gc")
const fullGc = NodeVm.runInNewContext("gc") as () => void

const MiB = 2 ** 20

/**
 * A full collection (which sets the next limit with the factor in force), then arrays of about
 * 1 MiB (straight into V8's large-object space, part of the old generation) kept until the next
 * full collection. Returns the heap in use after the first, and how many MiB were kept before the
 * next: the room V8 left.
 */
const roomAfterFullGc = Effect.promise(async () => {
  let majors = 0
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++
    }
  })
  observer.observe({ entryTypes: ["gc"] })
  const keep: Array<Array<number>> = []
  try {
    fullGc()
    await new Promise((r) => setTimeout(r, 20))
    const live = NodeV8.getHeapStatistics().used_heap_size / MiB
    const start = majors
    // Each step yields, so that the observer hears of a collection soon after it.
    for (let i = 0; i < 4096 && majors === start; i++) {
      keep.push(new Array(128 * 1024).fill(i))
      await new Promise((r) => setImmediate(r))
    }
    return { live: Math.round(live), room: keep.length }
  } finally {
    observer.disconnect()
    keep.length = 0
  }
})

describe("HeapGrowth", () => {
  it.live("a server's factor of 2 leaves room of about the live size; V8's own leaves more, and is back after", () =>
    Effect.gen(function*() {
      // A live heap of a server's size, so that the factor, not V8's fixed minimum steps, decides.
      const ballast = Array.from({ length: 80 }, (_, i) => new Array(128 * 1024).fill(i))
      const own = yield* roomAfterFullGc
      const set = yield* roomAfterFullGc.pipe(Effect.provide(HeapGrowth.layer(100)))
      const after = yield* roomAfterFullGc
      // With 100%, the next full collection comes after about the live size (plus the young
      // generation); V8's own factor in a process allocating this way is about 4.
      assert.isBelow(set.room, set.live * 1.7, JSON.stringify({ own, set, after }))
      assert.isAbove(own.room, set.room * 1.5, JSON.stringify({ own, set, after }))
      assert.isAbove(after.room, set.room * 1.5, JSON.stringify({ own, set, after }))
      assert.strictEqual(ballast.length, 80)
    }), 60_000)

  for (const bad of [-1, 1.5, Number.NaN]) {
    it.effect(`refuses ${bad}`, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Layer.build(HeapGrowth.layer(bad)).pipe(Effect.scoped))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const message = Cause.pretty(exit.cause)
          assert.include(message, "heap growing percent must be a whole number")
          assert.include(message, String(bad))
        }
      }))
  }
})
