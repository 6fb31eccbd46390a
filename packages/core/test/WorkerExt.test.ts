/**
 * The agent-side additions of issue 4 over real HTTP and a real SQLite file: the long-poll ping,
 * numbered idempotent event batches stored as runs (read back one event per line, gap-free),
 * in-order uploads with size and SHA-256 checked, worker events and the diagnostics handshake,
 * and the job store as the worker sees it.
 */
import { assert, describe, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Chunk, Effect, Fiber, Queue, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as NodePath from "node:path"
import { job, raw, startServer, tempDir, userClient } from "./harness.js"
import { bootAgent as agentFor, bootAgentFor, eventually } from "./live.js"

const now = () => new Date().toISOString()

describe("GET /ext/0/worker/ping (long-poll)", () => {
  it.scopedLive("answers the moment a job is assigned, and the moment the worker is recycled", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c } = yield* userClient(url, "alice")
      // A job brings up a worker; cancelling the job before the agent bootstraps leaves it idle.
      const first = yield* c.api.jobs.submit({ payload: job("prime") })
      const req = yield* eventually("a worker to be created", Queue.poll(requests as any))
      yield* c.api.jobs.cancel({ path: { job: first.id as any } })
      const agent = yield* bootAgentFor(url, req as any)

      // Idle: nothing to say, so the server holds the request for wait_ms.
      const t0 = Date.now()
      const idle = yield* agent.c.api.workerExt.ping({ urlParams: { wait_ms: 300 } })
      assert.isAtLeast(Date.now() - t0, 280)
      assert.isFalse(idle.poweroff)
      assert.isNull(idle.job ?? null)

      // A long wait ends as soon as a job is submitted and assigned.
      const waiting = yield* agent.c.api.workerExt.ping({ urlParams: { wait_ms: 20_000 } }).pipe(Effect.fork)
      yield* Effect.sleep("200 millis")
      const t1 = Date.now()
      const { id } = yield* c.api.jobs.submit({
        payload: job("real", "", {
          output_rules: ["/out/*.txt", "=/must/exist", "!/out/skip.txt", "%/out/log"],
          tasks: [
            { name: "first", script: "echo 1", env_clear: false, env: { GREETING: "héllo \"wörld\"", EMPTY: "" } },
            { name: "second", script: "printf '%s\\n' ✓", env_clear: true, env: {}, uid: 1000, gid: 100, workdir: "/work" }
          ]
        })
      })
      const got = yield* waiting.await.pipe(Effect.flatten)
      assert.isBelow(Date.now() - t1, 1000)
      // The job as submitted: tasks in order with their defaults filled in, the rules' flags.
      assert.deepStrictEqual(got.job, {
        id,
        name: "real",
        output_rules: [
          { rule: "/out/*.txt", ignore: false, size_change_ok: false, require_match: false },
          { rule: "/must/exist", ignore: false, size_change_ok: false, require_match: true },
          { rule: "/out/skip.txt", ignore: true, size_change_ok: false, require_match: false },
          { rule: "/out/log", ignore: false, size_change_ok: true, require_match: false }
        ],
        tasks: [
          {
            id: 0,
            name: "first",
            script: "echo 1",
            env_clear: false,
            env: { GREETING: "héllo \"wörld\"", EMPTY: "" },
            uid: 0,
            gid: 0,
            workdir: "/"
          },
          { id: 1, name: "second", script: "printf '%s\\n' ✓", env_clear: true, env: {}, uid: 1000, gid: 100, workdir: "/work" }
        ],
        inputs: []
      })

      // Busy: passing the job, the wait ends when the job is cancelled (the worker recycled).
      const busy = yield* agent.c.api.workerExt.ping({ urlParams: { wait_ms: 20_000, job: id } }).pipe(Effect.fork)
      yield* Effect.sleep("200 millis")
      const t2 = Date.now()
      yield* c.api.jobs.cancel({ path: { job: id as any } })
      const off = yield* busy.await.pipe(Effect.flatten)
      assert.isBelow(Date.now() - t2, 1000)
      assert.isTrue(off.poweroff)

      // buildomat's ping still answers, at once.
      const legacy = yield* agent.c.api.worker.ping().pipe(Effect.either)
      assert.isTrue(legacy._tag === "Left" || legacy.right.poweroff)
      const bad = yield* raw(url, "/ext/0/worker/ping?wait_ms=999999", { token: agent.token })
      assert.oneOf(bad.status, [400, 401])
    }))
})

