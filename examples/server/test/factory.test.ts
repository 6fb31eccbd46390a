/**
 * The factory protocol end to end: the core server over real HTTP with no in-process provider,
 * and the test acting as an out-of-process factory (buildomat §4.1) that holds a factory token
 * and makes its machines with the local provider, which starts real agent processes (the built
 * bundle). The agent bootstraps, runs the job, the server recycles the worker, and the factory
 * destroys the machine and deletes the worker record.
 */
import { WorkerProvider } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import * as NodePath from "node:path"

const ADMIN = "factory-admin-token-0123456789"

/**
 * One reconcile pass of a minimal factory: destroy machines of recycled workers and delete
 * their records, then take a lease and make a worker for it.
 */
const pass = (
  fc: Client.Client,
  machines: WorkerProvider.WorkerProvider,
  url: string,
  target: string,
  made: Map<string, string>,
  opts: { readonly bind: boolean }
) =>
  Effect.gen(function*() {
    for (const w of yield* fc.api.factory.workers()) {
      if (w.recycle && w.private != null) {
        yield* machines.destroy(w.private)
        assert.isTrue(yield* fc.api.factory.workerDestroy({ path: { worker: w.id as any } }))
        made.delete(w.id)
      }
    }
    const { lease } = yield* fc.api.factory.lease({ payload: { supported_targets: [target as any] } })
    if (lease == null) return yield* fc.api.factory.ping().pipe(Effect.asVoid)
    const w = yield* fc.api.factory.workerCreate({
      payload: { target: lease.target as any, ...(opts.bind ? { job: lease.job as any } : {}) }
    })
    const instance = yield* machines.create({ worker: w.id, target: "remote", url, bootstrap: w.bootstrap })
    yield* fc.api.factory.workerAssociate({
      path: { worker: w.id as any },
      payload: { private: instance.instanceId, ip: "127.0.0.1", metadata: { v: "1", addresses: [] } }
    })
    made.set(w.id, instance.instanceId)
  })

describe("an out-of-process factory over HTTP, with real agents", () => {
  it.scopedLive("lease, create, associate, bootstrap, run, recycle, destroy", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* Testing.serve(
        { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
        Layer.succeed(WorkerProvider.WorkerProviders, [])
      )
      const admin = yield* Testing.client(url, ADMIN)
      const target = (yield* admin.api.targets.create({ payload: { name: "remote", desc: "made by the test factory" } })).id
      const factory = yield* admin.api.factories.create({ payload: { name: "test-factory" } })
      const fc = yield* Testing.client(url, factory.token)
      const machines = yield* LocalProvider.make({
        name: "machines",
        targets: ["remote"],
        scratchRoot: NodePath.join(dir, "machines"),
        killGraceMs: 500
      })
      const { c } = yield* Testing.userClient(url, ADMIN, "alice")
      const made = new Map<string, string>()

      for (const bind of [false, true]) {
        const { id } = yield* c.api.jobs.submit({
          payload: {
            name: `via a factory (bind ${bind})`,
            target: "remote",
            output_rules: [],
            tasks: [{ name: "hello", script: "echo \"hello from $BUILDOMAT_JOB_ID\"", env_clear: false, env: {} }]
          }
        })
        const watch = yield* c.watch(id, { minseq: 1 }).pipe(Stream.runCollect, Effect.timeout("60 seconds"), Effect.fork)
        let job = yield* c.api.jobs.get({ path: { job: id as any } })
        for (let i = 0; i < 600 && job.state !== "completed" && job.state !== "failed"; i++) {
          yield* pass(fc, machines, url, target, made, { bind })
          yield* Effect.sleep("50 millis")
          job = yield* c.api.jobs.get({ path: { job: id as any } })
        }
        yield* watch.await
        assert.strictEqual(job.state, "completed")
        const events = yield* c.allEvents(id)
        assert.deepStrictEqual(
          events.filter((e) => e.stream === "stdout").map((e) => e.payload),
          [`hello from ${id}`]
        )
        assert.match(events[0]!.payload, /^job assigned to worker \S+ \[factory test-factory/)

        // The worker is recycled; the next passes destroy the machine and delete the record.
        for (let i = 0; i < 200 && made.size > 0; i++) {
          yield* pass(fc, machines, url, target, made, { bind })
          yield* Effect.sleep("50 millis")
        }
        assert.strictEqual(made.size, 0)
        assert.deepStrictEqual(yield* fc.api.factory.workers(), [])
        assert.deepStrictEqual(yield* machines.list, [])
      }
      const workers = yield* admin.api.admin.workersListOld({ urlParams: {} })
      assert.strictEqual(workers.workers.length, 2)
      for (const w of workers.workers) {
        assert.strictEqual(w.factory, factory.id)
        assert.isTrue(w.deleted && w.recycle && w.bootstrap)
        assert.strictEqual(w.jobs.length, 1)
        assert.strictEqual(w.jobs[0]!.state, "completed")
      }
    }))
})
