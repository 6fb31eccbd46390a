/**
 * Job archiving and purge on the real server, under `TestClock`: the archive is buildomat's TLV-C
 * layout, reads switch to it and answer exactly as before, purge keeps only the job row, the job
 * store keeps ordinary values and drops secrets, operator requests are checked, and the local
 * cleanups (chunks, orphaned files) run on their timers.
 */
import type { Client } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Option, Scope, Stream, TestClock } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { client, job, raw, type Started, startServer, tempDir, userClient } from "./harness.js"
import { advance, assigned, bootAgent, eventually, query, runAssigned, settle } from "./live.js"
import { readJobArchive } from "./tlvc-reader.js"

/** Everything a user can read about a job, to compare before and after archiving. */
const snapshot = (c: Client.Client, id: string) =>
  Effect.gen(function*() {
    const j = id as any
    const view = yield* c.api.jobs.get({ path: { job: j } })
    const events = yield* c.allEvents(id)
    const from100 = yield* c.api.jobs.events({ path: { job: j }, urlParams: { minseq: 100 } })
    const outputs = yield* c.api.jobs.outputs({ path: { job: j } })
    const digests = yield* c.api.jobs.outputDigests({ path: { job: j } })
    const bodies: Array<string> = []
    for (const o of outputs) {
      const res = yield* c.download(id, o.id)
      bodies.push(Buffer.concat(Chunk.toArray(yield* Stream.runCollect(res.stream))).toString("base64"))
    }
    const watched = yield* c.watch(id, { minseq: 1 }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
    return { view, events, from100, outputs, digests, bodies, watched }
  })

const until = <A>(what: string, check: Effect.Effect<boolean, any, any>) =>
  eventually(what, Effect.map(check, (ok) => (ok ? Option.some(true) : Option.none())))

const jobRow = (dir: string, id: string) =>
  Effect.map(
    query<{ complete: number; time_archived: string | null; time_purged: string | null }>(
      dir,
      "SELECT complete, time_archived, time_purged FROM job WHERE id = ?",
      [id]
    ),
    (r) => r[0]!
  )

const counts = (dir: string, id: string) =>
  Effect.gen(function*() {
    const out: Record<string, number> = {}
    for (const t of ["task", "job_event", "job_file", "job_output", "job_output_rule", "job_tag", "job_time"]) {
      const [{ n }] = yield* query<{ n: number }>(dir, `SELECT count(*) AS n FROM ${t} WHERE job = ?`, [id])
      out[t] = n
    }
    return out
  })

/** Runs one job through the manual agent: 250 lines, two outputs (one empty). */
const runJob = (url: string, requests: any, c: Client.Client, name: string) =>
  Effect.gen(function*() {
    const { id } = yield* c.api.jobs.submit({
      payload: job(name, "true", { output_rules: ["/out/*"], tags: { kind: "archive-test" } })
    })
    const agent = yield* bootAgent(url, requests)
    yield* assigned(agent.c)
    const data = Crypto.randomBytes(2 * 1024 * 1024 + 333)
    yield* runAssigned(agent.c, id, { lines: 250, outputs: [{ path: "/out/a.bin", data }, { path: "/out/empty", data: new Uint8Array(0) }] })
    yield* until("the job to complete", Effect.map(c.api.jobs.get({ path: { job: id as any } }), (j) => j.state === "completed"))
    return { id, data }
  })

/** These tests move the TestClock through many loop passes; each pass takes real time. */
const TIMEOUT = 180_000

describe.concurrent("job archive and purge", () => {
  it.scoped("automatic: archived once complete, purged after purgeAfter; reads answer as before", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const { requests, url } = yield* startServer(dir, 4, {
        background: { jobAutoArchive: true, jobAutoPurge: true, purgeAfter: "3 minutes" }
      })
      const { c } = yield* userClient(url, "alice")
      const { id, data } = yield* runJob(url, requests, c, "archived")
      const before = yield* snapshot(c, id)
      assert.strictEqual(before.events.filter((e) => e.stream === "stdout" || e.stream === "stderr").length, 250)
      assert.strictEqual(Buffer.from(before.bodies[0]!, "base64").equals(data), true)

      yield* advance("2 seconds", "1 second")
      const archived = yield* eventually(
        "the job to be archived",
        Effect.map(jobRow(dir, id), (r) => Option.fromNullable(r.time_archived))
      )
      const key = NodePath.join(dir, "objects", "job", "2", `${id}.tlvc`)
      const cache = NodePath.join(dir, "archive", `${id}.tlvc`)
      assert.isTrue(NodeFs.readFileSync(key).equals(NodeFs.readFileSync(cache)))

      const after = yield* snapshot(c, id)
      assert.deepStrictEqual(after.view, { ...before.view, time_archived: archived })
      assert.deepStrictEqual({ ...after, view: null }, { ...before, view: null })

      // Not yet: the job has been archived for less than purgeAfter.
      yield* advance("2 minutes", "20 seconds")
      assert.isNull((yield* jobRow(dir, id)).time_purged)
      yield* advance("90 seconds", "20 seconds")
      const purged = yield* eventually("the job to be purged", Effect.map(jobRow(dir, id), (r) => Option.fromNullable(r.time_purged)))
      assert.deepStrictEqual(yield* counts(dir, id), {
        task: 0,
        job_event: 0,
        job_file: 0,
        job_output: 0,
        job_output_rule: 0,
        job_tag: 0,
        job_time: 0
      })
      const gone = yield* snapshot(c, id)
      assert.deepStrictEqual(gone.view, { ...before.view, time_archived: archived, time_purged: purged })
      assert.deepStrictEqual({ ...gone, view: null }, { ...before, view: null })
      // Ranges are served from the stored file, found through the archive; others may not read it.
      const range = yield* c.download(id, before.outputs[0]!.id, { range: [10, 19] }).pipe(
        Effect.flatMap((r) => Effect.map(Stream.runCollect(r.stream), (ch) => ({ status: r.status, body: Buffer.concat(Chunk.toArray(ch)) })))
      )
      assert.strictEqual(range.status, 206)
      assert.isTrue(range.body.equals(data.subarray(10, 20)))
      const other = yield* userClient(url, "mallory")
      const denied = yield* raw(url, `/0/jobs/${id}/outputs/${before.outputs[0]!.id}`, { token: other.user.token })
      assert.strictEqual(denied.status, 403)
    }), TIMEOUT)

  it.scoped("the default purge delay is 14 days; a damaged cache is fetched again from the store", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const options = { background: { jobAutoArchive: true, jobAutoPurge: true } }
      /** Runs `f` against a server started on `dir`, then stops the server. */
      const withServer = <A, E>(f: (s: Started) => Effect.Effect<A, E, Scope.Scope>) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const out = yield* Effect.flatMap(startServer(dir, 4, options), f).pipe(Scope.extend(scope))
          yield* Scope.close(scope, Exit.void)
          return out
        })
      const { before, id, token } = yield* withServer((s) =>
        Effect.gen(function*() {
          const { c, user } = yield* userClient(s.url, "owner")
          const { id } = yield* runJob(s.url, s.requests, c, "fourteen days")
          const before = yield* snapshot(c, id)
          yield* advance("2 seconds", "1 second")
          yield* until("the job to be archived", Effect.map(jobRow(dir, id), (r) => r.time_archived !== null))
          return { before, id, token: user.token }
        })
      )
      // 13 days and 23 hours later (the server was down): not purged at start, nor a minute on.
      yield* TestClock.adjust("13 days")
      yield* TestClock.adjust("23 hours")
      yield* withServer(() => advance("1 minute", "20 seconds"))
      assert.isNull((yield* jobRow(dir, id)).time_purged)

      // The cached archive gets damaged (one byte of the last event's checksum).
      const cache = NodePath.join(dir, "archive", `${id}.tlvc`)
      const stored = NodeFs.readFileSync(NodePath.join(dir, "objects", "job", "2", `${id}.tlvc`))
      const damaged = Buffer.from(stored)
      damaged[damaged.length - 3] = damaged[damaged.length - 3]! ^ 0xff
      NodeFs.writeFileSync(cache, damaged)

      yield* TestClock.adjust("2 hours")
      const after = yield* withServer((s) =>
        Effect.gen(function*() {
          yield* settle
          yield* until("the job to be purged", Effect.map(jobRow(dir, id), (r) => r.time_purged !== null))
          return yield* snapshot(yield* client(s.url, token), id)
        })
      )
      assert.deepStrictEqual({ ...after, view: null }, { ...before, view: null })
      assert.isString(after.view.time_purged)
      assert.isTrue(NodeFs.readFileSync(cache).equals(stored))
    }), TIMEOUT)

  it.scoped("operator requests are checked; the archive is buildomat's TLV-C; the store drops secrets", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const { queue, requests, url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "carol")

      const pending = yield* c.api.jobs.submit({ payload: job("not yet") })
      const notDone = yield* queue.requestArchive(pending.id).pipe(Effect.flip)
      assert.strictEqual(notDone._tag, "BadRequest")
      assert.match(notDone.message, /until complete/)
      assert.strictEqual((yield* queue.requestPurge(pending.id).pipe(Effect.flip))._tag, "BadRequest")
      assert.strictEqual((yield* queue.requestArchive(Ids.make()).pipe(Effect.flip))._tag, "NotFound")
      yield* c.api.jobs.cancel({ path: { job: pending.id as any } })

      const { id } = yield* runJob(url, requests, c, "requested")
      // The job store belongs to another part of the server; here the test creates buildomat's
      // job_store table and rows, as that part's migration and handlers would.
      yield* query(dir, `CREATE TABLE IF NOT EXISTS job_store (
        job TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, secret INTEGER NOT NULL,
        source TEXT NOT NULL, time_update TEXT NOT NULL, PRIMARY KEY (job, name))`)
      const t = new Date().toISOString()
      yield* query(dir, "INSERT INTO job_store VALUES (?, 'PLAIN', 'visible', 0, 'user', ?), (?, 'TOKEN', 'hunter2-secret', 1, 'worker', ?)", [id, t, id, t])
      const before = yield* snapshot(c, id)

      // Without automatic archiving nothing happens on its own.
      yield* advance("2 minutes", "30 seconds")
      assert.isNull((yield* jobRow(dir, id)).time_archived)
      assert.strictEqual((yield* queue.requestPurge(id).pipe(Effect.flip)).message, "job cannot be purged until archived")

      yield* queue.requestArchive(id)
      yield* queue.requestArchive(id)
      yield* until("the job to be archived", Effect.map(jobRow(dir, id), (r) => r.time_archived !== null))

      const file = NodeFs.readFileSync(NodePath.join(dir, "objects", "job", "2", `${id}.tlvc`))
      assert.strictEqual(file.indexOf("hunter2-secret"), -1, "a secret value is not in the archive")
      const a = readJobArchive(file)
      assert.deepStrictEqual(a.header, { vers: 1, type: "archive", arch: { tag: "ARCH", vers: 2, type: "job" } })
      assert.strictEqual(a.job.id, id)
      assert.strictEqual(a.job.owner_name, "carol")
      assert.strictEqual(a.job.target_resolved_name, "default")
      assert.deepStrictEqual(a.job.tags, { kind: "archive-test" })
      assert.deepStrictEqual(a.job.output_rules, [{ rule: "/out/*", ignore: false, size_change_ok: false, require_match: false }])
      assert.deepStrictEqual(a.job.store, {
        PLAIN: { name: "PLAIN", value: "visible", secret: false, source: "user", time_update: t },
        TOKEN: { name: "TOKEN", value: null, secret: true, source: "worker", time_update: t }
      })
      assert.deepStrictEqual(
        a.job.outputs.map((o: any) => [o.path, o.file.size, o.file.sha256]),
        before.digests.map((d) => [d.path, d.size, d.sha256])
      )
      assert.strictEqual(a.job.worker_info.factory.name, "manual")
      assert.deepStrictEqual(a.job.tasks.map((t: any) => [t.seq, t.name, t.complete, t.failed]), [[0, "t", true, false]])
      assert.deepStrictEqual(a.index, a.events.map((e) => e.offset))
      assert.deepStrictEqual(
        a.events.map((e, i) => ({ seq: i + 1, ...e.value })),
        before.events.map((e) => ({ seq: e.seq, task: e.task, stream: e.stream, time: e.time, time_remote: e.time_remote, payload: e.payload }))
      )
      assert.isTrue(a.events.every((e) => e.tag === "EVNT"))

      yield* queue.requestPurge(id)
      yield* until("the job to be purged", Effect.map(jobRow(dir, id), (r) => r.time_purged !== null))
      const [{ n }] = yield* query<{ n: number }>(dir, "SELECT count(*) AS n FROM job_store WHERE job = ?", [id])
      assert.strictEqual(n, 0)
      yield* queue.requestPurge(id)
      const after = yield* snapshot(c, id)
      assert.deepStrictEqual({ ...after, view: null }, { ...before, view: null })
      assert.strictEqual(after.view.time_purged !== null, true)
    }), TIMEOUT)

  it.scoped("chunk cleanup (73 s) and the cleanup of orphaned files (15 s)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const dir = yield* tempDir()
      const { requests, url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "dave")
      const { id } = yield* runJob(url, requests, c, "done")
      const running = yield* c.api.jobs.submit({ payload: job("running") })
      const agent = yield* bootAgent(url, requests)
      yield* assigned(agent.c)
      yield* agent.c.api.worker.chunk({ path: { job: running.id as any }, payload: new Uint8Array([1, 2, 3]) })

      const chunkDir = NodePath.join(dir, "chunk")
      const unknown = Ids.make()
      for (const d of [id, unknown, "not-a-job"]) {
        NodeFs.mkdirSync(NodePath.join(chunkDir, d), { recursive: true })
        NodeFs.writeFileSync(NodePath.join(chunkDir, d, Ids.make()), "left over")
      }
      const outputs = NodePath.join(dir, "objects", "output", id)
      const kept = NodeFs.readdirSync(outputs).sort()
      const orphan = Ids.make()
      NodeFs.writeFileSync(NodePath.join(outputs, orphan), "a commit that never reached the database")

      yield* advance("16 seconds", "8 seconds")
      yield* until("the orphan to be removed", Effect.sync(() => !NodeFs.existsSync(NodePath.join(outputs, orphan))))
      assert.deepStrictEqual(NodeFs.readdirSync(outputs).sort(), kept)
      const [{ cleaned }] = yield* query<{ cleaned: string | null }>(dir, "SELECT time_files_cleaned AS cleaned FROM job WHERE id = ?", [id])
      assert.isString(cleaned)
      assert.deepStrictEqual(NodeFs.readdirSync(chunkDir).sort(), [id, running.id, unknown, "not-a-job"].sort())

      yield* advance("60 seconds", "20 seconds")
      yield* until("the chunks to be removed", Effect.sync(() => !NodeFs.existsSync(NodePath.join(chunkDir, unknown))))
      assert.deepStrictEqual(NodeFs.readdirSync(chunkDir).sort(), [running.id, "not-a-job"].sort())
      assert.strictEqual(NodeFs.readdirSync(NodePath.join(chunkDir, running.id)).length, 1)
    }), TIMEOUT)
})
