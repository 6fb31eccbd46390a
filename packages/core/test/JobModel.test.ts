/**
 * The job model over real HTTP against the real server (SQLite in a temp dir, loopback), with the
 * test playing the agent over the worker protocol: inputs, dependencies, the job store,
 * publishing, signed URLs, max_runtime, and the failure paths of each.
 */
import { Ids } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import { Database, EventHub, JobStore, JobValues, ObjectStore, Signals } from "@buildomat/core/server"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Crypto from "node:crypto"
import * as NodePath from "node:path"
import { agentFor, eventually, job, raw, startServer, tempDir, userClient, waitForJob } from "./harness.js"

type Agent = Effect.Effect.Success<ReturnType<typeof agentFor>>

const J = (id: string) => id as any

const sha256 = (b: Uint8Array) => Crypto.createHash("sha256").update(b).digest("hex")

/** Uploads `data` as input `name` of `id` in chunks of `chunk` bytes and commits it; returns the final state. */
const uploadInput = (c: Client.Client, id: string, name: string, data: Uint8Array, chunk = 64 * 1024) =>
  Effect.gen(function*() {
    const chunks: Array<string> = []
    for (let off = 0; off < data.length || (off === 0 && data.length === 0); off += chunk) {
      const r = yield* c.api.jobInputs.chunk({ path: { job: J(id) }, payload: data.subarray(off, off + chunk) })
      chunks.push(r.id)
      if (data.length === 0) break
    }
    const body = { name, size: data.length, chunks, commit_id: Ids.make() }
    let res = yield* c.api.jobInputs.addInput({ path: { job: J(id) }, payload: body })
    while (!res.complete) res = yield* c.api.jobInputs.addInput({ path: { job: J(id) }, payload: body })
    return { res, body }
  })

/** As the agent: stores `outputs` for the job, completes its task and the job. */
const finishAsAgent = (agent: Agent, id: string, outputs: Record<string, Uint8Array>, failed = false) =>
  Effect.gen(function*() {
    for (const [path, data] of Object.entries(outputs)) {
      const ch = yield* agent.c.api.worker.chunk({ path: { job: J(id) }, payload: data })
      const add = { path, size: data.length, chunks: [ch.id], commit_id: Ids.make() }
      let res = yield* agent.c.api.worker.addOutput({ path: { job: J(id) }, payload: add })
      while (!res.complete) res = yield* agent.c.api.worker.addOutput({ path: { job: J(id) }, payload: add })
      assert.strictEqual(res.error ?? null, null)
    }
    yield* agent.c.api.worker.taskComplete({ path: { job: J(id), task: 0 }, payload: { failed } })
    yield* agent.c.api.worker.jobComplete({ path: { job: J(id) }, payload: { failed } })
  })

const stateOf = (c: Client.Client, id: string) => Effect.map(c.api.jobs.get({ path: { job: J(id) } }), (j) => j.state)

const controlEvents = (c: Client.Client, id: string) =>
  Effect.map(c.allEvents(id), (es) => es.filter((e) => e.stream === "control").map((e) => e.payload))

const post = (url: string, path: string, token: string, body: unknown) =>
  raw(url, path, { method: "POST", token, body: JSON.stringify(body), headers: { "content-type": "application/json" } })

