import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as Crypto from "node:crypto"
import { ADMIN, client, job, raw, startServer, tempDir, userClient } from "./harness.js"
import { assigned as waitForJob, bootAgent as agentFor } from "./live.js"

describe("bad input", () => {
  it.scopedLive("gets a clear 4xx and loses nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "alice")
      const { id } = yield* c.api.jobs.submit({ payload: job("keep me") })

      const badJson = yield* raw(url, "/0/jobs", { method: "POST", token: user.token, body: "{nope", headers: { "content-type": "application/json" } })
      assert.strictEqual(badJson.status, 400)
      assert.match(badJson.json.message, /JSON/)

      const wrongType = yield* raw(url, "/0/jobs", { method: "POST", token: user.token, body: JSON.stringify({ ...job("x"), tasks: "no" }), headers: { "content-type": "application/json" } })
      assert.strictEqual(wrongType.status, 400)
      assert.match(wrongType.json.message, /tasks/)

      const noToken = yield* raw(url, "/0/whoami")
      assert.strictEqual(noToken.status, 401)
      assert.strictEqual(noToken.json.message, "not authorised")
      const wrongToken = yield* raw(url, "/0/whoami", { token: "not-a-real-token" })
      assert.strictEqual(wrongToken.status, 401)
      const userAsAdmin = yield* raw(url, "/0/users", { token: user.token })
      assert.strictEqual(userAsAdmin.status, 401)

      const badUlid = yield* raw(url, "/0/job/not-a-ulid", { token: user.token })
      assert.strictEqual(badUlid.status, 400)
      assert.match(badUlid.json.message, /ULID/)
      const unknown = yield* raw(url, "/0/job/01ARZ3NDEKTSV4RRFFQ69G5FAV", { token: user.token })
      assert.strictEqual(unknown.status, 404)
      assert.match(unknown.json.message, /does not exist/)

      const badRule = yield* raw(url, "/0/jobs", { method: "POST", token: user.token, body: JSON.stringify({ ...job("x"), output_rules: ["relative/*"] }), headers: { "content-type": "application/json" } })
      assert.strictEqual(badRule.status, 400)
      assert.match(badRule.json.message, /absolute/)
      const badTarget = yield* raw(url, "/0/jobs", { method: "POST", token: user.token, body: JSON.stringify({ ...job("x"), target: "nowhere" }), headers: { "content-type": "application/json" } })
      assert.strictEqual(badTarget.status, 400)
      assert.match(badTarget.json.message, /target/)

      const huge = yield* raw(url, "/0/jobs", { method: "POST", token: user.token, body: "x".repeat(11 * 1024 * 1024), headers: { "content-type": "application/json" } })
      assert.strictEqual(huge.status, 413)

      // Someone else's job is forbidden, not leaked.
      const bob = yield* userClient(url, "bob")
      const other = yield* raw(url, `/0/job/${id}`, { token: bob.user.token })
      assert.strictEqual(other.status, 403)

      // The server still serves, and the job is intact.
      const j = yield* c.api.jobs.get({ path: { job: id as any } })
      assert.strictEqual(j.name, "keep me")
      assert.strictEqual(j.state, "queued")
      const page = yield* c.api.jobs.list({ urlParams: {} })
      assert.deepStrictEqual(page.items.map((i) => i.id), [id])
    }))
})

