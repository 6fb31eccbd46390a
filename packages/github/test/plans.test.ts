/**
 * Plans: job files are read from the commit under test and validated, with clear errors on the
 * control run; `config.toml` is read from the default branch only (so re-running the control run
 * after fixing it there works); dependencies between job files of one commit.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { checkRunPayload, OWNER, pushPayloads, world } from "./support/Harness.js"
import type { World } from "./support/Harness.js"

const job = (name: string, extra: string, body: string) => `#!/bin/bash
#:
#: name = "${name}"
#: variety = "basic"
${extra.split("\n").filter((l) => l !== "").map((l) => `#: ${l}`).join("\n")}
#:
${body}
`

const push = (w: World, files: Record<string, string | null>, before: string) =>
  Effect.gen(function*() {
    const sha = w.repo.commit(files, "change")
    const p = pushPayloads(w, sha, before)
    assert.strictEqual((yield* w.deliver("push", p.push)).status, 200)
    assert.strictEqual((yield* w.deliver("check_suite", p.requested)).status, 200)
    return { sha, suite: p.suite }
  })

const controlOf = (w: World, sha: string, not?: number) =>
  w.until(`the control run of ${sha.slice(0, 8)}`, () => {
    const r = w.fake.runsNamed("*control").find((x) => x.head_sha === sha && x.status === "completed" && x.id !== not)
    return r
  })

describe("plans", () => {
  it.scopedLive("a stray file or a dependency cycle fails the plan, and says why on the control run", () =>
    Effect.gen(function*() {
      const w = yield* world()
      const a = yield* push(w, {
        ".github/buildomat/config.toml": "enable = true\n",
        ".github/buildomat/jobs/build.sh": job("build", "", "true"),
        ".github/buildomat/jobs/notes.txt": "not a job\n"
      }, "0".repeat(40))
      const c1 = yield* controlOf(w, a.sha)
      assert.strictEqual(c1.conclusion, "failure")
      assert.strictEqual(c1.output?.title, "Failed to load plan")
      assert.include(c1.output!.summary!, "unexpected item in .github/buildomat/jobs: \".github/buildomat/jobs/notes.txt\"")

      const b = yield* push(w, {
        ".github/buildomat/jobs/notes.txt": null,
        ".github/buildomat/jobs/one.sh": job("one", "[dependencies.x]\njob = \"two\"", "true"),
        ".github/buildomat/jobs/two.sh": job("two", "[dependencies.y]\njob = \"one\"", "true")
      }, a.sha)
      const c2 = yield* controlOf(w, b.sha)
      assert.strictEqual(c2.conclusion, "failure")
      assert.match(c2.output!.summary!, /job "one" creates a dependency cycle: one -> two -> one/)

      const c = yield* push(w, {
        ".github/buildomat/jobs/one.sh": null,
        ".github/buildomat/jobs/two.sh": "echo no interpreter line\n"
      }, b.sha)
      const c3 = yield* controlOf(w, c.sha)
      assert.match(c3.output!.summary!, /"\.github\/buildomat\/jobs\/two\.sh" must have an interpreter line/)
      // Nothing was submitted.
      assert.deepStrictEqual(w.fake.runs.size, 3)
      assert.deepStrictEqual(w.fake.violations, [])
    }))

  it.scopedLive("config.toml comes from the default branch: fixing it there and re-running the plan runs the jobs", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true })
      const a = yield* push(w, {
        ".github/buildomat/config.toml": "enable = tru\n",
        ".github/buildomat/jobs/build.sh": job("build", "", "echo built")
      }, "0".repeat(40))
      const broken = yield* controlOf(w, a.sha)
      assert.strictEqual(broken.conclusion, "failure")
      assert.match(broken.output!.summary!, /config\.toml is not valid TOML/)

      // Fix it on master with a commit GitHub tells nobody about, then re-run the old plan.
      w.repo.commit({ ".github/buildomat/config.toml": "enable = true\n" }, "fix config")
      yield* w.deliver("check_run", checkRunPayload(broken, OWNER, "rerequested"))
      const fixed = yield* controlOf(w, a.sha, broken.id)
      assert.strictEqual(fixed.conclusion, "success")
      const build = yield* w.until("build", () => {
        const r = w.fake.runsNamed("build")[0]
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(build.conclusion, "success")
      assert.strictEqual(build.head_sha, a.sha)
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)

  it.scopedLive("a job that depends on another is submitted after it, with a dependency on its core job", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true })
      yield* push(w, {
        ".github/buildomat/config.toml": "enable = true\n",
        ".github/buildomat/jobs/first.sh": job("first", "output_rules = [\"/work/Codertocat/Hello-World/out/*\"]", "mkdir -p out\necho made by first > out/thing.txt"),
        ".github/buildomat/jobs/second.sh": job("second", "[dependencies.first]\njob = \"first\"", "find \"${BUILDOMAT_ROOT:-}/input/first\" -type f -exec cat {} \\;")
      }, "0".repeat(40))
      const second = yield* w.until("second", () => {
        const r = w.fake.runsNamed("second")[0]
        return r?.status === "completed" ? r : undefined
      }, "50 seconds")
      const first = yield* w.until("first", () => {
        const r = w.fake.runsNamed("first")[0]
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(first.conclusion, "success")
      const firstJob = /`([0-9A-Z]{26})`/.exec(first.output!.summary!)![1]!
      const summary = second.output!.summary!
      if (/dependencies are not supported/.test(summary)) {
        // This core does not have job dependencies yet: the check run says so, clearly.
        assert.strictEqual(second.conclusion, "failure")
        assert.match(summary, /Flagrant Error: Could not submit job: job dependencies are not supported/)
      } else {
        assert.strictEqual(second.conclusion, "success")
        assert.match(second.output!.text!, /\| made by first/)
        const secondJob = /`([0-9A-Z]{26})`/.exec(summary)![1]!
        assert.isTrue(secondJob > firstJob)
      }
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})