describe("inputs", () => {
  it.scopedLive("chunks and async commits while waiting, then wake-up, ping inputs and ranged downloads", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir, 4, { maxBytesPerFile: 1024 * 1024 })
      const { c, user } = yield* userClient(url, "alice")
      const bob = yield* userClient(url, "bob")

      // Bad declarations are refused, and nothing is stored.
      for (
        const [inputs, msg] of [
          [["x/y"], /must not contain "\/"/],
          [[".."], /must not be "\.\."/],
          [["  "], /blank/],
          [["a", "a"], /listed twice/],
          [Array.from({ length: 26 }, (_, i) => `i${i}`), /at most 25 inputs/]
        ] as const
      ) {
        const r = yield* post(url, "/0/jobs", user.token, job("bad", "true", { inputs }))
        assert.strictEqual(r.status, 400, JSON.stringify(inputs))
        assert.match(r.json.message, msg)
      }
      assert.deepStrictEqual((yield* c.api.jobs.list({ urlParams: {} })).items, [])

      const quota = yield* c.api.jobs.quota()
      assert.strictEqual(quota.max_bytes_per_input, 1024 * 1024)

      const { id } = yield* c.api.jobs.submit({ payload: job("with inputs", "true", { inputs: ["a.txt", "b.bin"] }) })
      const waiting = yield* c.api.jobs.get({ path: { job: J(id) } })
      assert.strictEqual(waiting.state, "waiting")
      assert.deepStrictEqual(Object.keys(waiting.times), ["submit"])

      // Someone else may not upload.
      const foreign = yield* raw(url, `/0/jobs/${id}/chunk`, { method: "POST", token: bob.user.token, body: "x" })
      assert.strictEqual(foreign.status, 403)

      const a = Crypto.randomBytes(300_000)
      const b = Crypto.randomBytes(70_000)

      // Commit failures: an undeclared name, a path, too big, wrong size, a reused commit id.
      const ch = yield* c.api.jobInputs.chunk({ path: { job: J(id) }, payload: a.subarray(0, 1000) })
      const commit = { name: "a.txt", size: 1000, chunks: [ch.id], commit_id: Ids.make() }
      const undeclared = yield* post(url, `/1/jobs/${id}/input`, user.token, { ...commit, name: "c.txt" })
      assert.strictEqual(undeclared.status, 400)
      assert.match(undeclared.json.message, /no input named "c.txt"/)
      const path = yield* post(url, `/1/jobs/${id}/input`, user.token, { ...commit, name: "x/a.txt" })
      assert.strictEqual(path.status, 400)
      const big = yield* post(url, `/1/jobs/${id}/input`, user.token, { ...commit, size: 2 * 1024 * 1024 })
      assert.strictEqual(big.status, 400)
      assert.match(big.json.message, /bigger than allowed maximum 1048576 bytes/)
      const badChunk = yield* post(url, `/1/jobs/${id}/input`, user.token, { ...commit, chunks: ["nope"] })
      assert.strictEqual(badChunk.status, 400)
      const wrongSize = { ...commit, size: 999, commit_id: Ids.make() }
      let ws = yield* c.api.jobInputs.addInput({ path: { job: J(id) }, payload: wrongSize })
      while (!ws.complete) ws = yield* c.api.jobInputs.addInput({ path: { job: J(id) }, payload: wrongSize })
      assert.match(ws.error!, /chunks hold 1000 bytes, but the file size is 999/)
      const reused = yield* post(url, `/1/jobs/${id}/input`, user.token, { ...wrongSize, size: 1000 })
      assert.strictEqual(reused.status, 400)
      assert.match(reused.json.message, /different arguments/)

      // A good commit, in several chunks.
      const up = yield* uploadInput(c, id, "a.txt", a)
      assert.isTrue(up.res.complete)
      assert.strictEqual(up.res.error ?? null, null)
      assert.strictEqual(yield* stateOf(c, id), "waiting")

      // The legacy synchronous commit for the second: the job then wakes up.
      const chb = yield* c.api.jobInputs.chunk({ path: { job: J(id) }, payload: b })
      yield* c.api.jobInputs.addInputSync({ path: { job: J(id) }, payload: { name: "b.bin", size: b.length, chunks: [chb.id] } })
      yield* eventually("the job to wake up", Effect.map(stateOf(c, id), (s) => s !== "waiting"))
      const woken = yield* c.api.jobs.get({ path: { job: J(id) } })
      assert.includeMembers(Object.keys(woken.times), ["submit", "ready"])
      const control = yield* controlEvents(c, id)
      assert.match(control[0]!, /^job dependencies complete; ready to run \(waiting for \d+ s\)$/)

      // No more uploads once it stopped waiting; polling the finished commit still works.
      const late = yield* raw(url, `/0/jobs/${id}/chunk`, { method: "POST", token: user.token, body: "x" })
      assert.strictEqual(late.status, 409)
      assert.match(late.json.message, /not waiting/)
      const lateCommit = yield* post(url, `/1/jobs/${id}/input`, user.token, { ...commit, commit_id: Ids.make() })
      assert.strictEqual(lateCommit.status, 409)
      const again = yield* c.api.jobInputs.addInput({ path: { job: J(id) }, payload: up.body })
      assert.deepStrictEqual([again.complete, again.error ?? null], [true, null])

      // The agent sees both inputs in the ping and downloads them, whole and by range.
      const agent = yield* agentFor(url, requests)
      const pj = yield* waitForJob(agent.c)
      assert.strictEqual(pj.id, id)
      assert.deepStrictEqual(pj.inputs.map((i) => i.name).sort(), ["a.txt", "b.bin"])
      const fileA = pj.inputs.find((i) => i.name === "a.txt")!.id
      const whole = yield* raw(url, `/0/worker/job/${id}/inputs/${fileA}`, { token: agent.token })
      assert.strictEqual(whole.status, 200)
      const got = yield* Effect.promise(() => fetch(`${url}/0/worker/job/${id}/inputs/${fileA}`, { headers: { authorization: `Bearer ${agent.token}` } }).then((r) => r.arrayBuffer()))
      assert.strictEqual(sha256(new Uint8Array(got)), sha256(a))
      const part = yield* Effect.promise(() =>
        fetch(`${url}/0/worker/job/${id}/inputs/${fileA}`, { headers: { authorization: `Bearer ${agent.token}`, range: "bytes=100-199" } })
          .then(async (r) => ({ status: r.status, range: r.headers.get("content-range"), body: Buffer.from(await r.arrayBuffer()) }))
      )
      assert.strictEqual(part.status, 206)
      assert.strictEqual(part.range, `bytes 100-199/${a.length}`)
      assert.isTrue(part.body.equals(a.subarray(100, 200)))
      const viaClient = yield* agent.c.api.workerJob.input({ path: { job: J(id), input: pj.inputs.find((i) => i.name === "b.bin")!.id as any } })
      assert.strictEqual(sha256(viaClient), sha256(b))

      // Not an input of this job; not a worker token.
      const other = yield* raw(url, `/0/worker/job/${id}/inputs/01ARZ3NDEKTSV4RRFFQ69G5FAV`, { token: agent.token })
      assert.strictEqual(other.status, 404)
      const asUser = yield* raw(url, `/0/worker/job/${id}/inputs/${fileA}`, { token: user.token })
      assert.strictEqual(asUser.status, 401)
    }))

  it.scopedLive("a job cancelled while it waits for inputs fails, and refuses further uploads", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "carol")
      const { id } = yield* c.api.jobs.submit({ payload: job("cancel me", "true", { inputs: ["x"] }) })
      yield* c.api.jobs.cancel({ path: { job: J(id) } })
      yield* eventually("the job to fail", Effect.map(stateOf(c, id), (s) => s === "failed"))
      const j = yield* c.api.jobs.get({ path: { job: J(id) } })
      assert.isTrue(j.cancelled)
      const chunk = yield* raw(url, `/0/jobs/${id}/chunk`, { method: "POST", token: user.token, body: "x" })
      assert.strictEqual(chunk.status, 409)
    }))
})

