/**
 * What check runs show: the tail of the log (ANSI stripped, cut, prefixed), the summaries and
 * conclusions of each state, and GitHub's size limit.
 */
import { CheckRuns, Tasks } from "@buildomat/github"
import { assert, describe, it } from "@effect/vitest"
import { checkRequest } from "./support/openapi.js"

const base = CheckRuns.readPrivate(CheckRuns.BasicPrivate, null)

describe("CheckRuns", () => {
  it("formats tail lines as buildomat", () => {
    assert.deepStrictEqual(CheckRuns.tailLine({ stream: "stdout", payload: "\x1b[1;31mred\x1b[0m text" }), [null, "| red text"])
    assert.deepStrictEqual(CheckRuns.tailLine({ stream: "stderr", payload: "x".repeat(100) }), [null, `| ${"x".repeat(90)} [...]`])
    assert.deepStrictEqual(CheckRuns.tailLine({ stream: "console", payload: "c" }), [null, "|C| c"])
    assert.deepStrictEqual(CheckRuns.tailLine({ stream: "panic", payload: "p" }), [null, "|!|p"])
    assert.deepStrictEqual(CheckRuns.tailLine({ stream: "worker", payload: "w" }), [null, "|W| w"])
    assert.isUndefined(CheckRuns.tailLine({ stream: "bg.x.stdout", payload: "b" }))
    assert.deepStrictEqual(CheckRuns.tailLine({ stream: "task", task: 2, payload: "starting" }), ["task/2", "task: starting"])
    assert.strictEqual(CheckRuns.stripAnsi("a\x1b]8;;http://x\x07b\x1b]8;;\x07c\x07"), "abc")
  })

  it("keeps the last 20 lines, and headers that scroll off", () => {
    const lines: Array<readonly [string | null, string]> = [["task/0", "task: starting 0"], ...Array.from({ length: 30 }, (_, i) => [null, `| ${i}`] as const)]
    const t = CheckRuns.pushTail(base, lines)
    assert.strictEqual(t.events_tail.length, 20)
    assert.deepStrictEqual(t.events_tail[19], [null, "| 29"])
    assert.deepStrictEqual(t.event_tail_headers, [["task/0", "task: starting 0"]])
    const text = CheckRuns.renderTail({ ...base, ...t })!
    assert.match(text, /^```\ntask: starting 0\n\.\.\.\n\| 10\n/)
    assert.match(text, /\| 29\n\.\.\.\n```\n$/)
  })

  it("renders each state of a basic run with the right status, conclusion and buttons", () => {
    const ctx = { detailsUrl: "https://ci.example/details/S/K/R" }
    const waiting = CheckRuns.renderBasic(base, ctx)
    assert.deepStrictEqual([waiting.status, waiting.title], ["queued", "Waiting to submit..."])
    assert.deepStrictEqual(waiting.actions.map((a) => a.identifier), ["cancel", "cancel_all"])
    const submitted = { ...base, buildomat_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }
    assert.strictEqual(CheckRuns.renderBasic({ ...submitted, job_state: "waiting" }, ctx).title, "Waiting for dependencies...")
    const running = CheckRuns.renderBasic({ ...submitted, job_state: "running", time_assigned: "2026-01-01T00:00:00.000Z" }, ctx)
    assert.deepStrictEqual([running.status, running.title, running.started_at], ["in_progress", "Running...", "2026-01-01T00:00:00.000Z"])
    assert.match(running.summary, /^The buildomat job ID is `01ARZ3NDEKTSV4RRFFQ69G5FAV`\.  \[Click here\]\(https:\/\/ci\.example\/details\/S\/K\/R\)/)
    const failed = CheckRuns.renderBasic({ ...submitted, job_state: "failed", complete: true }, ctx)
    assert.deepStrictEqual([failed.status, failed.conclusion, failed.actions.length], ["completed", "failure", 0])
    assert.match(failed.summary, /Job ended in state failed\.$/)
    const cancelled = CheckRuns.renderBasic({ ...submitted, job_state: "failed", complete: true, cancelled: true }, ctx)
    assert.strictEqual(cancelled.conclusion, "cancelled")
    const never = CheckRuns.renderBasic({ ...base, complete: true, cancelled: true, error: "Job was cancelled before it began running." }, ctx)
    assert.strictEqual(never.conclusion, "cancelled")
    const outputs = CheckRuns.renderBasic({
      ...submitted,
      job_state: "completed",
      complete: true,
      job_outputs: [{ path: "/out/a`b.txt", href: "https://ci.example/artefact/x", size: "1.00KiB" }],
      job_outputs_extra: 3
    }, ctx)
    assert.include(outputs.summary, "* [`/out/a'b.txt`](https://ci.example/artefact/x) (1.00KiB)\n* ... and 3 more not shown here.\n")
  })

  it("keeps every output under GitHub's limit, and what it sends conforms to GitHub's description", () => {
    const huge = CheckRuns.renderBasic({
      ...base,
      buildomat_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
      job_state: "completed",
      complete: true,
      error: "e".repeat(100_000),
      event_tail_headers: Array.from({ length: 100 }, (_, i) => [`task/${i}`, `task: ${"h".repeat(2000)}`] as const)
    }, { detailsUrl: "https://x" })
    assert.isAtMost(huge.summary.length, CheckRuns.MAX_OUTPUT)
    assert.isAtMost(huge.text!.length, CheckRuns.MAX_OUTPUT)
    const body = { name: "x", head_sha: "a".repeat(40), status: huge.status, conclusion: huge.conclusion, output: { title: huge.title, summary: huge.summary, text: huge.text }, actions: [...CheckRuns.renderBasic(base, { detailsUrl: "https://x" }).actions] }
    assert.deepStrictEqual(checkRequest("POST", "/repos/o/r/check-runs", new URLSearchParams(), body), [])
    const control = CheckRuns.renderControl({ complete: true, no_plans: false, need_auth: true }, { sha: "abc", approvedBy: undefined, confroot: ".github/buildomat" })
    assert.deepStrictEqual([control.conclusion, control.actions], ["action_required", [CheckRuns.AUTHORISE]])
  })

  it("formats sizes as buildomat", () => {
    assert.deepStrictEqual([0, 1024, 1025, 1024 ** 2 * 1.5, 1024 ** 3 * 2.25].map(CheckRuns.formatSize), ["0B", "1024B", "1.00KiB", "1.50MiB", "2.25GiB"])
  })
})

