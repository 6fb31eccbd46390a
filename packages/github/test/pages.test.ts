/**
 * The pages: everything user-supplied is escaped, the live log streams as Server-Sent Events and
 * ends, the status page hides private repositories, and published files are proxied from core.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { pushPayloads, world } from "./support/Harness.js"

const NAME = "<img src=x onerror=alert(1)>"

describe("pages", () => {
  it.scopedLive("escape names and log lines, stream the live log to its end, hide a private repository, proxy published files", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true, visibility: "private" })
      const sha = w.repo.commit({
        ".github/buildomat/config.toml": "enable = true\n",
        ".github/buildomat/jobs/build.sh": `#!/bin/bash
#: name = "${NAME.replaceAll("\"", "\\\"")}"
#: variety = "basic"
#: output_rules = ["/work/Codertocat/Hello-World/out/*"]
#: publish = [{ from_output = "/work/Codertocat/Hello-World/out/pkg.txt", series = "nightly", name = "pkg.txt" }]
echo '<script>alert("log")</script>'
mkdir -p out
echo "published bytes" > out/pkg.txt
for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.5; done
`
      }, "jobs")
      const { push, requested } = pushPayloads(w, sha, "0".repeat(40))
      yield* w.deliver("push", push)
      yield* w.deliver("check_suite", requested)
      const running = yield* w.until("the run to be in progress", () => {
        const r = w.fake.runsNamed(NAME)[0]
        return r?.status === "in_progress" ? r : undefined
      })

      // The live log: rows as they come, each with its id, then "end".
      const live = yield* Effect.promise(async () => {
        const res = await fetch(`${running.details_url}/live?minseq=1`)
        const reader = res.body!.getReader()
        let text = ""
        const decoder = new TextDecoder()
        const deadline = Date.now() + 40_000
        while (!text.includes("event: end") && Date.now() < deadline) {
          const { value, done } = await reader.read()
          if (done) break
          text += decoder.decode(value, { stream: true })
        }
        await reader.cancel()
        return { type: res.headers.get("content-type"), text }
      })
      assert.strictEqual(live.type, "text/event-stream")
      assert.match(live.text, /event: row\nid: seq-1\ndata: \{/)
      assert.match(live.text, /event: end\ndata: -\n\n$/)
      const rows = live.text.split("\n\n").filter((f) => f.startsWith("event: row")).map((f) => JSON.parse(f.split("\ndata: ")[1]!))
      assert.isTrue(rows.some((r) => r.html.includes("tick 6")))
      const script = rows.find((r) => r.html.includes("alert(&quot;log&quot;)"))
      assert.isDefined(script)
      assert.include(script.html, "&lt;script&gt;")
      assert.notInclude(live.text, "<script>")
      const seqs = rows.map((r) => r.seq)
      assert.deepStrictEqual(seqs, seqs.map((_, i) => i + 1))

      const done = yield* w.until("the run to complete", () => {
        const r = w.fake.runs.get(running.id)!
        return r.status === "completed" ? r : undefined
      })
      assert.strictEqual(done.conclusion, "success")

      const page = yield* Effect.promise(() => fetch(done.details_url!).then((r) => r.text()))
      assert.include(page, "&lt;img src=x onerror=alert(1)&gt;")
      assert.notInclude(page, NAME)
      assert.include(page, "&lt;script&gt;alert(&quot;log&quot;)&lt;/script&gt;")

      // The status page shows the build but not the private repository or the job's name.
      const status = yield* Effect.promise(() => fetch(`${w.appUrl}/status`).then((r) => r.text()))
      assert.include(status, "This build is linked to a private GitHub repository.")
      assert.notInclude(status, "Hello-World")
      assert.notInclude(status, "onerror")
      assert.notInclude(status, sha)

      // Published files: proxied from core's public file route, if this core publishes.
      const openapi = yield* Effect.promise(() => fetch(`${w.coreUrl}/openapi.json`).then((r) => r.json() as Promise<any>))
      const canPublish = Object.keys(openapi.paths).some((p) => p.startsWith("/0/public/file/"))
      const pub = yield* Effect.promise(() =>
        fetch(`${w.appUrl}/public/file/Codertocat/Hello-World/nightly/${sha}/pkg.txt`).then(async (r) => ({ status: r.status, body: await r.text() })))
      if (canPublish) {
        assert.strictEqual(pub.status, 200)
        assert.strictEqual(pub.body, "published bytes\n")
      } else {
        assert.strictEqual(pub.status, 404)
      }
      const unknown = yield* Effect.promise(() => fetch(`${w.appUrl}/public/file/nobody/nothing/s/v/f`).then((r) => r.status))
      assert.strictEqual(unknown, 404)
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})
