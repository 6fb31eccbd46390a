/**
 * The reconcile loop (`Factory`) against the real server over real HTTP and SQLite, with a
 * provider the test scripts (its machines are entries in a map; the test plays their agents over
 * the real worker protocol):
 *
 * - in-process (`Provisioner`): warm pools, per-target limits, the server's default boot timeout;
 * - remote (`Factory.makeReconciler` with `Factory.remoteBackend` and a factory token), pass by
 *   pass: leases and their renewal, orphans reaped, vanished machines, hung boots, held workers
 *   left alone;
 * - why a job waits (`GET /ext/0/jobs/{job}/why`), for each reason.
 */
import { Factory, WorkerProvider } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FiberRef, HashSet, Layer, Logger, LogLevel, Option, Queue } from "effect"
import { ADMIN, client, eventually, job, tempDir, userClient } from "./harness.js"
import { bootAgentFor } from "./live.js"

interface Scripted {
  readonly provider: WorkerProvider.WorkerProvider
  readonly requests: Queue.Queue<WorkerProvider.CreateWorkerRequest>
  /** Machines alive: instance id → worker id. */
  readonly live: Map<string, string>
  readonly destroyed: Array<string>
  /** The most machines alive at once. */
  readonly peak: { value: number }
}

const scripted = (options: {
  readonly name?: string | undefined
  readonly targets?: ReadonlyArray<string> | undefined
  readonly limit?: number | undefined
  readonly policies?: Record<string, WorkerProvider.TargetPolicy> | undefined
  readonly bootTimeoutMs?: number | undefined
  /** What `create` returns as the machine's metadata (`WorkerInstance.metadata`). */
  readonly metadata?: unknown
}): Effect.Effect<Scripted> =>
  Effect.gen(function*() {
    const requests = yield* Queue.unbounded<WorkerProvider.CreateWorkerRequest>()
    const live = new Map<string, string>()
    const destroyed: Array<string> = []
    const peak = { value: 0 }
    const provider: WorkerProvider.WorkerProvider = {
      name: options.name ?? "scripted",
      targets: options.targets ?? ["default"],
      limit: options.limit ?? 4,
      policies: options.policies,
      bootTimeoutMs: options.bootTimeoutMs,
      create: (req) =>
        Effect.gen(function*() {
          live.set(`m-${req.worker}`, req.worker)
          peak.value = Math.max(peak.value, live.size)
          yield* Queue.offer(requests, req)
          return {
            instanceId: `m-${req.worker}`,
            worker: req.worker,
            ip: "10.0.0.1",
            ...(options.metadata !== undefined ? { metadata: options.metadata } : {})
          }
        }),
      destroy: (id) => Effect.sync(() => void (live.delete(id) && destroyed.push(id))),
      list: Effect.sync(() => [...live].map(([instanceId, worker]) => ({ instanceId, worker })))
    }
    return { provider, requests, live, destroyed, peak }
  })

const quiet = Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Error)

/** A server whose only in-process provider is `s.provider`. */
const serveWith = (s: Scripted, extra: { readonly bootTimeoutMs?: number } = {}) =>
  Effect.gen(function*() {
    yield* quiet
    return yield* Testing.serve(
      { dataDir: yield* tempDir(), adminToken: ADMIN, ...extra },
      Layer.succeed(WorkerProvider.WorkerProviders, [s.provider])
    )
  })

/** Pings as the agent until a job comes; its id. */
const jobOf = (agent: Client.Client) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      const p = yield* agent.api.worker.ping()
      if (p.job != null) return p.job.id
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error("no job assigned"))
  })

const complete = (agent: Client.Client, id: string) =>
  agent.api.worker.jobComplete({ path: { job: id as any }, payload: { failed: false } })

const take = (s: Scripted) => Queue.take(s.requests).pipe(Effect.timeout("5 seconds"))

/** No further create request for `ms`. */
const noMore = (s: Scripted, ms = 1200) =>
  Effect.gen(function*() {
    const extra = yield* Queue.take(s.requests).pipe(Effect.timeoutOption(ms))
    assert.isTrue(Option.isNone(extra), `unexpected create ${Option.isSome(extra) ? extra.value.worker : ""}`)
  })

const codes = (c: Client.Client, id: string) =>
  Effect.map(c.api.jobs.why({ path: { job: id as any } }), (w) => w.reasons.map((r) => r.code))

const whyOf = (c: Client.Client, id: string) => c.api.jobs.why({ path: { job: id as any } })

