/**
 * The factory protocol end to end: the core server over real HTTP with no in-process provider,
 * and
 *
 * - the test acting as an out-of-process factory (buildomat §4.1) that holds a factory token and
 *   makes its machines with the local provider, which starts real agent processes (the built
 *   bundle). The agent bootstraps, runs the job, the server recycles the worker, and the factory
 *   destroys the machine and deletes the worker record;
 * - `dist/factory.js`, the reference factory process (`Factory.run`), running the local provider
 *   from a TOML file with a warm pool, as a real child process.
 */
import { WorkerProvider } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { spawn } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

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

const FACTORY_JS = fileURLToPath(new URL("../dist/factory.js", import.meta.url))

/** Runs `node dist/factory.js ARGS` for the rest of the scope (SIGTERM, then wait for it to exit). */
const factoryProcess = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (!NodeFs.existsSync(FACTORY_JS)) throw new Error(`${FACTORY_JS} is missing: run npm run build`)
      const child = spawn(process.execPath, [FACTORY_JS, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env }
      })
      const output = { text: "" }
      child.stdout.on("data", (b) => (output.text += b))
      child.stderr.on("data", (b) => (output.text += b))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      return { child, output, exited }
    }),
    ({ child, exited }) =>
      Effect.promise(async () => {
        if (child.exitCode === null) child.kill("SIGTERM")
        await exited
      })
  )

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

describe("dist/factory.js: a provider as a separate factory process", () => {
  it.scopedLive("the local provider from TOML, with a warm pool: the job runs on a pre-made worker, the pool refills, SIGTERM cleans up", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* Testing.serve(
        { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN, targets: ["default"] },
        Layer.succeed(WorkerProvider.WorkerProviders, [])
      )
      const admin = yield* Testing.client(url, ADMIN)
      const factory = yield* admin.api.factories.create({ payload: { name: "far" } })
      const { c } = yield* Testing.userClient(url, ADMIN, "alice")
      const machines = NodePath.join(dir, "machines")
      const config = NodePath.join(dir, "factory.toml")
      NodeFs.writeFileSync(
        config,
        `[factory]\nurl = "${url}"\nproviders = ["local"]\ninterval_ms = 100\n` +
          `[providers.local]\nscratch_root = "machines"\nkill_grace_ms = 500\nlimit = 2\n` +
          `[providers.local.targets.default]\nwarm = 1\n`
      )

      // Before the factory runs, nobody serves the target.
      const { id: early } = yield* c.api.jobs.submit({
        payload: { name: "early", target: "default", output_rules: [], tasks: [{ name: "t", script: "true", env_clear: false, env: {} }] }
      })
      assert.deepStrictEqual((yield* c.api.jobs.why({ path: { job: early as any } })).reasons.map((r) => r.code), ["no_provider"])
      yield* c.api.jobs.cancel({ path: { job: early as any } })
      yield* poll("the early job to end", Effect.map(c.api.jobs.get({ path: { job: early as any } }), (j) => j.state === "failed" || undefined))

      // The token comes from the environment.
      const proc = yield* factoryProcess(["-f", config], { BUILDOMAT_FACTORY_TOKEN: factory.token })
      const workersOf = Effect.map(
        admin.api.admin.workersListOld({ urlParams: {} }),
        (r) => r.workers.filter((w) => w.factory === factory.id)
      )
      // The warm worker: made and bootstrapped with no job queued.
      const warm = yield* poll("a warm worker", Effect.map(workersOf, (ws) => ws.find((w) => w.bootstrap && !w.deleted)))
      assert.deepStrictEqual(warm.jobs, [])
      assert.match(proc.output.text, /buildomat factory: provider local \(local\), targets default, up to 2 workers/)

      const { id } = yield* c.api.jobs.submit({
        payload: {
          name: "via dist/factory.js",
          target: "default",
          output_rules: [],
          tasks: [{ name: "hello", script: "echo \"hello from $BUILDOMAT_JOB_ID\"", env_clear: false, env: {} }]
        }
      })
      const done = yield* poll("the job", Effect.map(c.api.jobs.get({ path: { job: id as any } }), (j) => (j.state === "completed" || j.state === "failed" ? j : undefined)))
      assert.strictEqual(done.state, "completed")
      const events = yield* c.allEvents(id)
      assert.deepStrictEqual(events.filter((e) => e.stream === "stdout").map((e) => e.payload), [`hello from ${id}`])
      assert.match(events[0]!.payload, new RegExp(`^job assigned to worker ${warm.id} \\[factory far`))

      // The used worker's machine is destroyed and its record deleted; the pool refilled.
      yield* poll("the used worker to be deleted and the pool refilled", Effect.map(workersOf, (ws) => {
        const used = ws.find((w) => w.id === warm.id)
        const fresh = ws.filter((w) => !w.deleted && w.bootstrap && w.jobs.length === 0)
        return used?.deleted === true && fresh.length === 1 ? true : undefined
      }))
      assert.isFalse(NodeFs.existsSync(NodePath.join(machines, warm.id)))
      assert.isAtMost((yield* workersOf).filter((w) => !w.deleted).length, 2)

      // SIGTERM: the factory stops its agents and removes their scratch directories.
      proc.child.kill("SIGTERM")
      yield* Effect.promise(() => proc.exited)
      assert.deepStrictEqual(NodeFs.readdirSync(machines).filter((e) => e !== LocalProvider.PROVIDER_DIR), [])
    }))

  it.scopedLive("says what is wrong with its configuration, and exits 2", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const config = NodePath.join(dir, "factory.toml")
      NodeFs.writeFileSync(config, `[providers.local]\nscratch_root = "m"\n`)
      const noToken = yield* factoryProcess(["-f", config], { BUILDOMAT_FACTORY_TOKEN: "" })
      assert.strictEqual(yield* Effect.promise(() => noToken.exited), 2)
      assert.include(noToken.output.text, "no factory token: set [factory] token or BUILDOMAT_FACTORY_TOKEN")
      const noAws = yield* factoryProcess(["-f", config, "--provider", "aws"], { BUILDOMAT_FACTORY_TOKEN: "t" })
      assert.strictEqual(yield* Effect.promise(() => noAws.exited), 2)
      assert.include(noAws.output.text, "--provider aws, but there is no [providers.aws]")
    }))
})
