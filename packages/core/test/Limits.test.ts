/**
 * Limits and bad input (buildomat §7): 10 MiB request bodies, chunked or not, get a 413 with a
 * message and leave nothing behind; the per-file limit; validated names. Each violation is a 4xx
 * with a message, and what was stored before is intact.
 */
import { Api, Names } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodePath from "node:path"
import { ADMIN, job, raw, startServer, tempDir, userClient } from "./harness.js"
import { assigned, bootAgent } from "./live.js"

/** POSTs `total` bytes with `Transfer-Encoding: chunked` (no Content-Length) and reads the answer. */
const chunkedPost = (url: string, path: string, token: string, total: number, contentType: string) =>
  Effect.promise(() =>
    new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
      const u = new URL(url + path)
      const req = NodeHttp.request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: "POST",
          agent: false,
          headers: { authorization: `Bearer ${token}`, "content-type": contentType, "transfer-encoding": "chunked" }
        },
        (res) => {
          let body = ""
          res.on("data", (d) => (body += d))
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
        }
      )
      req.on("error", (e) => resolve({ error: e.message }))
      let sent = 0
      const piece = Buffer.alloc(64 * 1024, 0x20)
      const pump = () => {
        while (sent < total) {
          sent += piece.length
          if (!req.write(piece)) return void req.once("drain", pump)
        }
        req.end()
      }
      pump()
    })
  )

describe("limits", () => {
  it.scopedLive("a body over 10 MiB gets a 413, chunked or not, and nothing is kept", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { requests, url } = yield* startServer(dir)
      const { c, user } = yield* userClient(url, "alice")
      const { id } = yield* c.api.jobs.submit({ payload: job("big bodies") })

      const json = yield* chunkedPost(url, "/0/jobs", user.token, Api.MAX_REQUEST_BODY + 1024 * 1024, "application/json")
      assert.deepInclude(json, { status: 413 })
      assert.match((json as { body: string }).body, /larger than 10485760 bytes/)

      const agent = yield* bootAgent(url, requests)
      yield* assigned(agent.c)
      const chunk = yield* chunkedPost(url, `/0/worker/job/${id}/chunk`, agent.token, Api.MAX_REQUEST_BODY + 512 * 1024, "application/octet-stream")
      assert.deepInclude(chunk, { status: 413 })
      const declared = yield* raw(url, `/0/worker/job/${id}/chunk`, {
        method: "POST",
        token: agent.token,
        headers: { "content-type": "application/octet-stream" },
        body: new Uint8Array(Api.MAX_REQUEST_BODY + 1)
      })
      assert.strictEqual(declared.status, 413)
      // No partial chunk was kept.
      const chunks = NodePath.join(dir, "chunk", id)
      assert.deepStrictEqual(NodeFs.existsSync(chunks) ? NodeFs.readdirSync(chunks) : [], [])

      // Exactly 10 MiB, chunked, is accepted.
      const ok = yield* chunkedPost(url, `/0/worker/job/${id}/chunk`, agent.token, Api.MAX_REQUEST_BODY, "application/octet-stream")
      assert.deepInclude(ok, { status: 201 })
      assert.strictEqual(NodeFs.readdirSync(chunks).length, 1)
      assert.strictEqual(NodeFs.statSync(NodePath.join(chunks, NodeFs.readdirSync(chunks)[0]!)).size, Api.MAX_REQUEST_BODY)
      assert.strictEqual(Api.CHUNK_SIZE, 5 * 1024 * 1024)

      const j = yield* c.api.jobs.get({ path: { job: id as any } })
      assert.strictEqual(j.state, "running")
      assert.strictEqual((yield* c.api.jobs.list({ urlParams: {} })).items.length, 1)
    }))

  it.scopedLive("the per-file limit is configurable; a commit over it, or of the wrong size, stores nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { requests, url } = yield* startServer(dir, 4, { maxBytesPerFile: 1024 * 1024 })
      const { c } = yield* userClient(url, "bob")
      assert.deepStrictEqual(yield* c.api.jobs.quota(), { max_bytes_per_input: 1024 * 1024 })
      const { id } = yield* c.api.jobs.submit({ payload: job("limited", "true", { output_rules: ["/out/*"] }) })
      const agent = yield* bootAgent(url, requests)
      yield* assigned(agent.c)
      const j = id as any
      assert.deepStrictEqual(yield* agent.c.api.worker.quota({ path: { job: j } }), { max_bytes_per_output: 1024 * 1024 })
      const a = yield* agent.c.api.worker.chunk({ path: { job: j }, payload: new Uint8Array(700 * 1024) })
      const b = yield* agent.c.api.worker.chunk({ path: { job: j }, payload: new Uint8Array(700 * 1024) })
      const over = yield* agent.c.api.worker
        .addOutput({ path: { job: j }, payload: { path: "/out/big", size: 1400 * 1024, chunks: [a.id, b.id], commit_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" } })
        .pipe(Effect.flip)
      assert.strictEqual(over._tag, "BadRequest")
      assert.match(over.message, /exceeds the limit of 1048576 bytes/)
      const wrong = yield* agent.c.api.worker.addOutput({
        path: { job: j },
        payload: { path: "/out/short", size: 1000, chunks: [a.id], commit_id: "01ARZ3NDEKTSV4RRFFQ69G5FAW" }
      })
      let res = wrong
      while (!res.complete) {
        res = yield* agent.c.api.worker.addOutput({
          path: { job: j },
          payload: { path: "/out/short", size: 1000, chunks: [a.id], commit_id: "01ARZ3NDEKTSV4RRFFQ69G5FAW" }
        })
      }
      assert.match(res.error ?? "", /the chunks hold 716800 bytes, but the file size is 1000/)
      assert.deepStrictEqual(yield* c.api.jobs.outputs({ path: { job: j } }), [])
      assert.deepStrictEqual(NodeFs.existsSync(NodePath.join(dir, "objects", "output", id)) ? NodeFs.readdirSync(NodePath.join(dir, "objects", "output", id)) : [], [])
    }))

  it.scopedLive("bad names get a 400 that names the rule; nothing is appended or created", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { requests, url } = yield* startServer(dir)
      const { c } = yield* userClient(url, "carol")
      for (const name of ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "has space", "", "x".repeat(65)]) {
        const r = yield* raw(url, "/0/users", {
          method: "POST",
          token: ADMIN,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name })
        })
        assert.strictEqual(r.status, 400, name)
        assert.match(r.json.message, /user name/)
      }
      const badTag = yield* raw(url, "/0/jobs", {
        method: "POST",
        token: (yield* userClient(url, "dave")).user.token,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(job("x", "true", { tags: { "Upper": "v" } }))
      })
      assert.strictEqual(badTag.status, 400)
      assert.match(badTag.json.message, /tag name "Upper"/)

      const { id } = yield* c.api.jobs.submit({ payload: job("streams") })
      const agent = yield* bootAgent(url, requests)
      yield* assigned(agent.c)
      const before = yield* c.api.jobs.events({ path: { job: id as any }, urlParams: {} })
      const time = new Date().toISOString()
      const r = yield* raw(url, `/1/worker/job/${id}/append`, {
        method: "POST",
        token: agent.token,
        headers: { "content-type": "application/json" },
        body: JSON.stringify([
          { stream: "stdout", time, payload: "fine" },
          { stream: "no spaces allowed", time, payload: "bad" }
        ])
      })
      assert.strictEqual(r.status, 400)
      assert.match(r.json.message, /stream name/)
      assert.deepStrictEqual(yield* c.api.jobs.events({ path: { job: id as any }, urlParams: {} }), before)
    }))
})

