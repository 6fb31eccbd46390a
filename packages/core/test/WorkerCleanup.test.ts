/**
 * The worker cleanup loop under `TestClock`, on the real server: a silent agent fails its job and
 * its worker is held and recycled; liveness waits for 10 minutes of uptime after a restart; workers
 * that never bootstrap, and surplus ones, are recycled and destroyed after 30 minutes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, Queue, Scope, TestClock } from "effect"
import { job, startServer, tempDir, userClient } from "./harness.js"
import { advance, assigned, bootAgent, bootAgentFor, eventually, query } from "./live.js"

/** These tests move the TestClock through many loop passes; each pass takes real time. */
const TIMEOUT = 180_000

describe.concurrent("worker cleanup loop", () => {
  it.scoped("an agent silent for 10 minutes fails its job; the worker is held and recycled, not destroyed", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const { destroyed, requests, url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "alice")
      const { id } = yield* c.api.jobs.submit({ payload: job("quiet") })
      const agent = yield* bootAgent(url, requests)
      assert.strictEqual((yield* assigned(agent.c)).id, id)

      yield* advance("9 minutes", "47 seconds")
      assert.strictEqual((yield* c.api.jobs.get({ path: { job: id as any } })).state, "running")

      yield* advance("2 minutes", "47 seconds")
      const j = yield* eventually(
        "the job to fail",
        Effect.map(c.api.jobs.get({ path: { job: id as any } }), (j) => (j.state === "failed" ? Option.some(j) : Option.none()))
      )
      assert.isFalse(j.cancelled)
      const control = (yield* c.api.jobs.events({ path: { job: id as any }, urlParams: {} }))
        .filter((e) => e.stream === "control")
        .map((e) => e.payload)
      assert.isTrue(control.some((p) => /has not pinged for \d+ seconds; agent became unresponsive/.test(p)), control.join("\n"))
      assert.include(control, "worker agent experienced a fatal error; aborting job")

      const [w] = yield* query<{ recycle: number; hold_reason: string | null; deleted: number }>(
        dir,
        "SELECT recycle, hold_reason, deleted FROM worker WHERE id = ?",
        [agent.id]
      )
      assert.deepStrictEqual(w, { recycle: 1, hold_reason: "agent became unresponsive during job execution", deleted: 0 })
      // Held: the agent is not told to power off, and the provider does not destroy the machine.
      const ping = yield* agent.c.api.worker.ping()
      assert.isFalse(ping.poweroff)
      yield* advance("2 minutes", "47 seconds")
      assert.deepStrictEqual(destroyed, [])
    }), TIMEOUT)

  it.scoped("after a restart, liveness waits until the server has been up for 10 minutes", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const first = yield* Scope.make()
      const { id, worker } = yield* Effect.gen(function*() {
        const { requests, url } = yield* startServer(dir)
        const { c } = yield* userClient(url, "bob")
        const { id } = yield* c.api.jobs.submit({ payload: job("across a restart") })
        const agent = yield* bootAgent(url, requests)
        yield* assigned(agent.c)
        return { id, worker: agent.id }
      }).pipe(Scope.extend(first))
      yield* Scope.close(first, Exit.void)

      // Down for 20 minutes: the agent's last ping is 20 minutes old when the server comes back.
      yield* TestClock.adjust("20 minutes")
      const { url } = yield* startServer(dir)
      const state = (w: string) =>
        query<{ recycle: number; hold_time: string | null }>(dir, "SELECT recycle, hold_time FROM worker WHERE id = ?", [w])
      yield* advance("9 minutes", "47 seconds")
      assert.deepStrictEqual(yield* state(worker), [{ recycle: 0, hold_time: null }])
      const [{ state: s1 }] = yield* query<{ state: string }>(dir, "SELECT CASE WHEN complete = 1 THEN 'done' ELSE 'running' END AS state FROM job WHERE id = ?", [id])
      assert.strictEqual(s1, "running")

      yield* advance("2 minutes", "47 seconds")
      yield* eventually(
        "the worker to be failed",
        Effect.map(state(worker), (r) => (r[0]?.recycle === 1 && r[0].hold_time !== null ? Option.some(r) : Option.none()))
      )
      const [j] = yield* query<{ complete: number; failed: number }>(dir, "SELECT complete, failed FROM job WHERE id = ?", [id])
      assert.deepStrictEqual(j, { complete: 1, failed: 1 })
      assert.isString(url)
    }), TIMEOUT)

  it.scoped("a worker that never bootstraps is recycled and destroyed after 30 minutes, and replaced", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const { destroyed, requests, url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "carol")
      const { id } = yield* c.api.jobs.submit({ payload: job("no agent") })
      const first = yield* eventually("a worker", Queue.poll(requests))

      yield* advance("29 minutes", "47 seconds")
      assert.deepStrictEqual(destroyed, [])
      yield* advance("2 minutes", "47 seconds")
      yield* eventually("the worker to be destroyed", Effect.sync(() => (destroyed.includes(`m-${first.worker}`) ? Option.some(true) : Option.none())))
      // The job is still queued, so the provisioner asks for another worker, which runs it.
      const agent = yield* bootAgent(url, requests)
      assert.notStrictEqual(agent.id, first.worker)
      assert.strictEqual((yield* assigned(agent.c)).id, id)
    }), TIMEOUT)

  it.scoped("a bootstrapped worker that gets no job is surplus after 30 minutes", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const { destroyed, requests, url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "dave")
      const { id } = yield* c.api.jobs.submit({ payload: job("cancelled before it ran") })
      const req = yield* eventually("a worker", Queue.poll(requests))
      yield* c.api.jobs.cancel({ path: { job: id as any } })
      yield* eventually(
        "the job to end",
        Effect.map(c.api.jobs.get({ path: { job: id as any } }), (j) => (j.state === "failed" ? Option.some(j) : Option.none()))
      )
      const agent = yield* bootAgentFor(url, req)
      assert.strictEqual(agent.id, req.worker)

      // The agent keeps pinging: it is alive, just idle.
      const ping = agent.c.api.worker.ping()
      yield* advance("29 minutes", "47 seconds", ping)
      assert.deepStrictEqual(destroyed, [])
      assert.isFalse((yield* ping).poweroff)
      yield* advance("2 minutes", "47 seconds", ping.pipe(Effect.ignore))
      yield* eventually("the worker to be destroyed", Effect.sync(() => (destroyed.includes(`m-${agent.id}`) ? Option.some(true) : Option.none())))
      const [w] = yield* query<{ recycle: number; deleted: number }>(dir, "SELECT recycle, deleted FROM worker WHERE id = ?", [agent.id])
      assert.deepStrictEqual(w, { recycle: 1, deleted: 1 })
    }), TIMEOUT)
})
