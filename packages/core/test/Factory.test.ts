/**
 * The factory protocol over real HTTP against the real server: the test plays an out-of-process
 * factory (factory token) and the agent (worker token). The full flow with a real agent process
 * is in `examples/server/test/factory.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Crypto from "node:crypto"
import { ADMIN, client, job, raw, startServer, tempDir, userClient } from "./harness.js"

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } })
const call = (url: string, token: string, method: string, path: string, body?: unknown) =>
  raw(url, path, { method, token, ...(body === undefined ? {} : json(body)) })

const eventually = <A, E, R>(f: Effect.Effect<A | undefined, E, R>, ms = 5000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    for (;;) {
      const a = yield* f
      if (a !== undefined) return a
      if (Date.now() > deadline) return yield* Effect.die(new Error("timed out waiting"))
      yield* Effect.sleep("20 millis")
    }
  })

/** A server whose in-process provider serves only `default`, a target `remote` nobody serves, a factory. */
const setup = Effect.gen(function*() {
  const dir = yield* tempDir()
  const { url } = yield* startServer(dir)
  const admin = yield* client(url, ADMIN)
  const remote = yield* admin.api.targets.create({ payload: { name: "remote", desc: "made by a factory" } })
  const f = yield* admin.api.factories.create({ payload: { name: "lab" } })
  const fc = yield* client(url, f.token)
  const { c: alice } = yield* userClient(url, "alice")
  return { url, admin, remote: remote.id, f, fc, alice }
})

