/**
 * End to end: a push to GitHub (the loopback one) becomes a check suite, the job files become
 * core jobs that real agents run on the local provider, the job clones the repository with a
 * read-only installation token scoped to it, and the check runs go queued → in progress (with a
 * log tail) → completed, with the right conclusions, links and artefacts; the pages show the
 * log, the artefacts with their SHA-256, and serve them with byte ranges.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Crypto from "node:crypto"
import { dbtool } from "./support/dbtool.js"
import { OWNER, pushPayloads, REPO_ID, world } from "./support/Harness.js"

const CONFIG = "enable = true\norg_only = true\n"

const BUILD = `#!/bin/bash
#:
#: name = "build <it>"
#: variety = "basic"
#: output_rules = ["/work/Codertocat/Hello-World/out/*"]
#:
set -o errexit
printf '\\033[31mred\\033[0m and \\033[1mbold\\033[0m from the build\\n'
echo "branch $GITHUB_BRANCH ref $GITHUB_REF"
echo "head is $(git rev-parse HEAD)"
echo "origin is $(git remote get-url origin)"
cat README
mkdir -p out
for i in $(seq 1 2000); do echo "artefact line $i"; done > out/result.txt
sleep 3
echo "build done"
`

const FAIL = `#!/bin/bash
#:
#: name = "fails"
#: variety = "basic"
#:
echo "about to fail"
exit 3
`

const BAD = `#!/bin/bash
#:
#: name = "bad-config"
#: variety = "basic"
#: tagret = "default"
#:
echo never
`

describe("GitHub App end to end", () => {
  it.scopedLive("a push becomes a check suite; job files run as core jobs; check runs report them", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true })
      const sha = w.repo.commit({
        "README": "Hello from the repository\n",
        ".github/buildomat/config.toml": CONFIG,
        ".github/buildomat/jobs/build.sh": BUILD,
        ".github/buildomat/jobs/fails.sh": FAIL,
        ".github/buildomat/jobs/bad.sh": BAD
      }, "add job files")
      const { push, requested, suite } = pushPayloads(w, sha, "0000000000000000000000000000000000000000")
      assert.strictEqual((yield* w.deliver("push", push)).status, 200)
      assert.strictEqual((yield* w.deliver("check_suite", requested)).status, 200)

      const build = yield* w.until("the build run to complete", () => {
        const r = w.fake.runsNamed("build <it>")[0]
        return r?.status === "completed" ? r : undefined
      }, "50 seconds")
      const fails = yield* w.until("the failing run to complete", () => {
        const r = w.fake.runsNamed("fails")[0]
        return r?.status === "completed" ? r : undefined
      })
      const bad = yield* w.until("the bad run to complete", () => {
        const r = w.fake.runsNamed("bad-config")[0]
        return r?.status === "completed" ? r : undefined
      })
      const control = yield* w.until("the control run to complete", () => {
        const r = w.fake.runsNamed("*control")[0]
        return r?.status === "completed" ? r : undefined
      })

      // One suite, the one GitHub made for the push (the push and check_suite.requested agree).
      assert.strictEqual(w.fake.suites.size, 1)
      const suites = yield* dbtool(w.dbPath, "check", "suite", "ls")
      const lines = suites.stdout.split("\n").slice(1)
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, new RegExp(`\\s${suite.id}\\s+Codertocat/Hello-World\\s+\\w+\\s+${sha.slice(0, 16)}\\s+master$`))
      const suiteId = lines[0]!.split(/\s+/)[0]!
      for (const r of [build, fails, bad, control]) {
        assert.strictEqual(r.suite, suite.id)
        assert.strictEqual(r.head_sha, sha)
        assert.match(r.details_url!, new RegExp(`^${w.appUrl}/details/${suiteId}/[A-Za-z0-9]{48}/${r.external_id}$`))
      }

      // The control run: the plan.
      assert.strictEqual(control.conclusion, "success")
      assert.strictEqual(control.output?.title, "Checks underway.")
      assert.match(control.output!.summary!, new RegExp(`Plan loaded from commit ${sha}\\.  Plan approved by user "Codertocat"\\.`))

      // The build: queued, then in progress with a log tail (ANSI stripped), then completed.
      const statuses = build.history.map((b: any) => b.status)
      assert.strictEqual(statuses[0], "queued")
      assert.include(statuses, "in_progress")
      assert.strictEqual(statuses[statuses.length - 1], "completed")
      assert.isBelow(statuses.indexOf("in_progress"), statuses.lastIndexOf("completed"))
      const running = build.history.filter((b: any) => b.status === "in_progress")
      assert.isTrue(running.some((b: any) => b.output?.title === "Running..." && /\| red and bold from the build/.test(b.output?.text ?? "")))
      for (const b of build.history) {
        assert.notMatch(JSON.stringify(b), /\\u001b|\x1b/)
        if (b.status !== "completed") {
          assert.deepStrictEqual(b.actions.map((a: any) => a.identifier), ["cancel", "cancel_all"])
        }
      }
      assert.strictEqual(build.conclusion, "success")
      assert.strictEqual(build.output?.title, "Success!")
      assert.deepStrictEqual(build.actions, [])
      assert.isString(build.started_at)
      assert.isString(build.completed_at)
      const summary = build.output!.summary!
      assert.match(summary, /^The buildomat job ID is `[0-9A-Z]{26}`\./)
      assert.match(summary, /The requested job was completed\.$/)
      const link = /\* \[`\/work\/Codertocat\/Hello-World\/out\/result\.txt`\]\((\S+)\) \((\S+)\)/.exec(summary)
      assert.isNotNull(link)
      const expected = Buffer.from(Array.from({ length: 2000 }, (_, i) => `artefact line ${i + 1}\n`).join(""))
      assert.strictEqual(link![2], `${(expected.length / 1024).toFixed(2)}KiB`)
      const text = build.output!.text!
      assert.match(text, /\| Hello from the repository/)
      assert.match(text, /\| branch master ref refs\/heads\/master/)
      assert.include(text, `| head is ${sha}`)
      // The token is gone from the remote the build sees.
      assert.match(text, /\| origin is http:\/\/127\.0\.0\.1:\d+\/git\/Codertocat\/Hello-World\.git/)
      assert.match(text, /\| build done/)

      // The failing job and the one with a bad front matter.
      assert.strictEqual(fails.conclusion, "failure")
      assert.strictEqual(fails.output?.title, "Failure!")
      assert.match(fails.output!.summary!, /Job ended in state failed\.$/)
      assert.match(fails.output!.text!, /\| about to fail/)
      assert.strictEqual(bad.conclusion, "failure")
      assert.match(bad.output!.summary!, /Flagrant Error: TOML front matter: unknown field "tagret"/)

      // The clone used a token that GitHub issued for this repository only, read-only.
      assert.isTrue(w.fake.clones.some((c) => c.repo === "Codertocat/Hello-World" && c.ok))
      assert.isTrue(w.fake.issued.some((t) => JSON.stringify(t.repositoryIds) === JSON.stringify([REPO_ID]) && JSON.stringify(t.permissions) === JSON.stringify({ contents: "read" })))

      // The artefact, through the App: whole, and a byte range.
      const whole = yield* Effect.promise(() => fetch(link![1]!).then(async (r) => ({ status: r.status, type: r.headers.get("content-type"), body: Buffer.from(await r.arrayBuffer()) })))
      assert.strictEqual(whole.status, 200)
      assert.strictEqual(whole.type, "text/plain; charset=utf-8")
      assert.isTrue(whole.body.equals(expected))
      const part = yield* Effect.promise(() =>
        fetch(link![1]!, { headers: { range: "bytes=10-29" } }).then(async (r) => ({ status: r.status, range: r.headers.get("content-range"), body: Buffer.from(await r.arrayBuffer()) })))
      assert.strictEqual(part.status, 206)
      assert.strictEqual(part.range, `bytes 10-29/${expected.length}`)
      assert.isTrue(part.body.equals(expected.subarray(10, 30)))
      const head = yield* Effect.promise(() => fetch(link![1]!, { method: "HEAD" }).then((r) => ({ status: r.status, length: r.headers.get("content-length") })))
      assert.deepStrictEqual(head, { status: 200, length: String(expected.length) })

      // The details page: the log in colour, every name escaped, the artefact with its SHA-256.
      const page = yield* Effect.promise(() => fetch(build.details_url!).then(async (r) => ({ status: r.status, csp: r.headers.get("content-security-policy"), html: await r.text() })))
      assert.strictEqual(page.status, 200)
      assert.include(page.html, "<title>Check Run: build &lt;it&gt;</title>")
      assert.notInclude(page.html, "build <it>")
      assert.include(page.html, `<span style="color:var(--ansi-red,#a00)">red</span>`)
      assert.include(page.html, Crypto.createHash("sha256").update(expected).digest("hex"))
      assert.include(page.html, `${expected.length} bytes`)
      assert.match(page.csp!, /script-src 'nonce-/)
      // The control run's page lists every run.
      const controlPage = yield* Effect.promise(() => fetch(control.details_url!).then((r) => r.text()))
      for (const n of ["build &lt;it&gt;", "fails", "bad-config"]) assert.include(controlPage, n)

      // Wrong key, or a run of another suite: the same 404.
      const wrongKey = build.details_url!.replace(/\/[A-Za-z0-9]{48}\//, `/${"x".repeat(48)}/`)
      assert.strictEqual(yield* Effect.promise(() => fetch(wrongKey).then((r) => r.status)), 404)
      const foreignRun = control.details_url!.replace(/[0-9A-Z]{26}$/, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
      assert.strictEqual(yield* Effect.promise(() => fetch(foreignRun).then((r) => r.status)), 404)

      // The status page names the public repository and its runs.
      const status = yield* Effect.promise(() => fetch(`${w.appUrl}/status`).then((r) => r.text()))
      assert.include(status, "Codertocat/Hello-World")
      assert.include(status, "[OK]")
      assert.include(status, "[FAIL]")
      assert.include(status, "build &lt;it&gt;")

      // Runs as the dbtool shows them.
      const runs = yield* dbtool(w.dbPath, "check", "suite", "runs", suiteId)
      assert.match(runs.stdout, /\sAF\s+basic\s+build <it>\s+\d+\s+[0-9A-Z]{26}/)
      assert.match(runs.stdout, /\sAF\s+control\s+\*control\s/)

      // Every GitHub call matched GitHub's OpenAPI description.
      assert.deepStrictEqual(w.fake.violations, [])
      void OWNER
    }), 90_000)
})