describe("Names", () => {
  const valid = (s: Schema.Schema<string>, v: string) => Either.isRight(Schema.decodeUnknownEither(s)(v))
  const message = (s: Schema.Schema<string>, v: string) =>
    Either.match(Schema.decodeUnknownEither(s)(v), { onLeft: (e) => e.message, onRight: () => "" })

  it("each kind of name follows buildomat's rule", () => {
    const cases: Array<[Schema.Schema<string>, ReadonlyArray<string>, ReadonlyArray<string>]> = [
      [Names.UserName, ["alice", "a.b-c_d", "x".repeat(64)], ["", "a b", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "é"]],
      [Names.FactoryName, ["aws", "lab-1"], ["", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "a/b"]],
      [Names.TargetName, ["helios", "helios-2021 lab", "x".repeat(128)], ["", " helios", "helios ", "a\nb", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x".repeat(129)]],
      [Names.PrivilegeName, ["admin.job.read", "target/helios", "delegate"], ["", "Admin", "a b"]],
      [Names.TagName, ["gong.repo", "a-b_c.d", "0"], ["", "Upper", "a=b", "a b"]],
      [Names.StoreName, ["GITHUB_TOKEN", "a1"], ["", "a-b", "a.b", "a b"]],
      [Names.StreamName, ["", "stdout", "bg.server.stderr", "x".repeat(64)], ["x".repeat(65), "a b", "a/b"]],
      [Names.PublishName, ["ab", "v1.2.3", "x".repeat(48)], ["a", "x".repeat(49), "a/b", "a b"]]
    ]
    for (const [schema, good, bad] of cases) {
      for (const v of good) assert.isTrue(valid(schema, v), `${JSON.stringify(v)} should be valid`)
      for (const v of bad) {
        assert.isFalse(valid(schema, v), `${JSON.stringify(v)} should be refused`)
        assert.include(message(schema, v), JSON.stringify(v))
      }
    }
  })
})