describe("job life cycle over the worker protocol", () => {
  it.scopedLive("events are gap-free, outputs keep size and SHA-256, ranges work, watch resumes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests, destroyed } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "carol")
      const { id } = yield* c.api.jobs.submit({ payload: job("build", "true", { output_rules: ["=/out/*.bin"], tags: { kind: "test" } }) })
      const agent = yield* agentFor(url, requests as any)
      const pj = yield* waitForJob(agent.c)
      assert.strictEqual(pj.id, id)
      assert.deepStrictEqual(pj.output_rules, [{ rule: "/out/*.bin", ignore: false, require_match: true, size_change_ok: false }])
      assert.strictEqual(pj.tasks[0]!.workdir, "/")

      const now = new Date().toISOString()
      const lines = Array.from({ length: 250 }, (_, i) => ({ stream: i % 2 ? "stderr" : "stdout", time: now, payload: `line ${i}`, task: 0 }))
      yield* agent.c.api.worker.append({ path: { job: id as any }, payload: lines.slice(0, 100) })
      yield* agent.c.api.worker.append({ path: { job: id as any }, payload: lines.slice(100) })

      const data = Crypto.randomBytes(3 * 1024 * 1024 + 17)
      const chunks: Array<string> = []
      for (let off = 0; off < data.length; off += 1024 * 1024) {
        const r = yield* agent.c.api.worker.chunk({ path: { job: id as any }, payload: new Uint8Array(data.subarray(off, off + 1024 * 1024)) })
        chunks.push(r.id)
      }
      const commitId = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
      const add = { path: "/out/a.bin", size: data.length, chunks, commit_id: commitId }
      let res = yield* agent.c.api.worker.addOutput({ path: { job: id as any }, payload: add })
      while (!res.complete) res = yield* agent.c.api.worker.addOutput({ path: { job: id as any }, payload: add })
      assert.strictEqual(res.error ?? null, null)
      // Re-sending the same commit is a poll, not a second file.
      const again = yield* agent.c.api.worker.addOutput({ path: { job: id as any }, payload: add })
      assert.isTrue(again.complete)
      yield* agent.c.api.worker.taskComplete({ path: { job: id as any, task: 0 }, payload: { failed: false } })
      yield* agent.c.api.worker.jobComplete({ path: { job: id as any }, payload: { failed: false } })

      const j = yield* c.api.jobs.get({ path: { job: id as any } })
      assert.strictEqual(j.state, "completed")
      assert.deepStrictEqual(j.tags, { kind: "test" })
      assert.deepStrictEqual(Object.keys(j.times).sort(), ["assigned", "complete", "ready", "submit"])

      const events = yield* c.api.jobs.events({ path: { job: id as any }, urlParams: { minseq: 0 } })
      assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
      const out = events.filter((e) => e.stream === "stdout" || e.stream === "stderr")
      assert.deepStrictEqual(out.map((e) => e.payload), lines.map((l) => l.payload))
      assert.deepStrictEqual(out.map((e) => e.stream), lines.map((l) => l.stream))
      assert.strictEqual(events[0]!.stream, "control")
      assert.match(events[0]!.payload, /^job assigned to worker/)

      const outputs = yield* c.api.jobs.outputs({ path: { job: id as any } })
      assert.strictEqual(outputs.length, 1)
      assert.strictEqual(outputs[0]!.size, data.length)
      const digests = yield* c.api.jobs.outputDigests({ path: { job: id as any } })
      const sha = Crypto.createHash("sha256").update(data).digest("hex")
      assert.strictEqual(digests[0]!.sha256, sha)

      const full = yield* c.download(id, outputs[0]!.id)
      const body = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(full.stream)))
      assert.isTrue(body.equals(data))
      assert.strictEqual(full.headers["repr-digest"], `sha-256=:${Buffer.from(sha, "hex").toString("base64")}:`)
      const part = yield* c.download(id, outputs[0]!.id, { range: [10, 19] })
      assert.strictEqual(part.status, 206)
      assert.strictEqual(part.headers["content-range"], `bytes 10-19/${data.length}`)
      const partBody = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(part.stream)))
      assert.isTrue(partBody.equals(data.subarray(10, 20)))
      const bad = yield* raw(url, `/0/jobs/${id}/outputs/${outputs[0]!.id}`, { token: user.token, headers: { range: "bytes=0-1,5-6" } })
      assert.strictEqual(bad.status, 416)
      assert.strictEqual(bad.headers.get("content-range"), `bytes */${data.length}`)

      // Watch from seq 100: exactly the rest, in order, then complete.
      const msgs = yield* c.watch(id, { minseq: 100 }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
      const seqs = msgs.flatMap((m) => (m._tag === "event" ? [m.event.seq] : []))
      assert.deepStrictEqual(seqs, events.slice(99).map((e) => e.seq))
      assert.strictEqual(msgs[0]!._tag, "state")
      assert.strictEqual(msgs[msgs.length - 1]!._tag, "complete")
      // Last-Event-ID wins: resume after 240.
      const resumed = yield* c.watch(id, { minseq: 1, lastEventId: "seq-240" }).pipe(Stream.runCollect, Effect.map(Chunk.toArray))
      assert.deepStrictEqual(resumed.flatMap((m) => (m._tag === "event" ? [m.event.seq] : [])), events.slice(240).map((e) => e.seq))

      // Appending after completion is refused (409, or 401 once the worker is destroyed), and
      // the worker is recycled and destroyed.
      const late = yield* agent.c.api.worker.append({ path: { job: id as any }, payload: lines.slice(0, 1) }).pipe(Effect.flip)
      assert.oneOf(late._tag, ["Conflict", "Unauthorized"])
      for (let i = 0; i < 100 && destroyed.length === 0; i++) yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(destroyed, [agent.req.worker].map((w) => `m-${w}`))
      const ping = yield* agent.c.api.worker.ping().pipe(Effect.either)
      assert.isTrue(ping._tag === "Left" || ping.right.poweroff)
    }))

  it.scopedLive("a live watcher sees events as they are stored", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c } = yield* userClient(url, "dave")
      const { id } = yield* c.api.jobs.submit({ payload: job("live") })
      const agent = yield* agentFor(url, requests as any)
      yield* waitForJob(agent.c)
      const watcher = yield* c.watch(id, { minseq: 1 }).pipe(Stream.runCollect, Effect.fork)
      for (let i = 0; i < 5; i++) {
        yield* agent.c.api.worker.append({ path: { job: id as any }, payload: [{ stream: "stdout", time: new Date().toISOString(), payload: `tick ${i}`, task: 0 }] })
        yield* Effect.sleep("30 millis")
      }
      yield* agent.c.api.worker.jobComplete({ path: { job: id as any }, payload: { failed: true } })
      const msgs = Chunk.toArray(yield* watcher.await.pipe(Effect.flatten))
      const payloads = msgs.flatMap((m) => (m._tag === "event" && m.event.stream === "stdout" ? [m.event.payload] : []))
      assert.deepStrictEqual(payloads, ["tick 0", "tick 1", "tick 2", "tick 3", "tick 4"])
      const states = msgs.flatMap((m) => (m._tag === "state" ? [m.state] : []))
      assert.deepStrictEqual(states, ["running", "failed"])
    }))
})

