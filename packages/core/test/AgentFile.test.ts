/**
 * `GET/HEAD /file/agent` and `/file/agent.gz` over real HTTP: the bytes, the gzip, the headers,
 * the query hints, a bundle rebuilt while the server runs, and the 404 when it is missing.
 */
import { WorkerProvider } from "@buildomat/core"
import { Http, Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as NodeZlib from "node:zlib"
import { ADMIN } from "./harness.js"

const noProviders = Layer.succeed(WorkerProvider.WorkerProviders, [])

const get = (url: string, method = "GET") =>
  Effect.promise(async () => {
    const res = await fetch(url, { method })
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
  })

const HINTS = "?kernel=Linux&proc=unknown&mach=x86_64&plat=unknown&id=debian&id_like=&version_id=12"

describe("GET /file/agent", () => {
  it.scopedLive("serves the bundle and its gzip, with HEAD, query hints and no authentication", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const bundle = NodePath.join(dir, "agent.js")
      const v1 = Buffer.from(`#!/usr/bin/env node\nconsole.log("agent v1")\n${"x".repeat(100_000)}\n`)
      NodeFs.writeFileSync(bundle, v1)
      const url = yield* Testing.serve({ dataDir: NodePath.join(dir, "data"), adminToken: ADMIN, agentBundle: bundle }, noProviders)

      const plain = yield* get(`${url}/file/agent${HINTS}`)
      assert.strictEqual(plain.status, 200)
      assert.isTrue(plain.body.equals(v1))
      assert.strictEqual(plain.headers.get("content-type"), "application/octet-stream")
      assert.strictEqual(plain.headers.get("content-length"), String(v1.length))

      const gz = yield* get(`${url}/file/agent.gz${HINTS}`)
      assert.strictEqual(gz.status, 200)
      assert.strictEqual(gz.headers.get("content-type"), "application/gzip")
      assert.isBelow(gz.body.length, v1.length / 10)
      assert.isTrue(NodeZlib.gunzipSync(gz.body).equals(v1))

      const head = yield* get(`${url}/file/agent.gz`, "HEAD")
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.body.length, 0)
      assert.strictEqual(head.headers.get("content-length"), String(gz.body.length))
      const headPlain = yield* get(`${url}/file/agent`, "HEAD")
      assert.strictEqual(headPlain.headers.get("content-length"), String(v1.length))

      // Rebuilt while the server runs: the next request serves the new file.
      const v2 = Buffer.from(`#!/usr/bin/env node\nconsole.log("agent v2, longer")\n`)
      NodeFs.writeFileSync(bundle, v2)
      NodeFs.utimesSync(bundle, new Date(), new Date(Date.now() + 5_000))
      assert.isTrue((yield* get(`${url}/file/agent`)).body.equals(v2))
      assert.isTrue(NodeZlib.gunzipSync((yield* get(`${url}/file/agent.gz`)).body).equals(v2))
    }))

  it.scopedLive("answers 404 with a clear message when the bundle is not built", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const missing = NodePath.join(dir, "no-such-agent.js")
      const url = yield* Testing.serve(
        { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN, agentBundle: missing },
        noProviders
      )
      for (const path of ["/file/agent", "/file/agent.gz"]) {
        const res = yield* get(`${url}${path}?kernel=Linux`)
        assert.strictEqual(res.status, 404)
        const body = JSON.parse(res.body.toString("utf8"))
        assert.strictEqual(body._tag, "NotFound")
        assert.strictEqual(body.message, `the agent is not available: ${missing} does not exist; build it with \`npm run build\``)
      }
    }))

  it("finds @buildomat/agent/bundle next to core by default", () => {
    const found = Http.resolveAgentBundle()
    if (found.path !== undefined) {
      assert.match(found.path, /packages[/\\]agent[/\\]bundle[/\\]buildomat-agent\.cjs$/)
    } else {
      assert.include(found.reason, "buildomat-agent.cjs")
    }
    const missing = Http.resolveAgentBundle("/nonexistent/agent.js")
    assert.deepStrictEqual(missing, { path: undefined, reason: "/nonexistent/agent.js does not exist" })
  })
})