describe("dependencies", () => {
  it.scopedLive("wait for their prior jobs, copy outputs as inputs, and fail with a reason when they never can run", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "dora")
      const bob = yield* userClient(url, "bob")
      const bobs = yield* bob.c.api.jobs.submit({ payload: job("bob's") })
      // Out of the way of the workers this test drives.
      yield* bob.c.api.jobs.cancel({ path: { job: J(bobs.id) } })

      const prior = yield* c.api.jobs.submit({ payload: job("prior", "true", { output_rules: ["/out/**"] }) })
      const dep = (prior_job: string, extra: Partial<{ copy_outputs: boolean; on_completed: boolean; on_failed: boolean }> = {}) => ({
        prior_job,
        copy_outputs: false,
        on_completed: true,
        on_failed: false,
        ...extra
      })

      // Refused at submit.
      for (
        const [body, status, msg] of [
          [{ depends: { other: dep(bobs.id) } }, 409, /prior job does not exist/],
          [{ depends: { gone: dep("01ARZ3NDEKTSV4RRFFQ69G5FAV") } }, 409, /prior job does not exist/],
          [{ depends: { x: dep("not-a-job") } }, 400, /not a job id/],
          [{ depends: { x: dep(prior.id, { on_completed: false }) } }, 400, /at least one of on_completed and on_failed/],
          [{ depends: { "a/b": dep(prior.id) } }, 400, /must not contain "\/"/],
          [{ depends: { "..": dep(prior.id) } }, 400, /must not be/],
          [{ depends: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`d${i}`, dep(prior.id)])) }, 400, /at most 8 dependencies/],
          [{ inputs: ["build"], depends: { build: dep(prior.id, { copy_outputs: true }) } }, 400, /where input "build" would be/]
        ] as const
      ) {
        const r = yield* post(url, "/0/jobs", user.token, job("bad", "true", body))
        assert.strictEqual(r.status, status, JSON.stringify(body))
        assert.match(r.json.message, msg)
      }

      const copier = yield* c.api.jobs.submit({
        payload: job("copier", "true", { depends: { build: dep(prior.id, { copy_outputs: true }) } })
      })
      const onFail = yield* c.api.jobs.submit({
        payload: job("on failure", "true", { depends: { build: dep(prior.id, { on_completed: false, on_failed: true }) } })
      })
      assert.strictEqual(yield* stateOf(c, copier.id), "waiting")
      assert.strictEqual(yield* stateOf(c, onFail.id), "waiting")

      // The prior job runs and stores two outputs.
      const a1 = yield* agentFor(url, requests)
      const pj = yield* waitForJob(a1.c)
      assert.strictEqual(pj.id, prior.id)
      const outA = Buffer.from("first output\n")
      const outB = Crypto.randomBytes(5000)
      // An output path that could climb out of /input/<dep> is refused when it is stored.
      const sneaky = yield* a1.c.api.worker.chunk({ path: { job: J(prior.id) }, payload: outA })
      const climb = yield* raw(url, `/1/worker/job/${prior.id}/output`, {
        method: "POST",
        token: a1.token,
        body: JSON.stringify({ path: "/out/../../etc/passwd", size: outA.length, chunks: [sneaky.id], commit_id: Ids.make() }),
        headers: { "content-type": "application/json" }
      })
      assert.strictEqual(climb.status, 400)
      assert.match(climb.json.message, /normalised/)
      yield* finishAsAgent(a1, prior.id, { "/out/a.txt": outA, "/out/sub/b.bin": outB })

      // The copier wakes with the outputs as inputs; the on-failure job fails, saying why.
      yield* eventually("the dependants to move", Effect.map(
        Effect.all([stateOf(c, copier.id), stateOf(c, onFail.id)]),
        ([x, y]) => x !== "waiting" && y === "failed"
      ))
      const failMsgs = yield* controlEvents(c, onFail.id)
      assert.include(failMsgs, `this job depends on job ${prior.id} (build) failing but it has completed; failing job`)

      const a2 = yield* agentFor(url, requests)
      const cj = yield* waitForJob(a2.c)
      assert.strictEqual(cj.id, copier.id)
      assert.deepStrictEqual(cj.inputs.map((i) => i.name).sort(), ["build/out/a.txt", "build/out/sub/b.bin"])
      const outputs = yield* c.api.jobs.outputs({ path: { job: J(prior.id) } })
      // Referenced, not copied: the same file ids as the prior job's outputs.
      assert.deepStrictEqual(cj.inputs.map((i) => i.id).sort(), outputs.map((o) => o.id).sort())
      const got = yield* a2.c.api.workerJob.input({ path: { job: J(copier.id), input: cj.inputs.find((i) => i.name === "build/out/sub/b.bin")!.id as any } })
      assert.strictEqual(sha256(got), sha256(outB))
      // The prior job's worker cannot read the copier's inputs.
      const wrongWorker = yield* raw(url, `/0/worker/job/${copier.id}/inputs/${cj.inputs[0]!.id}`, { token: a1.token })
      assert.oneOf(wrongWorker.status, [401, 403])

      // on_failed: satisfied by a failed (here cancelled) prior job; on_completed: fails.
      const doomed = yield* c.api.jobs.submit({ payload: job("doomed") })
      const afterFail = yield* c.api.jobs.submit({
        payload: job("after failure", "true", { depends: { d: dep(doomed.id, { on_completed: false, on_failed: true }) } })
      })
      const afterSuccess = yield* c.api.jobs.submit({ payload: job("after success", "true", { depends: { d: dep(doomed.id) } }) })
      yield* c.api.jobs.cancel({ path: { job: J(doomed.id) } })
      yield* eventually("the dependants of the failed job to move", Effect.map(
        Effect.all([stateOf(c, afterFail.id), stateOf(c, afterSuccess.id)]),
        ([x, y]) => x !== "waiting" && y === "failed"
      ))
      const ready = yield* controlEvents(c, afterFail.id)
      assert.match(ready[0]!, /^job dependencies complete; ready to run/)
      assert.include(
        yield* controlEvents(c, afterSuccess.id),
        `this job depends on job ${doomed.id} (d) completing, but it has failed; failing job`
      )
    }))
})

