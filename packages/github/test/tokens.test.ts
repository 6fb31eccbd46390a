/**
 * Tokens: installation tokens are replaced before they expire (the loopback GitHub refuses
 * expired ones), GitHub's rate limits and 5xx answers are waited out and retried, and the
 * job's clone token never appears in core's view of the job; the one-time URL that delivered it
 * cannot be used again.
 */
import { Testing } from "@buildomat/core/server"
import { Database, Store } from "@buildomat/github"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { pushPayloads, REPO_ID, world } from "./support/Harness.js"

describe("tokens", () => {
  it.scopedLive("refresh before expiry, rate limits and retries, and a clone token kept out of the job view", () =>
    Effect.gen(function*() {
      // Tokens that live 5 minutes and 2 seconds: with the 5-minute margin, each is replaced
      // after about 2 seconds.
      const w = yield* world({ core: true, tokenLifetimeMs: 5 * 60 * 1000 + 2000 })
      const sha = w.repo.commit({
        "README": "hi\n",
        ".github/buildomat/config.toml": "enable = true\n",
        ".github/buildomat/jobs/build.sh": "#!/bin/bash\n#: name = \"build\"\n#: variety = \"basic\"\necho cloned $(cat README)\nsleep 6\necho done\n"
      }, "jobs")
      // The first check run create meets GitHub's rate limit; a later update meets a 502.
      w.fake.failNext("POST", /\/check-runs$/, 403, {
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": String(Math.ceil(Date.now() / 1000) + 1)
      }, { message: "API rate limit exceeded for installation ID 1." })
      w.fake.failNext("PATCH", /\/check-runs\/\d+$/, 502, {}, { message: "Server Error" })

      const { push, requested } = pushPayloads(w, sha, "0000000000000000000000000000000000000000")
      yield* w.deliver("push", push)
      yield* w.deliver("check_suite", requested)
      const build = yield* w.until("the build to complete", () => {
        const r = w.fake.runsNamed("build")[0]
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(build.conclusion, "success")
      assert.match(build.output!.text!, /\| cloned hi/)

      // Installation tokens (no repository list) were replaced while the job ran, and no request
      // ever went out with an expired one.
      const installTokens = w.fake.issued.filter((t) => t.repositoryIds === undefined)
      assert.isAtLeast(installTokens.length, 2)
      assert.deepStrictEqual(w.fake.calls.filter((c) => c.status === 401).map((c) => `${c.method} ${c.path}`), [])
      // The rate limit and the 502 were met and retried.
      const creates = w.fake.calls.filter((c) => c.method === "POST" && /\/check-runs$/.test(c.path)).map((c) => c.status)
      assert.strictEqual(creates[0], 403)
      assert.isTrue(creates.slice(1).every((s) => s === 201))
      assert.include(w.fake.calls.map((c) => c.status), 502)

      // The job as core shows it: the clone token is nowhere in it.
      const user = yield* Effect.flatMap(Store.Store, (s) => s.getCoreUser(REPO_ID)).pipe(
        Effect.provide(Store.layer.pipe(Layer.provide(Database.layer(w.dbPath))))
      )
      assert.isTrue(Option.isSome(user))
      const core = yield* Testing.client(w.coreUrl, Option.getOrThrow(user).token)
      const jobId = /`([0-9A-Z]{26})`/.exec(build.output!.summary!)![1]!
      const job = yield* core.api.jobs.get({ path: { job: jobId as any } })
      const view = JSON.stringify(job)
      const jobTokens = w.fake.issued.filter((t) => t.repositoryIds !== undefined)
      // The authentication task got one; as it expires within ten minutes (these tokens live five),
      // the helper in the clone task used the next one-time URL to get a fresh one.
      assert.strictEqual(jobTokens.length, 2)
      for (const t of jobTokens) {
        assert.deepStrictEqual(t.repositoryIds, [REPO_ID])
        assert.deepStrictEqual(t.permissions, { contents: "read" })
      }
      for (const t of w.fake.issued) assert.notInclude(view, t.token)
      assert.deepStrictEqual(job.tasks.map((t) => t.name), ["setup", "authentication", "clone repository", "build"])
      const grant = job.tasks[1]!.env["BUILDOMAT_GITHUB_TOKEN_URL"]!
      assert.match(grant, new RegExp(`^${w.appUrl}/job-token/[0-9A-Z]{26}/[A-Za-z0-9_-]{43}$`))
      // Spent, and the job is over: the grant gives nothing; nor does a guessed one.
      const again = yield* Effect.promise(() => fetch(grant).then(async (r) => ({ status: r.status, body: await r.text() })))
      assert.strictEqual(again.status, 404)
      assert.notMatch(again.body, /ghs_/)
      const guessed = yield* Effect.promise(() => fetch(grant.replace(/[A-Za-z0-9_-]{43}$/, "A".repeat(43))).then((r) => r.status))
      assert.strictEqual(guessed, 404)
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})

describe("token delivery through core's job store", () => {
  it.scopedLive("puts the token in the job store as a secret, or says clearly that this core has none", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true, config: { tokenDelivery: "store" } })
      const sha = w.repo.commit({
        "README": "from the store\n",
        ".github/buildomat/config.toml": "enable = true\n",
        ".github/buildomat/jobs/build.sh": "#!/bin/bash\n#: name = \"build\"\n#: variety = \"basic\"\ncat README\n"
      }, "jobs")
      const { push, requested } = pushPayloads(w, sha, "0".repeat(40))
      yield* w.deliver("push", push)
      yield* w.deliver("check_suite", requested)
      const build = yield* w.until("the build to complete", () => {
        const r = w.fake.runsNamed("build")[0]
        return r?.status === "completed" ? r : undefined
      })
      const openapi = yield* Effect.promise(() => fetch(`${w.coreUrl}/openapi.json`).then((r) => r.json() as Promise<any>))
      const hasStore = Object.keys(openapi.paths).some((p) => /^\/0\/jobs\/\{[^}]+\}\/store\/\{[^}]+\}$/.test(p))
      if (hasStore) {
        assert.strictEqual(build.conclusion, "success")
        assert.match(build.output!.text!, /\| from the store/)
      } else {
        assert.strictEqual(build.conclusion, "failure")
        assert.match(build.output!.summary!, /token_delivery = "store", but the core server has no job store/)
      }
      // Either way the token went nowhere but GitHub's records: never into a task.
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})