describe("POST /ext/0/worker/job/{job}/append", () => {
  it.scopedLive("stores each numbered batch once, in order, as runs read back one event per line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c } = yield* userClient(url, "bob")
      const { id } = yield* c.api.jobs.submit({ payload: job("logs") })
      const agent = yield* agentFor(url, requests as any)
      for (let i = 0; i < 200; i++) {
        const p = yield* agent.c.api.worker.ping()
        if (p.job) break
        yield* Effect.sleep("20 millis")
      }
      const path = { job: id as any }
      const lines = (from: number, n: number) => Array.from({ length: n }, (_, i) => `line ${from + i}`)
      // Batch 1: a run longer than a stored row (1000), then a run on stderr.
      const b1 = {
        batch: 1,
        runs: [
          { task: 0, stream: "stdout", time: now(), payloads: lines(0, 2500) },
          { task: 0, stream: "stderr", time: now(), payloads: ["err a", "err b"] }
        ]
      }
      const r1 = yield* agent.c.api.workerExt.append({ path, payload: b1 })
      assert.deepStrictEqual(r1, { last_batch: 1, duplicate: false })
      // The answer was "lost": the agent sends batch 1 again. Stored once.
      const again = yield* agent.c.api.workerExt.append({ path, payload: b1 })
      assert.deepStrictEqual(again, { last_batch: 1, duplicate: true })
      // An old agent's append and a task event in between share the sequence.
      yield* agent.c.api.worker.append({ path, payload: [{ stream: "task", time: now(), payload: "legacy", task: 0 }] })
      const b2 = { batch: 2, runs: [{ task: null, stream: "worker", time: now(), payloads: lines(2500, 10) }] }
      yield* agent.c.api.workerExt.append({ path, payload: b2 })
      // A batch that skips a number is refused, and stores nothing.
      const gap = yield* agent.c.api.workerExt.append({ path, payload: { batch: 4, runs: b2.runs } }).pipe(Effect.flip)
      assert.strictEqual(gap._tag, "Conflict")
      assert.match(gap.message, /next batch .* is 3/)
      const badStream = yield* raw(url, `/ext/0/worker/job/${id}/append`, {
        method: "POST",
        token: agent.token,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ batch: 3, runs: [{ stream: "no spaces allowed", time: now(), payloads: ["x"] }] })
      })
      assert.strictEqual(badStream.status, 400)

      const events = yield* c.allEvents(id)
      assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
      assert.deepStrictEqual(
        events.slice(1).map((e) => [e.task ?? null, e.stream, e.payload]),
        [
          ...lines(0, 2500).map((l) => [0, "stdout", l]),
          [0, "stderr", "err a"],
          [0, "stderr", "err b"],
          [0, "task", "legacy"],
          ...lines(2500, 10).map((l) => [null, "worker", l])
        ]
      )
      assert.strictEqual(events[1]!.time_remote, b1.runs[0]!.time)
      // A page that starts inside a run, and one that spans rows.
      const page = yield* c.api.jobs.events({ path, urlParams: { minseq: 1500 } })
      assert.strictEqual(page.length, 1000)
      assert.deepStrictEqual(page.map((e) => e.seq), Array.from({ length: 1000 }, (_, i) => 1500 + i))
      assert.strictEqual(page[0]!.payload, "line 1498")
      // The watch stream serves them too.
      yield* agent.c.api.worker.taskComplete({ path: { ...path, task: 0 }, payload: { failed: false } })
      yield* agent.c.api.worker.jobComplete({ path, payload: { failed: false } })
      const watched = yield* c.watch(id, { minseq: 2490 }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
      const seen = watched.flatMap((m) => (m._tag === "event" ? [m.event.payload] : []))
      assert.deepStrictEqual(seen, events.slice(2489).map((e) => e.payload))

      // After completion: a resend is still acknowledged, a new batch is refused.
      const late = yield* agent.c.api.workerExt.append({ path, payload: b2 }).pipe(Effect.either)
      assert.isTrue(late._tag === "Left" ? late.left._tag === "Unauthorized" : late.right.duplicate)
      const after = yield* agent.c.api.workerExt.append({ path, payload: { batch: 3, runs: b2.runs } }).pipe(Effect.flip)
      assert.oneOf(after._tag, ["Conflict", "Unauthorized"])
      assert.deepStrictEqual(yield* c.allEvents(id), events, "nothing stored twice, nothing after completion")
    }))
})