describe("factory protocol", () => {
  it.scopedLive("lease, create, associate, bootstrap, boot logs, flush, job, recycle, destroy", () =>
    Effect.gen(function*() {
      const { url, admin, remote, f, fc, alice } = yield* setup
      assert.strictEqual(f.token.length, 64)
      assert.strictEqual((yield* admin.api.factories.list()).find((x) => x.id === f.id)!.last_ping ?? null, null)

      // Authentication: factory tokens only.
      const { user } = yield* userClient(url, "mallory")
      for (const token of ["", user.token, ADMIN, "not-a-token"]) {
        const r = yield* raw(url, "/0/factory/ping", token === "" ? {} : { token })
        assert.strictEqual(r.status, 401)
      }
      assert.deepStrictEqual(yield* fc.api.factory.ping(), { ok: true })
      assert.isNotNull((yield* admin.api.factories.list()).find((x) => x.id === f.id)!.last_ping ?? null)

      // Leases: the oldest queued job of a supported target, one factory at a time.
      const { id: jobId } = yield* alice.api.jobs.submit({ payload: job("remote job", "echo hi", { target: "remote" }) })
      const none = yield* fc.api.factory.lease({ payload: { supported_targets: ["01ARZ3NDEKTSV4RRFFQ69G5FAV" as any] } })
      assert.strictEqual(none.lease, null)
      const badTarget = yield* call(url, f.token, "POST", "/0/factory/lease", { supported_targets: ["nope"] })
      assert.strictEqual(badTarget.status, 400)
      const lease = yield* fc.api.factory.lease({ payload: { supported_targets: [remote as any] } })
      assert.deepStrictEqual(lease.lease, { job: jobId, target: remote })
      assert.strictEqual((yield* fc.api.factory.lease({ payload: { supported_targets: [remote as any] } })).lease, null)
      const f2 = yield* admin.api.factories.create({ payload: { name: "other" } })
      const fc2 = yield* client(url, f2.token)
      assert.strictEqual((yield* fc2.api.factory.lease({ payload: { supported_targets: [remote as any] } })).lease, null)
      assert.isTrue(yield* fc.api.factory.leaseRenew({ path: { job: jobId as any } }))
      assert.isFalse(yield* fc2.api.factory.leaseRenew({ path: { job: jobId as any } }))

      // Create a worker that waits for the boot logs to be flushed.
      const w = yield* fc.api.factory.workerCreate({ payload: { target: remote as any, wait_for_flush: true } })
      assert.strictEqual(w.bootstrap.length, 64)
      assert.deepStrictEqual({ ...w, bootstrap: "" }, {
        id: w.id,
        private: null,
        recycle: false,
        bootstrap: "",
        online: false,
        hold: false,
        target: remote
      })
      const listed = yield* fc.api.factory.workers()
      assert.deepStrictEqual(listed.map((x) => [x.id, x.bootstrap]), [[w.id, ""]])
      assert.deepStrictEqual(yield* fc2.api.factory.workers(), [])
      assert.strictEqual((yield* call(url, f2.token, "GET", `/0/factory/worker/${w.id}`)).status, 403)
      assert.strictEqual((yield* call(url, f2.token, "PATCH", `/0/factory/worker/${w.id}`, { private: "x" })).status, 403)
      assert.deepStrictEqual(yield* fc.api.factory.workerGet({ path: { worker: "01ARZ3NDEKTSV4RRFFQ69G5FAV" as any } }), { worker: null })

      // Boot logs before the worker has a job: keep them and retry.
      const early = { stream: "console", time: "2026-11-21T09:00:00.000Z", payload: "BIOS says hello" }
      assert.isTrue((yield* fc.api.factory.workerAppend({ path: { worker: w.id as any }, payload: early })).retry)
      const badStream = yield* call(url, f.token, "POST", `/0/factory/worker/${w.id}/append`, { ...early, stream: "no spaces" })
      assert.strictEqual(badStream.status, 400)

      // The agent cannot bootstrap before association.
      const token = Crypto.randomBytes(32).toString("hex")
      const agent = yield* client(url, token)
      const tooSoon = yield* agent.api.bootstrap.bootstrap({ payload: { bootstrap: w.bootstrap, token } }).pipe(Effect.flip)
      assert.strictEqual(tooSoon._tag, "Unauthorized")

      // Associate: private and metadata are write-once, ip may change.
      const metadata = { v: "1" as const, addresses: [], root_authorized_keys: "ssh-ed25519 AAAA test" }
      yield* fc.api.factory.workerAssociate({ path: { worker: w.id as any }, payload: { private: "i-0001", ip: "10.0.0.1", metadata } })
      yield* fc.api.factory.workerAssociate({ path: { worker: w.id as any }, payload: { private: "i-0001", ip: "10.0.0.2", metadata } })
      const otherPrivate = yield* call(url, f.token, "PATCH", `/0/factory/worker/${w.id}`, { private: "i-0002" })
      assert.strictEqual(otherPrivate.status, 409)
      assert.match(otherPrivate.json.message, /already associated with instance i-0001 not i-0002/)
      const otherMeta = yield* call(url, f.token, "PATCH", `/0/factory/worker/${w.id}`, { private: "i-0001", metadata: { v: "1", dump_to_rpool: 4 } })
      assert.strictEqual(otherMeta.status, 409)
      const badMeta = yield* call(url, f.token, "PATCH", `/0/factory/worker/${w.id}`, { private: "i-0001", metadata: { v: "2" } })
      assert.strictEqual(badMeta.status, 400)
      const adminView = yield* admin.api.admin.workerGet({ path: { worker: w.id as any } })
      assert.strictEqual(adminView.factory, f.id)
      assert.strictEqual(adminView.factory_private, "i-0001")
      assert.strictEqual(adminView.factory_ip, "10.0.0.2")

      // Bootstrap; the scheduler assigns the job, but the agent does not see it before the flush.
      yield* agent.api.bootstrap.bootstrap({ payload: { bootstrap: w.bootstrap, token } })
      assert.isTrue((yield* fc.api.factory.workerGet({ path: { worker: w.id as any } })).worker!.online)
      yield* eventually(Effect.map(alice.api.jobs.get({ path: { job: jobId as any } }), (j) => (j.state === "running" ? j : undefined)))
      const p1 = yield* agent.api.worker.ping()
      assert.isTrue(p1.job == null)
      assert.deepStrictEqual(p1.factory_info, { id: f.id, name: "lab", private: "i-0001" })
      assert.deepStrictEqual(p1.factory_metadata, metadata)
      assert.isFalse(yield* fc.api.factory.leaseRenew({ path: { job: jobId as any } }), "the lease ends with the assignment")

      // Boot logs now land in the job; then the flush releases the job to the agent.
      assert.isFalse((yield* fc.api.factory.workerAppend({ path: { worker: w.id as any }, payload: early })).retry)
      yield* fc.api.factory.workerFlush({ path: { worker: w.id as any } })
      const p2 = yield* agent.api.worker.ping()
      assert.strictEqual(p2.job!.id, jobId)
      const events = yield* alice.api.jobs.events({ path: { job: jobId as any }, urlParams: {} })
      const console_ = events.find((e) => e.stream === "console")!
      assert.strictEqual(console_.payload, "BIOS says hello")
      assert.strictEqual(console_.time_remote, early.time)
      assert.strictEqual(console_.task ?? null, null)
      assert.match(events.find((e) => e.stream === "control")!.payload, /^job assigned to worker \S+ \[factory lab, i-0001\]/)

      // The job ends; the worker is recycled; the factory destroys it.
      yield* agent.api.worker.taskComplete({ path: { job: jobId as any, task: 0 }, payload: { failed: false } })
      yield* agent.api.worker.jobComplete({ path: { job: jobId as any }, payload: { failed: false } })
      assert.isFalse((yield* fc.api.factory.workerAppend({ path: { worker: w.id as any }, payload: early })).retry, "ignored once complete")
      const recycled = yield* fc.api.factory.workerGet({ path: { worker: w.id as any } })
      assert.isTrue(recycled.worker!.recycle)
      assert.isTrue((yield* agent.api.worker.ping()).poweroff)
      assert.isTrue(yield* fc.api.factory.workerDestroy({ path: { worker: w.id as any } }))
      assert.deepStrictEqual(yield* fc.api.factory.workerGet({ path: { worker: w.id as any } }), { worker: null })
      assert.deepStrictEqual(yield* fc.api.factory.workers(), [])
      assert.strictEqual((yield* agent.api.worker.ping().pipe(Effect.flip))._tag, "Unauthorized")
      assert.isTrue((yield* admin.api.admin.workerGet({ path: { worker: w.id as any } })).deleted)
      const reassociate = yield* call(url, f.token, "PATCH", `/0/factory/worker/${w.id}`, { private: "i-0001" })
      assert.strictEqual(reassociate.status, 409)
      assert.strictEqual((yield* alice.api.jobs.get({ path: { job: jobId as any } })).state, "completed")
    }))

  it.scopedLive("a worker bound to a job at creation; holds; destroying a busy worker fails its job", () =>
    Effect.gen(function*() {
      const { url, admin, remote, f, fc, alice } = yield* setup
      const { id: j1 } = yield* alice.api.jobs.submit({ payload: job("bound", "true", { target: "remote" }) })

      const unknownTarget = yield* call(url, f.token, "POST", "/0/factory/worker", { target: "01ARZ3NDEKTSV4RRFFQ69G5FAV" })
      assert.strictEqual(unknownTarget.status, 400)
      const unknownJob = yield* call(url, f.token, "POST", "/0/factory/worker", { target: remote, job: "01ARZ3NDEKTSV4RRFFQ69G5FAV" })
      assert.strictEqual(unknownJob.status, 400)
      assert.deepStrictEqual(yield* fc.api.factory.workers(), [], "a refused create leaves no worker behind")

      const w = yield* fc.api.factory.workerCreate({ payload: { target: remote as any, job: j1 as any } })
      const running = yield* alice.api.jobs.get({ path: { job: j1 as any } })
      assert.strictEqual(running.state, "running")
      assert.isDefined(running.times["assigned"])
      const taken = yield* call(url, f.token, "POST", "/0/factory/worker", { target: remote, job: j1 })
      assert.strictEqual(taken.status, 409)
      assert.match(taken.json.message, /already assigned to worker/)
      assert.strictEqual((yield* fc.api.factory.lease({ payload: { supported_targets: [remote as any] } })).lease, null)

      // Held by an operator and recycled: the factory is told to leave it alone.
      yield* admin.api.admin.workerHold({ path: { worker: w.id as any }, payload: { reason: "operator is looking" } })
      yield* admin.api.admin.workerRecycle({ path: { worker: w.id as any } })
      const held = (yield* fc.api.factory.workerGet({ path: { worker: w.id as any } })).worker!
      assert.isTrue(held.hold)
      assert.isFalse(held.recycle)
      yield* admin.api.admin.workerRelease({ path: { worker: w.id as any } })
      assert.isTrue((yield* fc.api.factory.workerGet({ path: { worker: w.id as any } })).worker!.recycle)

      // The machine is gone before the job finished: the job fails.
      yield* fc.api.factory.workerDestroy({ path: { worker: w.id as any } })
      const failed = yield* eventually(
        Effect.map(alice.api.jobs.get({ path: { job: j1 as any } }), (j) => (j.state === "failed" ? j : undefined))
      )
      assert.isFalse(failed.cancelled)
      const events = yield* alice.api.jobs.events({ path: { job: j1 as any }, urlParams: {} })
      assert.isTrue(events.some((e) => e.payload === "worker failed without completing job"))

      // hold_workers: every new worker starts held.
      yield* admin.api.factories.enable({ path: { factory: f.id as any }, payload: { hold_workers: true } })
      const h = yield* fc.api.factory.workerCreate({ payload: { target: remote as any } })
      assert.isTrue(h.hold)
      assert.strictEqual((yield* admin.api.admin.workerGet({ path: { worker: h.id as any } })).hold?.reason, "factory is configured to hold all created workers")

      // A disabled factory gets no lease, and neither does anyone while creation is on hold.
      const { id: j2 } = yield* alice.api.jobs.submit({ payload: job("next", "true", { target: "remote" }) })
      yield* admin.api.factories.disable({ path: { factory: f.id as any } })
      assert.strictEqual((yield* fc.api.factory.lease({ payload: { supported_targets: [remote as any] } })).lease, null)
      yield* admin.api.factories.enable({ path: { factory: f.id as any }, payload: {} })
      assert.isFalse((yield* admin.api.factories.list()).find((x) => x.id === f.id)!.hold_workers)
      yield* admin.api.admin.controlHold()
      assert.strictEqual((yield* fc.api.factory.lease({ payload: { supported_targets: [remote as any] } })).lease, null)
      yield* admin.api.admin.controlResume()
      const granted = yield* fc.api.factory.lease({ payload: { supported_targets: [remote as any] } })
      assert.deepStrictEqual(granted.lease, { job: j2, target: remote })

      // Names: unique, not ULID-like.
      assert.strictEqual((yield* call(url, ADMIN, "POST", "/0/admin/factory", { name: "lab" })).status, 409)
      assert.strictEqual((yield* call(url, ADMIN, "POST", "/0/admin/factory", { name: "01ARZ3NDEKTSV4RRFFQ69G5FAV" })).status, 400)
      // The in-process provider has a factory record too.
      const manual = (yield* admin.api.factories.list()).find((x) => x.name === "manual")!
      assert.isTrue(manual.enable)
    }))
})