describe("the job store", () => {
  it.scopedLive("values from users and the worker; secrets hidden and sticky; limits; no writes after completion", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "erin")
      const bob = yield* userClient(url, "bob")
      const { id } = yield* c.api.jobs.submit({ payload: job("store") })
      const put = (name: string, value: string, secret = false) =>
        c.api.jobStore.put({ path: { job: J(id), name }, payload: { value, secret } })

      yield* put("PLAIN", "hello")
      yield* put("TOKEN", "s3cr3t", true)
      // Once secret, always secret.
      yield* put("TOKEN", "s3cr3t-2", false)
      const list = yield* c.api.jobStore.list({ path: { job: J(id) } })
      assert.deepStrictEqual(Object.keys(list).sort(), ["PLAIN", "TOKEN"])
      assert.strictEqual(list["PLAIN"]!.value, "hello")
      assert.strictEqual(list["PLAIN"]!.source, "user")
      assert.isFalse(list["PLAIN"]!.secret)
      assert.strictEqual(list["TOKEN"]!.value, null)
      assert.isTrue(list["TOKEN"]!.secret)
      const rawList = yield* raw(url, `/0/jobs/${id}/store`, { token: user.token })
      assert.notInclude(rawList.text, "s3cr3t")

      // Bad input: 4xx with a message, nothing stored.
      const badName = yield* raw(url, `/0/jobs/${id}/store/no-dash`, {
        method: "PUT",
        token: user.token,
        body: JSON.stringify({ value: "x", secret: false }),
        headers: { "content-type": "application/json" }
      })
      assert.strictEqual(badName.status, 400)
      assert.match(badName.json.message, /\[A-Za-z0-9_\]/)
      const tooBig = yield* put("BIG", "x".repeat(10 * 1024 + 1)).pipe(Effect.flip)
      assert.strictEqual(tooBig._tag, "BadRequest")
      assert.match(tooBig.message, /10 KiB/)
      yield* put("EXACT", "x".repeat(10 * 1024))
      const foreign = yield* bob.c.api.jobStore.list({ path: { job: J(id) } }).pipe(Effect.flip)
      assert.strictEqual(foreign._tag, "Forbidden")
      for (let i = 0; i < 97; i++) yield* put(`V${i}`, String(i))
      const full = yield* put("ONE_MORE", "x").pipe(Effect.flip)
      assert.strictEqual(full._tag, "Conflict")
      assert.match(full.message, /100 store values/)
      yield* put("PLAIN", "overwriting is fine when full")
      assert.strictEqual(Object.keys(yield* c.api.jobStore.list({ path: { job: J(id) } })).length, 100)

      // The worker sees secrets, and writes with source "worker".
      const agent = yield* agentFor(url, requests)
      yield* waitForJob(agent.c)
      const secret = yield* agent.c.api.workerJob.storeGet({ path: { job: J(id), name: "TOKEN" } })
      assert.deepStrictEqual(secret.value, { value: "s3cr3t-2", secret: true })
      const missing = yield* agent.c.api.workerJob.storeGet({ path: { job: J(id), name: "NOPE" } })
      assert.strictEqual(missing.value ?? null, null)
      yield* agent.c.api.workerJob.storePut({ path: { job: J(id), name: "PLAIN" }, payload: { value: "from the job", secret: false } })
      const after = yield* c.api.jobStore.list({ path: { job: J(id) } })
      assert.strictEqual(after["PLAIN"]!.value, "from the job")
      assert.strictEqual(after["PLAIN"]!.source, "worker")
      const badWorkerName = yield* raw(url, `/0/worker/job/${id}/store/a.b`, { token: agent.token })
      assert.strictEqual(badWorkerName.status, 400)

      // The archive's view drops secrets and keeps everything else.
      const redacted = yield* Effect.gen(function*() {
        const values = yield* JobValues.JobValues
        return yield* values.redacted(id)
      }).pipe(
        Effect.provide(
          JobValues.layer.pipe(
            Layer.provideMerge(JobStore.layer),
            Layer.provide(Layer.mergeAll(EventHub.layer, Signals.layer)),
            Layer.provideMerge(Database.layer(NodePath.join(dir, "data.sqlite3"))),
            Layer.provide(NodeContext.layer)
          )
        )
      )
      assert.strictEqual(redacted["TOKEN"]!.value, null)
      assert.isTrue(redacted["TOKEN"]!.secret)
      assert.strictEqual(redacted["PLAIN"]!.value, "from the job")
      assert.notInclude(JSON.stringify(redacted), "s3cr3t")

      yield* finishAsAgent(agent, id, {})
      const closed = yield* put("PLAIN", "too late").pipe(Effect.flip)
      assert.strictEqual(closed._tag, "Conflict")
      assert.match(closed.message, /already complete/)
    }))
})