describe("PUT /ext/0/worker/job/{job}/upload/{commit}", () => {
  it.scopedLive("stores parts in order once, checks size and SHA-256 at commit", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c } = yield* userClient(url, "carol")
      const { id } = yield* c.api.jobs.submit({ payload: job("upload") })
      const agent = yield* agentFor(url, requests as any)
      for (let i = 0; i < 200; i++) {
        const p = yield* agent.c.api.worker.ping()
        if (p.job) break
        yield* Effect.sleep("20 millis")
      }
      const data = Crypto.randomBytes(3 * 1024 * 1024 + 5)
      const sha = Crypto.createHash("sha256").update(data).digest("hex")
      const commit = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
      const part = (offset: number, n: number, size = data.length) =>
        agent.c.api.workerExt.uploadPart({
          path: { job: id as any, commit },
          urlParams: { offset, size },
          payload: new Uint8Array(data.subarray(offset, offset + n))
        })
      const MiB = 1024 * 1024
      // A part for an upload the server does not know, past offset 0: start again.
      const unknown = yield* part(MiB, MiB).pipe(Effect.flip)
      assert.strictEqual(unknown._tag, "NotFound")
      assert.deepStrictEqual(yield* part(0, MiB), { offset: MiB })
      // The same part again (its answer lost): not stored again.
      assert.deepStrictEqual(yield* part(0, MiB), { offset: MiB })
      // A part that arrives before the one it follows waits for it, then is stored.
      const early = yield* Effect.fork(part(2 * MiB, MiB))
      yield* Effect.sleep("100 millis")
      assert.deepStrictEqual(yield* part(MiB, MiB), { offset: 2 * MiB })
      assert.deepStrictEqual(yield* Fiber.join(early), { offset: 3 * MiB })
      const wrongSize = yield* part(3 * MiB, 5, data.length + 1).pipe(Effect.flip)
      assert.strictEqual(wrongSize._tag, "BadRequest")
      assert.deepStrictEqual(yield* part(3 * MiB, 5), { offset: data.length })

      const commitOnce = (sha256: string, c2 = commit) =>
        Effect.gen(function*() {
          for (;;) {
            const r = yield* agent.c.api.workerExt.uploadCommit({
              path: { job: id as any, commit: c2 },
              payload: { path: "/out/data.bin", size: data.length, sha256 }
            })
            if (r.complete) return r.error ?? null
          }
        })
      assert.isNull(yield* commitOnce(sha))
      assert.isNull(yield* commitOnce(sha), "a resent commit is a poll")
      const reused = yield* commitOnce("0".repeat(64)).pipe(Effect.flip)
      assert.strictEqual(reused._tag, "BadRequest")

      // A second file whose digest does not match is not recorded.
      const other = "01ARZ3NDEKTSV4RRFFQ69G5FAW"
      yield* agent.c.api.workerExt.uploadPart({
        path: { job: id as any, commit: other },
        urlParams: { offset: 0, size: 3 },
        payload: new Uint8Array([1, 2, 3])
      })
      const mismatch = yield* Effect.gen(function*() {
        for (;;) {
          const r = yield* agent.c.api.workerExt.uploadCommit({
            path: { job: id as any, commit: other },
            payload: { path: "/out/other.bin", size: 3, sha256: "f".repeat(64) }
          })
          if (r.complete) return r.error ?? null
        }
      })
      assert.match(mismatch!, /SHA-256/)

      // buildomat's chunk and commit, with the agent's digest (our addition): checked too.
      const chunk = yield* agent.c.api.worker.chunk({ path: { job: id as any }, payload: new Uint8Array([7, 7, 7]) })
      const legacy = (sha256: string, commit_id: string) =>
        Effect.gen(function*() {
          const add = { path: `/out/legacy-${commit_id}`, size: 3, chunks: [chunk.id], commit_id, sha256 }
          for (;;) {
            const r = yield* agent.c.api.worker.addOutput({ path: { job: id as any }, payload: add })
            if (r.complete) return r.error ?? null
          }
        })
      assert.match((yield* legacy("0".repeat(64), "01ARZ3NDEKTSV4RRFFQ69G5FAX"))!, /SHA-256/)
      yield* agent.c.api.worker.jobComplete({ path: { job: id as any }, payload: { failed: false } })
      const digests = yield* c.api.jobs.outputDigests({ path: { job: id as any } })
      assert.deepStrictEqual(digests.map((d) => [d.path, d.size, d.sha256]), [["/out/data.bin", data.length, sha]])
      const outputs = yield* c.api.jobs.outputs({ path: { job: id as any } })
      const body = yield* c.download(id, outputs[0]!.id)
      const bytes = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(body.stream)))
      assert.isTrue(bytes.equals(data))
    }))
})

