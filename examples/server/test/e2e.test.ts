/**
 * End to end, as a user sees it: the core server over real HTTP on loopback, the local provider
 * starting real agent processes (the built bundle), real bash tasks.
 */
import type { Client } from "@buildomat/core"
import { type Server, Testing } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

const ADMIN = "e2e-admin-token-0123456789"

const start = (dir: string, options: Partial<Server.ServerOptions> = {}) =>
  Testing.serve(
    { ...options, dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
    LocalProvider.layer({ scratchRoot: NodePath.join(dir, "workers"), limit: 4, killGraceMs: 500 })
  )

const task = (name: string, script: string, env: Record<string, string> = {}) => ({ name, script, env_clear: false, env })

/** Waits for the job to end, following the watch stream. */
const finish = (c: Client.Client, id: string) =>
  Effect.gen(function*() {
    yield* c.watch(id, { minseq: 1 }).pipe(Stream.runDrain, Effect.timeout("60 seconds"))
    return yield* c.api.jobs.get({ path: { job: id as any } })
  })

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return !NodeFs.existsSync(`/proc/${pid}/stat`) || !/^\d+ \(.*\) Z/.test(NodeFs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

describe("end to end with real agents", () => {
  it.scopedLive("two tasks and an output rule: ordered events, artefact bytes and SHA-256, completed", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { c } = yield* Testing.userClient(url, ADMIN, "alice")
      const { id } = yield* c.api.jobs.submit({
        payload: {
          name: "two tasks",
          target: "default",
          output_rules: ["=/work/out/*.txt", "!/work/out/skip.txt"],
          tasks: [
            task("make", "mkdir -p work/out\necho \"first $GREETING\"\necho 'to stderr' >&2\nprintf 'artefact %s\\n' $(seq 1 1000) > work/out/a.txt\necho skipped > work/out/skip.txt", { GREETING: "hello" }),
            task("check", "cd work\necho \"second in $(basename $PWD)\"\necho \"job $BUILDOMAT_JOB_ID task $BUILDOMAT_TASK_ID\"")
          ]
        }
      })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      assert.deepStrictEqual(job.tasks.map((t) => t.state), ["completed", "completed"])

      const events = yield* c.allEvents(id)
      assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
      const lines = events.filter((e) => e.stream === "stdout" || e.stream === "stderr").map((e) => [e.task, e.stream, e.payload])
      assert.deepStrictEqual(lines, [
        [0, "stdout", "first hello"],
        [0, "stderr", "to stderr"],
        [1, "stdout", "second in work"],
        [1, "stdout", `job ${id} task 1`]
      ])
      const taskEvents = events.filter((e) => e.stream === "task").map((e) => e.payload)
      assert.strictEqual(taskEvents[0], "starting task 0: \"make\"")
      assert.match(taskEvents[1]!, /^process exited: duration \d+ ms, exit code 0$/)
      assert.strictEqual(taskEvents[2], "starting task 1: \"check\"")

      const outputs = yield* c.api.jobs.outputs({ path: { job: id as any } })
      assert.deepStrictEqual(outputs.map((o) => o.path), ["/work/out/a.txt"])
      const expected = Buffer.from(Array.from({ length: 1000 }, (_, i) => `artefact ${i + 1}\n`).join(""))
      assert.strictEqual(outputs[0]!.size, expected.length)
      const res = yield* c.download(id, outputs[0]!.id)
      const body = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(res.stream)))
      assert.isTrue(body.equals(expected))
      const digests = yield* c.api.jobs.outputDigests({ path: { job: id as any } })
      assert.strictEqual(digests[0]!.sha256, Crypto.createHash("sha256").update(expected).digest("hex"))
    }))

  it.scopedLive("a failing task fails the job, stops later tasks, and outputs are still uploaded", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { c } = yield* Testing.userClient(url, ADMIN, "bob")
      const { id } = yield* c.api.jobs.submit({
        payload: {
          name: "fails",
          target: "default",
          output_rules: ["/log.txt"],
          tasks: [task("break", "echo partial > log.txt\necho about to fail\nexit 3"), task("never", "echo should not run")]
        }
      })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      assert.isFalse(job.cancelled)
      assert.deepStrictEqual(job.tasks.map((t) => t.state), ["failed", "failed"])
      const events = yield* c.allEvents(id)
      assert.isTrue(events.some((e) => e.stream === "task" && /exit code 3$/.test(e.payload)))
      assert.isFalse(events.some((e) => e.payload === "should not run"))
      const outputs = yield* c.api.jobs.outputs({ path: { job: id as any } })
      assert.deepStrictEqual(outputs.map((o) => [o.path, o.size]), [["/log.txt", 8]])
    }))

  it.scopedLive("a cancelled job fails as cancelled and leaves no process behind", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { c } = yield* Testing.userClient(url, ADMIN, "carol")
      const { id } = yield* c.api.jobs.submit({
        payload: {
          name: "long",
          target: "default",
          output_rules: [],
          tasks: [task("sleep", "echo $$ > pid\n(sleep 300; echo child) &\necho $! > child\necho started\nsleep 300")]
        }
      })
      // Wait until the task runs, then read its pids from the worker's scratch directory.
      const msgs = c.watch(id, { minseq: 1 })
      yield* msgs.pipe(
        Stream.takeUntil((m) => m._tag === "event" && m.event.payload === "started"),
        Stream.runDrain,
        Effect.timeout("30 seconds")
      )
      const workers = NodeFs.readdirSync(NodePath.join(dir, "workers")).filter((e) => e !== LocalProvider.PROVIDER_DIR)
      const root = NodePath.join(dir, "workers", workers[0]!, "root")
      const pids = ["pid", "child"].map((f) => Number(NodeFs.readFileSync(NodePath.join(root, f), "utf8")))
      assert.isTrue(pids.every(pidAlive))

      yield* c.api.jobs.cancel({ path: { job: id as any } })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      assert.isTrue(job.cancelled)
      for (let i = 0; i < 100 && (pids.some(pidAlive) || NodeFs.existsSync(root)); i++) yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(pids.map(pidAlive), [false, false])
      assert.isFalse(NodeFs.existsSync(root))
      const again = yield* c.api.jobs.cancel({ path: { job: id as any } }).pipe(Effect.flip)
      assert.strictEqual(again._tag, "Conflict")
    }))

  it.scopedLive("watch resumes from a sequence number, and a restarted server keeps every job and event", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const first = yield* Effect.scoped(
        Effect.gen(function*() {
          const url = yield* start(dir)
          const { c, user } = yield* Testing.userClient(url, ADMIN, "dave")
          const { id } = yield* c.api.jobs.submit({
            payload: { name: "count", target: "default", output_rules: [], tasks: [task("count", "seq 1 500")] }
          })
          const job = yield* finish(c, id)
          const events = yield* c.allEvents(id)
          return { token: user.token, id, job, events }
        })
      )
      assert.strictEqual(first.job.state, "completed")
      const stdout = first.events.filter((e) => e.stream === "stdout")
      assert.deepStrictEqual(stdout.map((e) => e.payload), Array.from({ length: 500 }, (_, i) => String(i + 1)))

      const url = yield* start(dir)
      const c = yield* Testing.client(url, first.token)
      const job = yield* c.api.jobs.get({ path: { job: first.id as any } })
      assert.deepStrictEqual(job, first.job)
      assert.deepStrictEqual(yield* c.allEvents(first.id), first.events)

      const from = 300
      const resumed = yield* c.watch(first.id, { minseq: from }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
      const seqs = resumed.flatMap((m) => (m._tag === "event" ? [m.event.seq] : []))
      assert.deepStrictEqual(seqs, first.events.filter((e) => e.seq >= from).map((e) => e.seq))
      assert.strictEqual(resumed[resumed.length - 1]!._tag, "complete")
    }))

  it.scopedLive("a job a real agent ran is archived and purged; reads from the archive answer the same", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir, { background: { jobAutoArchive: true, jobAutoPurge: true, purgeAfter: "1 second", purgeDelay: 0 } })
      const { c } = yield* Testing.userClient(url, ADMIN, "erin")
      const { id } = yield* c.api.jobs.submit({
        payload: {
          name: "archive me",
          target: "default",
          output_rules: ["/out/*"],
          tags: { kind: "e2e" },
          tasks: [task("make", "mkdir -p out\nseq 1 300\nhead -c 100000 /dev/urandom > out/random.bin\necho done >&2")]
        }
      })
      const done = yield* finish(c, id)
      assert.strictEqual(done.state, "completed")
      const events = yield* c.allEvents(id)
      const outputs = yield* c.api.jobs.outputs({ path: { job: id as any } })
      const digests = yield* c.api.jobs.outputDigests({ path: { job: id as any } })
      const bytes = Buffer.concat(Chunk.toArray(yield* c.download(id, outputs[0]!.id).pipe(Effect.flatMap((r) => Stream.runCollect(r.stream)))))

      let job = yield* c.api.jobs.get({ path: { job: id as any } })
      for (let i = 0; i < 200 && (job.time_purged ?? null) === null; i++) {
        yield* Effect.sleep("50 millis")
        job = yield* c.api.jobs.get({ path: { job: id as any } })
      }
      assert.isString(job.time_archived)
      assert.isString(job.time_purged)
      assert.deepStrictEqual({ ...job, time_archived: null, time_purged: null }, { ...done, time_archived: null, time_purged: null })
      assert.deepStrictEqual(yield* c.allEvents(id), events)
      assert.deepStrictEqual(yield* c.api.jobs.outputs({ path: { job: id as any } }), outputs)
      assert.deepStrictEqual(yield* c.api.jobs.outputDigests({ path: { job: id as any } }), digests)
      const again = Buffer.concat(Chunk.toArray(yield* c.download(id, outputs[0]!.id).pipe(Effect.flatMap((r) => Stream.runCollect(r.stream)))))
      assert.isTrue(again.equals(bytes))
      assert.strictEqual(Crypto.createHash("sha256").update(again).digest("hex"), digests[0]!.sha256)
      const watched = yield* c.watch(id, { minseq: 290 }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
      assert.deepStrictEqual(
        watched.flatMap((m) => (m._tag === "event" ? [m.event.seq] : [])),
        events.filter((e) => e.seq >= 290).map((e) => e.seq)
      )
      assert.isTrue(NodeFs.existsSync(NodePath.join(dir, "data", "objects", "job", "2", `${id}.tlvc`)))
    }))

  it.scopedLive("a provider destroying a busy worker (SIGTERM to the agent's group) leaves no task process behind", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      let root = ""
      let pids: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const url = yield* start(dir)
        const { c } = yield* Testing.userClient(url, ADMIN, "erin")
        const { id } = yield* c.api.jobs.submit({
          payload: {
            name: "busy",
            target: "default",
            output_rules: [],
            tasks: [task("sleep", "echo $$ > pid\n(trap '' TERM; exec sleep 300) &\necho $! > child\necho started\nwait")]
          }
        })
        yield* c.watch(id, { minseq: 1 }).pipe(
          Stream.takeUntil((m) => m._tag === "event" && m.event.payload === "started"),
          Stream.runDrain,
          Effect.timeout("30 seconds")
        )
        const workers = NodeFs.readdirSync(NodePath.join(dir, "workers")).filter((e) => e !== LocalProvider.PROVIDER_DIR)
        root = NodePath.join(dir, "workers", workers[0]!, "root")
        pids = ["pid", "child"].map((f) => Number(NodeFs.readFileSync(NodePath.join(root, f), "utf8")))
        assert.isTrue(pids.every(pidAlive))
        // Closing the scope stops the server; its provider destroys the worker, job running.
      }))
      for (let i = 0; i < 100 && pids.some(pidAlive); i++) yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(pids.map(pidAlive), [false, false])
    }))
})