describe("publishing and signed URLs", () => {
  it.scopedLive("publish once complete; public GET/HEAD with ranges and no token; same mapping again, another is 409", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "fred")
      const { id } = yield* c.api.jobs.submit({ payload: job("release", "true", { output_rules: ["/out/*"] }) })
      const agent = yield* agentFor(url, requests)
      yield* waitForJob(agent.c)
      const data = Crypto.randomBytes(20_000)
      const other = Buffer.from("other file\n")
      const ch = yield* agent.c.api.worker.chunk({ path: { job: J(id) }, payload: data })
      const add = { path: "/out/tool.tgz", size: data.length, chunks: [ch.id], commit_id: Ids.make() }
      let res = yield* agent.c.api.worker.addOutput({ path: { job: J(id) }, payload: add })
      while (!res.complete) res = yield* agent.c.api.worker.addOutput({ path: { job: J(id) }, payload: add })
      const outs = yield* c.api.jobs.outputs({ path: { job: J(id) } })
      const tool = outs[0]!.id
      const early = yield* c.api.jobOutputs.publish({ path: { job: J(id), output: tool as any }, payload: { series: "tools", version: "1.0", name: "tool.tgz" } }).pipe(Effect.flip)
      assert.strictEqual(early._tag, "Conflict")
      assert.match(early.message, /must be complete/)
      yield* finishAsAgent(agent, id, { "/out/other.txt": other })
      const all = yield* c.api.jobs.outputs({ path: { job: J(id) } })
      const otherId = all.find((o) => o.path === "/out/other.txt")!.id

      for (const bad of [{ series: "t", version: "1.0", name: "x1" }, { series: "tools", version: "1/0", name: "x1" }, { series: "tools", version: "1.0", name: "x".repeat(49) }]) {
        const r = yield* c.api.jobOutputs.publish({ path: { job: J(id), output: tool as any }, payload: bad }).pipe(Effect.flip)
        assert.strictEqual(r._tag, "BadRequest")
        assert.match(r.message, /invalid published file ID/)
      }
      const mapping = { series: "tools", version: "1.0", name: "tool.tgz" }
      yield* c.api.jobOutputs.publish({ path: { job: J(id), output: tool as any }, payload: mapping })
      yield* c.api.jobOutputs.publish({ path: { job: J(id), output: tool as any }, payload: mapping })
      const taken = yield* c.api.jobOutputs.publish({ path: { job: J(id), output: otherId as any }, payload: mapping }).pipe(Effect.flip)
      assert.strictEqual(taken._tag, "Conflict")
      assert.match(taken.message, /already exists with different contents/)
      const noOutput = yield* c.api.jobOutputs.publish({ path: { job: J(id), output: "01ARZ3NDEKTSV4RRFFQ69G5FAV" as any }, payload: { ...mapping, name: "zz" } }).pipe(Effect.flip)
      assert.strictEqual(noOutput._tag, "NotFound")

      // Public, without a token.
      const pub = `${url}/0/public/file/fred/tools/1.0/tool.tgz`
      const whole = yield* Effect.promise(() => fetch(pub).then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) })))
      assert.strictEqual(whole.status, 200)
      assert.isTrue(whole.body.equals(data))
      const head = yield* Effect.promise(() => fetch(pub, { method: "HEAD" }))
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.headers.get("content-length"), String(data.length))
      assert.strictEqual(head.headers.get("accept-ranges"), "bytes")
      const part = yield* Effect.promise(() => fetch(pub, { headers: { range: "bytes=-10" } }).then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) })))
      assert.strictEqual(part.status, 206)
      assert.isTrue(part.body.equals(data.subarray(data.length - 10)))
      const badRange = yield* Effect.promise(() => fetch(pub, { headers: { range: "bytes=0-1,4-5" } }))
      assert.strictEqual(badRange.status, 416)
      for (const missing of ["nobody/tools/1.0/tool.tgz", "fred/tools/2.0/tool.tgz"]) {
        const r = yield* raw(url, `/0/public/file/${missing}`)
        assert.strictEqual(r.status, 404)
        assert.strictEqual(r.json.message, "published file not found")
      }

      // HEAD on an output (unpublished in buildomat), and the legacy job list.
      const outHead = yield* Effect.promise(() => fetch(`${url}/0/jobs/${id}/outputs/${tool}`, { method: "HEAD", headers: { authorization: `Bearer ${user.token}` } }))
      assert.strictEqual(outHead.status, 200)
      assert.strictEqual(outHead.headers.get("content-length"), String(data.length))
      assert.strictEqual(outHead.headers.get("content-type"), "application/octet-stream")
      const legacy = yield* c.api.jobOutputs.legacyList()
      assert.deepStrictEqual(legacy.map((j) => [j.id, j.state]), [[id, "completed"]])
    }))

  it.scopedLive("server-signed URLs: no token needed, headers as asked, tampering and expiry refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c } = yield* userClient(url, "gina")
      const { id } = yield* c.api.jobs.submit({ payload: job("signed") })
      const agent = yield* agentFor(url, requests)
      yield* waitForJob(agent.c)
      const data = Buffer.from("a report\n".repeat(100))
      yield* finishAsAgent(agent, id, { "/out/report.txt": data })
      const [out] = yield* c.api.jobs.outputs({ path: { job: J(id) } })
      const sign = (body: { expiry_seconds: number; content_type?: string; content_disposition?: string }) =>
        c.api.jobOutputs.sign({ path: { job: J(id), output: out!.id as any }, payload: body })

      const tooLong = yield* sign({ expiry_seconds: 3601 }).pipe(Effect.flip)
      assert.strictEqual(tooLong._tag, "BadRequest")
      assert.match(tooLong.message, /at most one hour/)
      const injection = yield* sign({ expiry_seconds: 60, content_type: "text/plain\r\nx-evil: 1" }).pipe(Effect.flip)
      assert.strictEqual(injection._tag, "BadRequest")

      const s = yield* sign({ expiry_seconds: 3600, content_type: "text/plain", content_disposition: "inline" })
      assert.strictEqual(s.size, data.length)
      assert.isTrue(s.available)
      assert.isTrue(s.url.startsWith(`${url}/ext/0/jobs/${id}/outputs/${out!.id}/signed?`))
      const got = yield* Effect.promise(() => fetch(s.url).then(async (r) => ({ status: r.status, type: r.headers.get("content-type"), disp: r.headers.get("content-disposition"), body: Buffer.from(await r.arrayBuffer()) })))
      assert.strictEqual(got.status, 200)
      assert.strictEqual(got.type, "text/plain")
      assert.strictEqual(got.disp, "inline")
      assert.isTrue(got.body.equals(data))
      const ranged = yield* Effect.promise(() => fetch(s.url, { headers: { range: "bytes=0-8" } }).then(async (r) => ({ status: r.status, body: await r.text() })))
      assert.deepStrictEqual(ranged, { status: 206, body: "a report\n" })

      const u = new URL(s.url)
      u.searchParams.set("content_type", "text/html")
      const tampered = yield* raw(url, `${u.pathname}${u.search}`)
      assert.strictEqual(tampered.status, 403)
      assert.match(tampered.json.message, /signature does not match/)
      const noSig = yield* raw(url, `${u.pathname}?expires=${u.searchParams.get("expires")}&signature=00`)
      assert.strictEqual(noSig.status, 403)

      const short = yield* sign({ expiry_seconds: 1 })
      yield* Effect.sleep("2100 millis")
      const expired = yield* raw(url, new URL(short.url).pathname + new URL(short.url).search)
      assert.strictEqual(expired.status, 403)
      assert.match(expired.json.message, /expired/)
    }))

  it.scopedLive("an object store that can presign answers the sign request itself", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const calls: Array<{ key: string; expirySeconds: number; contentType: string | undefined }> = []
      const fsStore = ObjectStore.makeFileSystem(NodePath.join(dir, "objects"))
      const presigning: ObjectStore.ObjectStore = {
        ...fsStore,
        presign: (key, o) =>
          Effect.sync(() => {
            calls.push({ key, expirySeconds: o.expirySeconds, contentType: o.contentType })
            return { url: `https://bucket.example/${key}?X-Amz-Expires=${o.expirySeconds}`, available: false }
          })
      }
      const { url, requests } = yield* startServer(dir, 4, { objectStore: Layer.succeed(ObjectStore.ObjectStore, presigning) })
      const { c } = yield* userClient(url, "hana")
      const { id } = yield* c.api.jobs.submit({ payload: job("s3") })
      const agent = yield* agentFor(url, requests)
      yield* waitForJob(agent.c)
      yield* finishAsAgent(agent, id, { "/out/x": Buffer.from("x") })
      const [out] = yield* c.api.jobs.outputs({ path: { job: J(id) } })
      const s = yield* c.api.jobOutputs.sign({ path: { job: J(id), output: out!.id as any }, payload: { expiry_seconds: 600, content_type: "text/plain" } })
      assert.deepStrictEqual(s, { url: `https://bucket.example/output/${id}/${out!.id}?X-Amz-Expires=600`, available: false, size: 1 })
      assert.deepStrictEqual(calls, [{ key: `output/${id}/${out!.id}`, expirySeconds: 600, contentType: "text/plain" }])
    }))
})

describe("max_runtime", () => {
  it.scopedLive("a job running past it is aborted: control event, worker recycled, job failed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests, destroyed } = yield* startServer(dir, 4, { maxRuntime: 1 })
      const { c } = yield* userClient(url, "ivan")
      const { id } = yield* c.api.jobs.submit({ payload: job("slow", "sleep 100") })
      const agent = yield* agentFor(url, requests)
      yield* waitForJob(agent.c)
      yield* eventually("the job to be aborted", Effect.map(stateOf(c, id), (s) => s === "failed"), 15)
      const control = yield* controlEvents(c, id)
      assert.isTrue(control.some((m) => /^job duration \d+ exceeds 1 seconds; aborting$/.test(m)), JSON.stringify(control))
      assert.include(control, "worker failed without completing job")
      const j = yield* c.api.jobs.get({ path: { job: J(id) } })
      assert.includeMembers(Object.keys(j.times), ["submit", "ready", "assigned", "complete"])
      yield* eventually("the worker to be destroyed", Effect.sync(() => destroyed.length === 1))
      const ping = yield* agent.c.api.worker.ping().pipe(Effect.either)
      assert.isTrue(ping._tag === "Left" || ping.right.poweroff)
    }))
})
