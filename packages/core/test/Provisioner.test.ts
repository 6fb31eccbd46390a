/**
 * The provisioning loop against a provider the test scripts, over the real worker protocol:
 * hung boots given up after `bootTimeoutMs`, machines that vanish from `list` under a running job,
 * a failing `list`, and the lease hint.
 */
import { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, FiberRef, Layer, LogLevel, Queue } from "effect"
import { ADMIN, client, job, tempDir, userClient } from "./harness.js"
import { bootAgentFor } from "./live.js"

const scripted = (options: { readonly bootTimeoutMs?: number } = {}) =>
  Effect.gen(function*() {
    const requests = yield* Queue.unbounded<WorkerProvider.CreateWorkerRequest>()
    const live = new Map<string, string>()
    const destroyed: Array<string> = []
    const state = { listFails: false }
    const provider: WorkerProvider.WorkerProvider = {
      name: "scripted",
      targets: ["default"],
      limit: 1,
      bootTimeoutMs: options.bootTimeoutMs,
      create: (req) =>
        Effect.gen(function*() {
          live.set(`m-${req.worker}`, req.worker)
          yield* Queue.offer(requests, req)
          return { instanceId: `m-${req.worker}`, worker: req.worker }
        }),
      destroy: (id) => Effect.sync(() => void (live.delete(id), destroyed.push(id))),
      list: Effect.suspend(() =>
        state.listFails
          ? Effect.fail(new WorkerProvider.ProviderError({ message: "the cloud is down" }))
          : Effect.succeed([...live].map(([instanceId, worker]) => ({ instanceId, worker })))
      )
    }
    yield* Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Error)
    const url = yield* Testing.serve(
      { dataDir: yield* tempDir(), adminToken: ADMIN },
      Layer.succeed(WorkerProvider.WorkerProviders, [provider])
    )
    return { url, requests, live, destroyed, state }
  })

/** Runs `self` until its result satisfies `until`, every 20 ms, for at most 5 s. */
const pollUntil = <A, E>(self: Effect.Effect<A, E>, until: (a: A) => boolean) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    for (;;) {
      const a = yield* self
      if (until(a)) return a
      if (Date.now() > deadline) return yield* Effect.die(new Error("timed out polling"))
      yield* Effect.sleep("20 millis")
    }
  })

/** Plays the agent of a machine: bootstraps with the request's secret; its client. */
const bootstrap = (url: string, req: WorkerProvider.CreateWorkerRequest) => Effect.map(bootAgentFor(url, req), (a) => a.c)

describe("provisioner", () => {
  it.scopedLive("a worker that does not bootstrap within bootTimeoutMs is destroyed, and a new one runs the job", () =>
    Effect.gen(function*() {
      const { destroyed, requests, url } = yield* scripted({ bootTimeoutMs: 400 })
      const { c } = yield* userClient(url, "alice")
      const { id } = yield* c.api.jobs.submit({ payload: job("hung boot") })
      const first = yield* Queue.take(requests)
      assert.strictEqual(first.lease, id, "the lease hint names the job")
      const started = Date.now()
      const second = yield* Queue.take(requests).pipe(Effect.timeout("5 seconds"))
      assert.isAtLeast(Date.now() - started, 300)
      assert.notStrictEqual(second.worker, first.worker)
      assert.deepStrictEqual(destroyed, [`m-${first.worker}`])
      // The given-up worker's bootstrap value no longer works; the new one's does.
      const late = yield* client(url, "late-token-0123456789")
      const refused = yield* Effect.either(late.api.bootstrap.bootstrap({ payload: { bootstrap: first.bootstrap, token: "late-token-0123456789" } }))
      assert.isTrue(Either.isLeft(refused))
      const agent = yield* bootstrap(url, second)
      const ping = yield* pollUntil(agent.api.worker.ping(), (p) => p.job != null)
      assert.strictEqual(ping.job?.id, id)
    }))

  it.scopedLive("a machine that vanishes from list under a running job: the job fails saying so, the worker is deleted", () =>
    Effect.gen(function*() {
      const { live, requests, state, url } = yield* scripted()
      const { c } = yield* userClient(url, "bob")
      const { id } = yield* c.api.jobs.submit({ payload: job("doomed") })
      const req = yield* Queue.take(requests)
      const agent = yield* bootstrap(url, req)
      yield* pollUntil(agent.api.worker.ping(), (p) => p.job != null)
      // A failing list is not an empty one: nothing is given up.
      state.listFails = true
      live.clear()
      yield* Effect.sleep("1500 millis")
      assert.strictEqual((yield* c.api.jobs.get({ path: { job: id as any } })).state, "running")

      state.listFails = false
      const failed = yield* pollUntil(c.api.jobs.get({ path: { job: id as any } }), (j) => j.state !== "running")
      assert.strictEqual(failed.state, "failed")
      const control = (yield* c.allEvents(id)).filter((e) => e.stream === "control").map((e) => e.payload)
      assert.include(
        control,
        `instance m-${req.worker} of worker ${req.worker} is gone from provider scripted (terminated outside buildomat?); aborting job`
      )
      // Deleted: its token no longer authenticates.
      const ping = yield* Effect.either(agent.api.worker.ping())
      assert.isTrue(Either.isLeft(ping))
    }))
})