describe("the loopback GitHub's OpenAPI check can fail", () => {
  it("finds missing fields, bad enums, long button labels, unknown query parameters and unknown routes", () => {
    const q = new URLSearchParams()
    assert.include(checkRequest("POST", "/repos/o/r/check-runs", q, { name: "x" }).join("\n"), "missing required field head_sha")
    assert.include(checkRequest("PATCH", "/repos/o/r/check-runs/1", q, { status: "completed" }).join("\n"), "anyOf")
    assert.include(checkRequest("PATCH", "/repos/o/r/check-runs/1", q, { status: "done" }).join("\n"), "not one of")
    assert.include(
      checkRequest("POST", "/repos/o/r/check-runs", q, { name: "x", head_sha: "y", actions: [{ label: "a label longer than twenty", description: "d", identifier: "i" }] }).join("\n"),
      "longer than 20"
    )
    assert.include(checkRequest("GET", "/repos/o/r/commits", new URLSearchParams("per_pgae=1"), undefined).join("\n"), "unknown query parameter per_pgae")
    assert.include(checkRequest("GET", "/repos/o/r/check-suites/abc/check-runs", q, undefined).join("\n"), "not an integer")
    assert.include(checkRequest("GET", "/no/such/thing", q, undefined).join("\n"), "no such operation")
    assert.deepStrictEqual(checkRequest("GET", "/repos/o/r/contents/a/b/c.sh", new URLSearchParams("ref=main"), undefined), [])
  })
})

describe("Tasks", () => {
  it("never puts a token in a task, fills in the clone URL, and runs the build last in the clone", () => {
    const tasks = Tasks.basicTasks({
      owner: "o",
      repo: "r",
      headSha: "abc",
      headBranch: "main",
      setup: "ephemeral",
      cloneUrl: "https://x-access-token:{token}@github.com/{owner}/{repo}.git",
      token: { mode: "store" },
      rust: { channel: "stable", profile: "minimal" },
      skipClone: false,
      script: "#!/bin/bash\nmake\n"
    })
    assert.deepStrictEqual(tasks.map((t) => t.name), ["setup", "rust-toolchain", "authentication", "clone repository", "build"])
    assert.strictEqual(tasks[3]!.env["BUILDOMAT_CLONE_URL"], "https://x-access-token:{token}@github.com/o/r.git")
    assert.deepStrictEqual([tasks[4]!.uid, tasks[4]!.gid, tasks[4]!.workdir], [12345, 12345, "/work/o/r"])
    assert.isUndefined(tasks[0]!.uid)
    assert.strictEqual(tasks[4]!.env["GITHUB_REF"], "refs/heads/main")
    assert.match(tasks[2]!.script, /bmat store get GITHUB_TOKEN/)
    const local = Tasks.basicTasks({ owner: "o", repo: "r", headSha: "abc", headBranch: null, setup: "local", cloneUrl: "x/{repo}", token: { mode: "broker", url: "https://app/job-token/R/N" }, skipClone: true, script: "true" })
    assert.deepStrictEqual(local.map((t) => t.name), ["setup", "authentication", "build"])
    assert.deepStrictEqual([local[2]!.uid, local[2]!.workdir, local[2]!.env["GITHUB_BRANCH"]], [undefined, "/work", undefined])
    assert.strictEqual(local[1]!.env["BUILDOMAT_GITHUB_TOKEN_URL"], "https://app/job-token/R/N")
  })
})