/** Plays the agent of a machine: bootstraps with the request's secret; its client. */
const boot = (url: string, req: WorkerProvider.CreateWorkerRequest) => Effect.map(bootAgentFor(url, req), (a) => a.c)

describe("factory metadata (in-process)", () => {
  it.scopedLive("metadata that is not buildomat's is left out with a warning that says why; the machine still works", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      yield* Effect.locallyScopedWith(FiberRef.currentLoggers, HashSet.add(capture))
      const s = yield* scripted({ metadata: { v: "2", root_authorized_keys: "ssh-ed25519 AAAA test" } })
      const url = yield* Testing.serve(
        { dataDir: yield* tempDir(), adminToken: ADMIN },
        Layer.succeed(WorkerProvider.WorkerProviders, [s.provider])
      )
      const { c } = yield* userClient(url, "alice")
      const { id } = yield* c.api.jobs.submit({ payload: job("one") })
      const req = yield* take(s)
      const agent = yield* boot(url, req)
      const ping = yield* agent.api.worker.ping()
      assert.strictEqual(ping.job?.id, id, "the machine runs jobs")
      assert.isTrue(ping.factory_metadata == null, "nothing of the metadata is passed on")
      const warning = warnings.find((w) => w.includes(`m-${req.worker}`))
      assert.isDefined(warning, JSON.stringify(warnings))
      assert.include(warning!, "is not buildomat factory metadata, and is left out")
      assert.include(warning!, `"1"`, "the message says what v should be")
    }))
})

describe("warm pools and limits (in-process)", () => {
  it.scopedLive("the pool is bootstrapped before any job; a job starts on one; the pool refills; never more than the limit", () =>
    Effect.gen(function*() {
      const s = yield* scripted({ limit: 3, policies: { default: { warm: 2 } } })
      const url = yield* serveWith(s)
      // Two workers, made and bootstrapped with no job in sight.
      const r1 = yield* take(s)
      const r2 = yield* take(s)
      assert.isUndefined(r1.lease, "a warm worker is made for no lease")
      const a1 = yield* boot(url, r1)
      const a2 = yield* boot(url, r2)
      yield* noMore(s)

      // A job starts on one of them at once; another is made to refill the pool.
      const { c } = yield* userClient(url, "alice")
      const { id: j1 } = yield* c.api.jobs.submit({ payload: job("one") })
      const first = yield* Effect.raceAll([
        Effect.map(jobOf(a2), (j) => ({ j, agent: a2 })),
        Effect.map(jobOf(a1), (j) => ({ j, agent: a1 }))
      ])
      assert.strictEqual(first.j, j1)
      const r3 = yield* take(s) // made after the job started: the refill, not the job's worker
      assert.isUndefined(r3.lease)
      const other = first.agent === a1 ? a2 : a1

      // At the limit (3 machines): more jobs queue, and say so.
      const { id: j2 } = yield* c.api.jobs.submit({ payload: job("two") })
      assert.strictEqual(yield* jobOf(other), j2)
      const { id: j3 } = yield* c.api.jobs.submit({ payload: job("three") })
      const { id: j4 } = yield* c.api.jobs.submit({ payload: job("four") })
      yield* noMore(s)
      assert.deepStrictEqual(yield* codes(c, j3), ["booting"])
      const a3 = yield* boot(url, r3)
      assert.strictEqual(yield* jobOf(a3), j3)
      yield* eventually("the limit to show", Effect.map(codes(c, j4), (x) => x[0] === "limit"))
      const why4 = yield* whyOf(c, j4)
      assert.match(why4.reasons[0]!.message, /scripted has 3 of 3 workers/)
      assert.strictEqual(why4.position, 1)

      // A finished job frees a slot: its machine is destroyed and a worker made for j4.
      yield* complete(first.agent, j1)
      const r4 = yield* take(s)
      assert.include(s.destroyed, `m-${first.agent === a1 ? r1.worker : r2.worker}`)
      assert.strictEqual(r4.lease, j4)
      const a4 = yield* boot(url, r4)
      assert.strictEqual(yield* jobOf(a4), j4)
      assert.isAtMost(s.peak.value, 3)
    }))

  it.scopedLive("per-target limits: a target at its own limit waits while another still gets workers", () =>
    Effect.gen(function*() {
      const s = yield* scripted({ targets: ["small", "big"], limit: 3, policies: { small: { limit: 1 } } })
      const url = yield* serveWith(s)
      const { c } = yield* userClient(url, "bob")
      const { id: s1 } = yield* c.api.jobs.submit({ payload: job("s1", "true", { target: "small" }) })
      const { id: s2 } = yield* c.api.jobs.submit({ payload: job("s2", "true", { target: "small" }) })
      const r1 = yield* take(s)
      assert.strictEqual(r1.target, "small")
      assert.strictEqual(r1.lease, s1)
      yield* noMore(s, 800)
      yield* eventually("the limit to show", Effect.map(codes(c, s2), (x) => x[0] === "limit"))
      assert.match((yield* whyOf(c, s2)).reasons[0]!.message, /scripted has 1 of 1 workers for target small/)
      assert.strictEqual((yield* whyOf(c, s2)).position, 2)

      const { id: b1 } = yield* c.api.jobs.submit({ payload: job("b1", "true", { target: "big" }) })
      const r2 = yield* take(s)
      assert.strictEqual(r2.target, "big")
      assert.strictEqual(r2.lease, b1)
      const a1 = yield* boot(url, r1)
      assert.strictEqual(yield* jobOf(a1), s1)
      yield* complete(a1, s1)
      const r3 = yield* take(s)
      assert.strictEqual(r3.target, "small")
      assert.strictEqual(r3.lease, s2)
      assert.isAtMost(s.peak.value, 2)
    }))

  it.scopedLive("a provider without bootTimeoutMs gets the server's boot timeout (30 min by default, here short)", () =>
    Effect.gen(function*() {
      const s = yield* scripted({})
      const url = yield* serveWith(s, { bootTimeoutMs: 500 })
      const { c } = yield* userClient(url, "carol")
      const { id } = yield* c.api.jobs.submit({ payload: job("never boots") })
      const r1 = yield* take(s)
      const r2 = yield* take(s)
      assert.strictEqual(r2.lease, id)
      assert.deepStrictEqual(s.destroyed, [`m-${r1.worker}`])
      const a2 = yield* boot(url, r2)
      assert.strictEqual(yield* jobOf(a2), id)
    }))

  it.effect("the default boot timeout is buildomat's 30 minutes", () =>
    Effect.sync(() => assert.strictEqual(Factory.DEFAULT_BOOT_TIMEOUT_MS, 30 * 60 * 1000)))
})