describe("persistence", () => {
  it.scopedLive("a server restarted on the same database keeps jobs, events and users", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const first = yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* startServer(dir)
          const { c, user } = yield* userClient(url, "erin")
          const a = yield* c.api.jobs.submit({ payload: job("one") })
          const b = yield* c.api.jobs.submit({ payload: job("two") })
          yield* c.api.jobs.cancel({ path: { job: b.id as any } })
          for (let i = 0; i < 100; i++) {
            const j = yield* c.api.jobs.get({ path: { job: b.id as any } })
            if (j.state === "failed") break
            yield* Effect.sleep("20 millis")
          }
          const events = yield* c.api.jobs.events({ path: { job: b.id as any }, urlParams: {} })
          return { token: user.token, a: a.id, b: b.id, events }
        })
      )
      const { url } = yield* startServer(dir)
      const c = yield* client(url, first.token)
      const who = yield* c.api.jobs.whoami()
      assert.strictEqual(who.name, "erin")
      const a = yield* c.api.jobs.get({ path: { job: first.a as any } })
      assert.strictEqual(a.state, "queued")
      const b = yield* c.api.jobs.get({ path: { job: first.b as any } })
      assert.strictEqual(b.state, "failed")
      assert.isTrue(b.cancelled)
      const events = yield* c.api.jobs.events({ path: { job: first.b as any }, urlParams: {} })
      assert.deepStrictEqual(events, first.events)
      assert.isTrue(first.events.some((e) => e.payload === "job cancelled"))
    }))

  it.scopedLive("job listing pages with page_token, newest first when asked", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "frank")
      const ids: Array<string> = []
      for (let i = 0; i < 5; i++) ids.push((yield* c.api.jobs.submit({ payload: job(`j${i}`, "true", { tags: { n: String(i % 2) } }) })).id)
      const p1 = yield* c.api.jobs.list({ urlParams: { limit: 2, recent_first: true } })
      assert.deepStrictEqual(p1.items.map((i) => i.id), [ids[4], ids[3]])
      const p2 = yield* c.api.jobs.list({ urlParams: { limit: 2, page_token: p1.next_page! } })
      assert.deepStrictEqual(p2.items.map((i) => i.id), [ids[2], ids[1]])
      const tagged = yield* c.api.jobs.list({ urlParams: { tag: "n=1" } })
      assert.deepStrictEqual(tagged.items.map((i) => i.id), [ids[1], ids[3]])
      const admin = yield* client(url, ADMIN)
      const users = yield* admin.api.users.list({ urlParams: {} })
      assert.deepStrictEqual(users.map((u) => u.name), ["frank"])
    }))
})
