/**
 * Outside contributors: a pull request from a fork waits for authorisation (the control run asks
 * for it, with an "Authorise" button, and no job runs); the contributor cannot authorise it
 * themselves; the repository's owner can, and then the job runs the fork's job file.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { dbtool } from "./support/dbtool.js"
import { checkRunPayload, OUTSIDER, OWNER, pullRequestPayload, world } from "./support/Harness.js"

const job = (line: string) => `#!/bin/bash
#:
#: name = "build"
#: variety = "basic"
#:
echo "${line}"
`

describe("authorisation", () => {
  it.scopedLive("a pull request from an outside contributor waits until the owner authorises it", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true })
      w.repo.commit({ ".github/buildomat/config.toml": "enable = true\n", ".github/buildomat/jobs/build.sh": job("from master") }, "master")
      // The fork's commit, as GitHub keeps it in the base repository under refs/pull/2/head.
      const sha = w.repo.commit({ ".github/buildomat/jobs/build.sh": job("from the fork") }, "fork change", "refs/pull/2/head")

      assert.strictEqual((yield* w.deliver("pull_request", pullRequestPayload(sha, OUTSIDER))).status, 200)
      const waiting = yield* w.until("the control run to ask for authorisation", () => {
        const r = w.fake.runsNamed("*control")[0]
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(waiting.conclusion, "action_required")
      assert.strictEqual(waiting.output?.title, "Plan requires authorisation.")
      assert.deepStrictEqual(waiting.actions.map((a) => a.identifier), ["auth"])
      assert.strictEqual(waiting.head_sha, sha)
      assert.strictEqual(w.fake.runsNamed("build").length, 0)

      // The contributor presses the button: nothing happens.
      assert.strictEqual((yield* w.deliver("check_run", checkRunPayload(waiting, OUTSIDER, "requested_action", "auth"))).status, 200)
      yield* w.until("the delivery to be processed", () =>
        Effect.runPromise(dbtool(w.dbPath, "del", "ls")).then((r) => (r.stdout.split("\n").slice(1).every((l) => /^\d+\s+1\s/.test(l)) ? true : undefined)))
      yield* Effect.sleep("1 second")
      assert.strictEqual(w.fake.runsNamed("build").length, 0)
      assert.strictEqual(w.fake.runsNamed("*control").length, 1)
      const suites = yield* dbtool(w.dbPath, "check", "suite", "ls")
      assert.match(suites.stdout, /\sparked\s/)

      // The owner presses it: a new plan, approved, and the fork's job runs.
      assert.strictEqual((yield* w.deliver("check_run", checkRunPayload(waiting, OWNER, "requested_action", "auth"))).status, 200)
      const build = yield* w.until("the build run to complete", () => {
        const r = w.fake.runsNamed("build")[0]
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(build.conclusion, "success")
      assert.match(build.output!.text!, /\| from the fork/)
      const controls = w.fake.runsNamed("*control")
      assert.strictEqual(controls.length, 2)
      const approved = yield* w.until("the new control run", () => {
        const r = w.fake.runsNamed("*control").find((x) => x.id !== waiting.id)
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(approved.conclusion, "success")
      assert.match(approved.output!.summary!, /Plan approved by user "Codertocat"\./)
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})

describe("policy", () => {
  it.scopedLive("allow_users authorises a contributor; access_repos widens the job's token, and a bad entry fails the run", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true, extraRepos: { Other: 186853999 } })
      w.extraRepos["Other"]!.commit({ "SECRET.txt": "only with access\n" }, "other")
      const gitBase = w.fake.cloneUrl.replace("x-access-token:{token}@", "").replace("/{owner}/{repo}.git", "")
      w.repo.commit({ ".github/buildomat/config.toml": "enable = true\nallow_users = [\"outsider\"]\n" }, "config")
      const sha = w.repo.commit({
        ".github/buildomat/jobs/reader.sh": `#!/bin/bash
#: name = "reader"
#: variety = "basic"
#: access_repos = ["Codertocat/Other"]
set -o errexit
t=$("$HOME/.buildomat/bin/github-token")
git clone -q "${gitBase.replace("http://", "http://x-access-token:$t@")}/Codertocat/Other.git" other
cat other/SECRET.txt
`,
        ".github/buildomat/jobs/stranger.sh": `#!/bin/bash
#: name = "stranger"
#: variety = "basic"
#: access_repos = ["Codertocat/missing"]
true
`
      }, "pr", "refs/pull/3/head")
      yield* w.deliver("pull_request", pullRequestPayload(sha, OUTSIDER))
      const reader = yield* w.until("reader", () => {
        const r = w.fake.runsNamed("reader")[0]
        return r?.status === "completed" ? r : undefined
      })
      const stranger = yield* w.until("stranger", () => {
        const r = w.fake.runsNamed("stranger")[0]
        return r?.status === "completed" ? r : undefined
      })
      const control = w.fake.runsNamed("*control")[0]!
      assert.match(control.output!.summary!, /Plan approved by user "outsider"\./)
      assert.strictEqual(reader.conclusion, "success")
      assert.match(reader.output!.text!, /\| only with access/)
      assert.isTrue(w.fake.issued.some((t) => JSON.stringify(t.repositoryIds) === JSON.stringify([186853002, 186853999])))
      assert.strictEqual(stranger.conclusion, "failure")
      assert.match(stranger.output!.summary!, /The "access_repos" entry "Codertocat\/missing" is not valid/)
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})