describe("why a job waits", () => {
  it.scopedLive("inputs, dependencies, no provider, hold, disabled, held workers, booting; nothing once running", () =>
    Effect.gen(function*() {
      const s = yield* scripted({ limit: 2 })
      const url = yield* serveWith(s)
      const admin = yield* client(url, ADMIN)
      const { c } = yield* userClient(url, "dave")
      yield* admin.api.targets.create({ payload: { name: "nobody", desc: "served by no one" } })

      // No provider.
      const { id: orphan } = yield* c.api.jobs.submit({ payload: job("orphan", "true", { target: "nobody" }) })
      const w0 = yield* whyOf(c, orphan)
      assert.strictEqual(w0.state, "queued")
      assert.deepStrictEqual(w0.reasons, [{ code: "no_provider", message: "no provider or factory serves target nobody" }])

      // Inputs and dependencies.
      const { id: waits } = yield* c.api.jobs.submit({
        payload: job("waits", "true", {
          inputs: ["b.txt", "a.txt"],
          depends: { first: { prior_job: orphan, copy_outputs: false, on_completed: true, on_failed: false } }
        })
      })
      const w1 = yield* whyOf(c, waits)
      assert.strictEqual(w1.state, "waiting")
      assert.deepStrictEqual(w1.reasons, [
        { code: "waiting_inputs", message: "waiting for 2 inputs to be uploaded: a.txt, b.txt" },
        {
          code: "waiting_dependencies",
          message: `waiting for job ${orphan} (dependency "first") to finish; it is queued`
        }
      ])

      // Creation on hold.
      yield* admin.api.admin.controlHold()
      const { id: held } = yield* c.api.jobs.submit({ payload: job("held") })
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(yield* codes(c, held), ["hold"])
      yield* noMore(s, 300)

      // The factory disabled.
      const f = (yield* admin.api.factories.list()).find((x) => x.name === "scripted")!
      yield* admin.api.factories.disable({ path: { factory: f.id as any } })
      yield* admin.api.admin.controlResume()
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(yield* codes(c, held), ["factory_disabled"])
      assert.match((yield* whyOf(c, held)).reasons[0]!.message, /scripted; enable one with: buildomat admin factory enable/)

      // Enabled with hold_workers: the worker made for it starts held.
      yield* admin.api.factories.enable({ path: { factory: f.id as any }, payload: { hold_workers: true } })
      const r1 = yield* take(s)
      yield* eventually("held workers to show", Effect.map(codes(c, held), (x) => x.includes("factory_hold_workers")))
      assert.match(
        (yield* whyOf(c, held)).reasons.find((r) => r.code === "factory_hold_workers")!.message,
        /start held \(hold_workers on scripted; 1 held now\); release them with: buildomat admin worker release WORKER/
      )
      yield* noMore(s, 500) // one held worker per lease, not one per pass

      // Enabled normally, the held worker released: it boots and takes the job.
      yield* admin.api.factories.enable({ path: { factory: f.id as any }, payload: {} })
      yield* admin.api.admin.workerRelease({ path: { worker: r1.worker as any } })
      assert.deepStrictEqual(yield* codes(c, held), ["booting"])
      assert.match((yield* whyOf(c, held)).reasons[0]!.message, /^1 worker is booting for target default \(\S+ of factory scripted/)
      const a1 = yield* boot(url, r1)
      assert.strictEqual(yield* jobOf(a1), held)
      const running = yield* whyOf(c, held)
      assert.strictEqual(running.state, "running")
      assert.deepStrictEqual(running.reasons, [])

      // Someone else's job: 403, as the job view.
      const { c: eve } = yield* userClient(url, "eve")
      const refused = yield* Effect.flip(eve.api.jobs.why({ path: { job: held as any } }))
      assert.strictEqual(refused._tag, "Forbidden")
    }))
})

describe("the remote factory path, pass by pass", () => {
  const setup = (options: { readonly bootTimeoutMs?: number; readonly limit?: number } = {}) =>
    Effect.gen(function*() {
      yield* quiet
      const url = yield* Testing.serve({ dataDir: yield* tempDir(), adminToken: ADMIN }, Layer.succeed(WorkerProvider.WorkerProviders, []))
      const admin = yield* client(url, ADMIN)
      yield* admin.api.targets.create({ payload: { name: "remote", desc: "made by a factory process" } })
      const f = yield* admin.api.factories.create({ payload: { name: "far" } })
      const fc = yield* client(url, f.token)
      const s = yield* scripted({ name: "far-machines", targets: ["remote"], limit: options.limit ?? 2, bootTimeoutMs: options.bootTimeoutMs })
      const r = yield* Factory.makeReconciler(s.provider, Factory.remoteBackend(fc.api), { url })
      const { c } = yield* userClient(url, "frank")
      return { url, admin, f, fc, s, r, c }
    })

  it.scopedLive("lease, create, associate, renew while booting; recycled machines destroyed; orphans reaped; held ones kept", () =>
    Effect.gen(function*() {
      const { admin, c, fc, r, s, url } = yield* setup()
      // Before the factory has reported, nobody serves the target.
      const { id: j1 } = yield* c.api.jobs.submit({ payload: job("far away", "true", { target: "remote" }) })
      assert.deepStrictEqual(yield* codes(c, j1), ["no_provider"])

      const p1 = yield* r.once
      assert.strictEqual(p1.created.length, 1)
      const req = yield* take(s)
      assert.strictEqual(req.lease, j1)
      assert.strictEqual(req.url, url)
      const [w] = yield* fc.api.factory.workers()
      assert.deepStrictEqual({ id: w!.id, private: w!.private, online: w!.online }, { id: req.worker, private: `m-${req.worker}`, online: false })
      assert.deepStrictEqual(yield* codes(c, j1), ["booting"])
      assert.match((yield* whyOf(c, j1)).reasons[0]!.message, /factory far holds a lease on it/)
      // The next pass renews the lease of the booting worker, and makes nothing more.
      const p2 = yield* r.once
      assert.deepStrictEqual(p2.created, [])
      assert.isFalse(yield* Factory.remoteBackend((yield* client(url, (yield* admin.api.factories.create({ payload: { name: "other" } })).token)).api).renew(j1))

      // Orphans: a machine of a worker the server never heard of, and one of a deleted worker.
      s.live.set("m-stray", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
      const gone = yield* fc.api.factory.workerCreate({ payload: { target: w!.target as any } })
      yield* fc.api.factory.workerAssociate({ path: { worker: gone.id as any }, payload: { private: `m-${gone.id}` } })
      s.live.set(`m-${gone.id}`, gone.id)
      yield* fc.api.factory.workerDestroy({ path: { worker: gone.id as any } })
      // A held worker and its machine are never touched, even unbootstrapped past any timeout.
      const kept = yield* fc.api.factory.workerCreate({ payload: { target: w!.target as any } })
      yield* fc.api.factory.workerAssociate({ path: { worker: kept.id as any }, payload: { private: `m-${kept.id}` } })
      s.live.set(`m-${kept.id}`, kept.id)
      yield* admin.api.admin.workerHold({ path: { worker: kept.id as any }, payload: { reason: "looking at it" } })
      const p3 = yield* r.once
      assert.sameMembers([...p3.reaped], ["m-stray", `m-${gone.id}`])
      assert.isTrue(s.live.has(`m-${kept.id}`))
      assert.isTrue(s.live.has(`m-${req.worker}`))

      // The agent boots and runs the job; the recycled worker's machine is destroyed, its record deleted.
      const agent = yield* boot(url, req)
      assert.strictEqual(yield* jobOf(agent), j1)
      yield* complete(agent, j1)
      yield* eventually("the worker to be recycled", Effect.map(fc.api.factory.workerGet({ path: { worker: req.worker as any } }), (x) => x.worker?.recycle === true))
      const p4 = yield* r.once
      assert.deepStrictEqual(p4.deleted, [req.worker])
      assert.include(s.destroyed, `m-${req.worker}`)
      assert.deepStrictEqual((yield* fc.api.factory.workers()).map((x) => x.id), [kept.id])
      assert.isTrue(s.live.has(`m-${kept.id}`))
    }))

  it.scopedLive("a machine that vanishes fails its job with a control event; a worker that never boots is given up", () =>
    Effect.gen(function*() {
      const { c, fc, r, s, url } = yield* setup({ bootTimeoutMs: 600 })
      const { id: j1 } = yield* c.api.jobs.submit({ payload: job("vanishing", "sleep 60", { target: "remote" }) })
      yield* r.once
      const req = yield* take(s)
      const agent = yield* boot(url, req)
      assert.strictEqual(yield* jobOf(agent), j1)
      s.live.delete(`m-${req.worker}`) // terminated behind our back
      const p = yield* r.once
      assert.deepStrictEqual(p.deleted, [req.worker])
      const failed = yield* Effect.gen(function*() {
        for (;;) {
          const j = yield* c.api.jobs.get({ path: { job: j1 as any } })
          if (j.state !== "running") return j
          yield* Effect.sleep("20 millis")
        }
      }).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(failed.state, "failed")
      const control = (yield* c.allEvents(j1)).filter((e) => e.stream === "control").map((e) => e.payload)
      assert.include(
        control,
        `instance m-${req.worker} of worker ${req.worker} is gone from provider far-machines (terminated outside buildomat?); aborting job`
      )

      // Hung boot: made, never bootstrapped; given up after 600 ms, and a new worker made.
      const { id: j2 } = yield* c.api.jobs.submit({ payload: job("hung", "true", { target: "remote" }) })
      yield* r.once
      const hung = yield* take(s)
      assert.strictEqual(hung.lease, j2)
      yield* Effect.sleep("700 millis")
      const p2 = yield* r.once
      assert.deepStrictEqual(p2.deleted, [hung.worker])
      assert.include(s.destroyed, `m-${hung.worker}`)
      const again = yield* take(s)
      assert.strictEqual(again.lease, j2)
      assert.deepStrictEqual((yield* fc.api.factory.workers()).map((x) => x.id), [again.worker])
    }))

  it.scopedLive("a disabled factory makes nothing, but still tears down; warm pools in the remote path", () =>
    Effect.gen(function*() {
      const { admin, c, f, fc, url } = yield* setup()
      const s = yield* scripted({ name: "pool", targets: ["remote"], limit: 2, policies: { remote: { warm: 1 } } })
      const r = yield* Factory.makeReconciler(s.provider, Factory.remoteBackend(fc.api), { url })
      yield* admin.api.factories.disable({ path: { factory: f.id as any } })
      const p0 = yield* r.once
      assert.deepStrictEqual(p0.created, [])
      yield* admin.api.factories.enable({ path: { factory: f.id as any }, payload: {} })
      const p1 = yield* r.once
      assert.strictEqual(p1.created.length, 1)
      const warm = yield* take(s)
      assert.isUndefined(warm.lease)
      const agent = yield* boot(url, warm)
      assert.deepStrictEqual((yield* r.once).created, [])
      const { id } = yield* c.api.jobs.submit({ payload: job("pooled", "true", { target: "remote" }) })
      assert.strictEqual(yield* jobOf(agent), id)
      const p2 = yield* r.once
      assert.strictEqual(p2.created.length, 1, "the pool refills")
      assert.isUndefined((yield* take(s)).lease)
      assert.deepStrictEqual((yield* r.once).created, [], "never more than the limit")
    }))
})
