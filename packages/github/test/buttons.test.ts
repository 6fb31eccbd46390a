/**
 * The buttons on check runs: "Cancel this job" and re-running a check, each allowed only to
 * someone with write access to the repository (buildomat did not check), and a re-run making a
 * new instance of the check from the stored plan.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { dbtool } from "./support/dbtool.js"
import { checkRunPayload, OUTSIDER, OWNER, pushPayloads, world } from "./support/Harness.js"
import type { Account } from "./support/FakeGitHub.js"

const HELPER: Account = { id: 424242, login: "helper", type: "User" }

const job = (name: string, body: string) => `#!/bin/bash
#:
#: name = "${name}"
#: variety = "basic"
#:
${body}
`

describe("buttons", () => {
  it.scopedLive("cancel and re-run need write access; cancel ends the job, re-run makes a new instance", () =>
    Effect.gen(function*() {
      const w = yield* world({ core: true, collaborators: { "Codertocat/Hello-World": { helper: "write", outsider: "read" } } })
      const sha = w.repo.commit({
        ".github/buildomat/config.toml": "enable = true\n",
        ".github/buildomat/jobs/slow.sh": job("slow", "echo started\nsleep 120"),
        ".github/buildomat/jobs/quick.sh": job("quick", "echo quick run")
      }, "jobs")
      const { push, requested } = pushPayloads(w, sha, "0000000000000000000000000000000000000000")
      yield* w.deliver("push", push)
      yield* w.deliver("check_suite", requested)
      const slow = yield* w.until("slow to be running", () => {
        const r = w.fake.runsNamed("slow")[0]
        return r?.status === "in_progress" && /\| started/.test(r.output?.text ?? "") ? r : undefined
      })
      const quick = yield* w.until("quick to complete", () => {
        const r = w.fake.runsNamed("quick")[0]
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(quick.conclusion, "success")

      const allAcked = () =>
        w.until("deliveries to be processed", () =>
          Effect.runPromise(dbtool(w.dbPath, "del", "ls")).then((r) => (r.stdout.split("\n").slice(1).every((l) => /^\d+\s+1\s/.test(l)) ? true : undefined)))

      // Someone with read access only: neither cancel nor re-run does anything.
      yield* w.deliver("check_run", checkRunPayload(slow, OUTSIDER, "requested_action", "cancel"))
      yield* w.deliver("check_run", checkRunPayload(quick, OUTSIDER, "rerequested"))
      yield* allAcked()
      yield* Effect.sleep("1 second")
      assert.strictEqual(w.fake.runs.get(slow.id)!.status, "in_progress")
      assert.strictEqual(w.fake.runsNamed("quick").length, 1)

      // The owner cancels the slow job.
      yield* w.deliver("check_run", checkRunPayload(slow, OWNER, "requested_action", "cancel"))
      const cancelled = yield* w.until("slow to be cancelled", () => {
        const r = w.fake.runs.get(slow.id)!
        return r.status === "completed" ? r : undefined
      })
      assert.strictEqual(cancelled.conclusion, "cancelled")
      assert.match(cancelled.output!.summary!, /The job was cancelled by a user\./)

      // A collaborator with write access re-runs the quick check: a new instance runs.
      yield* w.deliver("check_run", checkRunPayload(quick, HELPER, "rerequested"))
      const again = yield* w.until("a second quick run to complete", () => {
        const r = w.fake.runsNamed("quick").find((x) => x.id !== quick.id)
        return r?.status === "completed" ? r : undefined
      })
      assert.strictEqual(again.conclusion, "success")
      assert.notStrictEqual(again.external_id, quick.external_id)
      const jobIds = [quick, again].map((r) => /`([0-9A-Z]{26})`/.exec(r.output!.summary!)![1])
      assert.notStrictEqual(jobIds[0], jobIds[1])
      assert.deepStrictEqual(w.fake.violations, [])
    }), 90_000)
})