describe("worker events, diagnostics, and the job store from the worker", () => {
  it.scopedLive("a worker with diagnostics pending is not powered off until they complete", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests, destroyed } = yield* startServer(dir)
      const { c } = yield* userClient(url, "dave")
      const { id } = yield* c.api.jobs.submit({ payload: job("diag") })
      const agent = yield* agentFor(url, requests as any)
      yield* agent.c.api.workerDiagnostics.enable()
      yield* agent.c.api.workerDiagnostics.enable()
      for (let i = 0; i < 200; i++) {
        const p = yield* agent.c.api.worker.ping()
        if (p.job) break
        yield* Effect.sleep("20 millis")
      }
      const path = { job: id as any }
      // The job store, from inside the job: secrets are sticky, the worker sees every value.
      const none = yield* agent.c.api.workerJob.storeGet({ path: { ...path, name: "TOKEN" } })
      assert.isNull(none.value ?? null)
      yield* agent.c.api.workerJob.storePut({ path: { ...path, name: "TOKEN" }, payload: { value: "s3cret", secret: true } })
      yield* agent.c.api.workerJob.storePut({ path: { ...path, name: "TOKEN" }, payload: { value: "again", secret: false } })
      const got = yield* agent.c.api.workerJob.storeGet({ path: { ...path, name: "TOKEN" } })
      assert.deepStrictEqual(got.value, { value: "again", secret: true })
      const badName = yield* agent.c.api.workerJob.storePut({ path: { ...path, name: "no-dash" }, payload: { value: "x", secret: false } })
        .pipe(Effect.flip)
      assert.strictEqual(badName._tag, "BadRequest")

      yield* agent.c.api.worker.taskComplete({ path: { ...path, task: 0 }, payload: { failed: false } })
      yield* agent.c.api.worker.jobComplete({ path, payload: { failed: false } })
      const done = yield* c.api.jobs.get({ path })
      assert.strictEqual(done.state, "completed")
      // Diagnostics pending: neither power-off nor destruction.
      const p1 = yield* agent.c.api.worker.ping()
      assert.isFalse(p1.poweroff)
      yield* agent.c.api.workerDiagnostics.append({
        payload: [{ stream: "diag.post", time: now(), payload: "checking" }, { stream: "diag.post", time: now(), payload: "bad disk" }]
      })
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(destroyed, [])
      // A long-poll waiting for power-off wakes when they complete.
      const waiting = yield* agent.c.api.workerExt.ping({ urlParams: { wait_ms: 10_000 } }).pipe(Effect.fork)
      yield* Effect.sleep("100 millis")
      const t0 = Date.now()
      yield* agent.c.api.workerDiagnostics.complete({ payload: { hold: false } })
      const p2 = yield* waiting.await.pipe(Effect.flatten, Effect.timeout("5 seconds"))
      assert.isTrue(p2.poweroff)
      assert.isBelow(Date.now() - t0, 1000)
      for (let i = 0; i < 100 && destroyed.length === 0; i++) yield* Effect.sleep("20 millis")
      assert.strictEqual(destroyed.length, 1)

      // No route reads worker state back yet (the admin API is issue 3's): read the database.
      const [w, evs] = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return [
          yield* sql`SELECT recycle, hold_time, diagnostics FROM worker WHERE id = ${agent.id}`,
          yield* sql`SELECT seq, stream, payload FROM worker_event WHERE worker = ${agent.id} ORDER BY seq`
        ] as const
      }).pipe(Effect.provide(SqliteClient.layer({ filename: NodePath.join(dir, "data.sqlite3"), readonly: true })), Effect.orDie)
      assert.deepStrictEqual(w, [{ recycle: 1, hold_time: null, diagnostics: 0 }])
      assert.deepStrictEqual(evs, [
        { seq: 1, stream: "diag.post", payload: "checking" },
        { seq: 2, stream: "diag.post", payload: "bad disk" }
      ])
    }))
})
