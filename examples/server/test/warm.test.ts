/**
 * The local provider's warm pool with real agents (the built bundle) in the real server: agents
 * are started and bootstrapped before any job, jobs start on them, each worker still runs one
 * job, the pool is refilled as workers are used, and the target's limit is never exceeded.
 */
import { Testing } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, FiberRef, LogLevel } from "effect"
import * as NodePath from "node:path"

const ADMIN = "warm-admin-token-0123456789"

const poll = <A, E, R>(what: string, f: Effect.Effect<A | undefined, E, R>, seconds = 30) =>
  Effect.gen(function*() {
    const deadline = Date.now() + seconds * 1000
    for (;;) {
      const a = yield* f
      if (a !== undefined) return a
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("50 millis")
    }
  })

describe("the local provider's warm pool, with real agents", () => {
  it.scopedLive("bootstrapped before any job; jobs start on them; one job per worker; refilled; never more than the limit", () =>
    Effect.gen(function*() {
      yield* Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Warning)
      const dir = yield* Testing.tempDirectory()
      const url = yield* Testing.serve(
        { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
        LocalProvider.layer({
          scratchRoot: NodePath.join(dir, "workers"),
          limit: 4,
          killGraceMs: 500,
          targets: { default: { limit: 2, warm: 2 } }
        })
      )
      const admin = yield* Testing.client(url, ADMIN)
      const { c } = yield* Testing.userClient(url, ADMIN, "alice")
      const workers = Effect.map(admin.api.admin.workersListOld({ urlParams: {} }), (r) => r.workers)

      // Watch the number of live workers for the whole test.
      const peak = { value: 0 }
      const watcher = yield* Effect.fork(Effect.forever(
        Effect.gen(function*() {
          const live = (yield* workers).filter((w) => !w.deleted).length
          peak.value = Math.max(peak.value, live)
          yield* Effect.sleep("20 millis")
        })
      ))

      const warm = yield* poll(
        "two warm workers",
        Effect.map(workers, (ws) => {
          const ready = ws.filter((w) => !w.deleted && w.bootstrap && w.jobs.length === 0)
          return ready.length === 2 ? ready.map((w) => w.id) : undefined
        })
      )

      const submit = (name: string) =>
        c.api.jobs.submit({
          payload: {
            name,
            target: "default",
            output_rules: [],
            tasks: [{ name: "t", script: "sleep 0.3; echo done", env_clear: false, env: {} }]
          }
        })
      const ids = [] as Array<string>
      for (const n of ["a", "b", "c"]) ids.push((yield* submit(n)).id)
      const ended = yield* Effect.forEach(ids, (id) =>
        poll(`job ${id}`, Effect.map(c.api.jobs.get({ path: { job: id as any } }), (j) => (j.state === "completed" || j.state === "failed" ? j : undefined))))
      assert.deepStrictEqual(ended.map((j) => j.state), ["completed", "completed", "completed"])

      // The first two ran on the warm workers; each worker ran one job.
      const assignedTo = yield* Effect.forEach(ids, (id) =>
        Effect.map(c.allEvents(id), (events) => /^job assigned to worker (\S+)/.exec(events[0]!.payload)![1]!))
      assert.sameMembers(assignedTo.slice(0, 2), warm)
      assert.strictEqual(new Set(assignedTo).size, 3)

      // Refilled: two new spare workers, bootstrapped.
      yield* poll("the pool to refill", Effect.map(workers, (ws) => {
        const ready = ws.filter((w) => !w.deleted && w.bootstrap && w.jobs.length === 0)
        return ready.length === 2 && ready.every((w) => !assignedTo.includes(w.id)) ? true : undefined
      }))
      yield* Fiber.interrupt(watcher)
      assert.isAtMost(peak.value, 2)
      assert.isAtLeast(peak.value, 2)
    }))
})
