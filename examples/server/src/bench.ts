#!/usr/bin/env node
/**
 * `npm run bench`: measures the core server with the local provider and real agents, and writes
 * the figures as JSON to `bench-results/` (and prints them):
 *
 * - dispatch: for jobs with one trivial task, the time from submit to the task starting (a fresh
 *   worker boots for each job, as buildomat), and from assignment to the task starting (the
 *   agent picking up work from a worker that is already up);
 * - log ingest: one task printing 200,000 lines of 80 bytes: lines/s until every line is stored
 *   and readable through `GET /0/jobs/{job}/events`.
 *
 * @since 0.1.0
 */
import { Testing } from "@buildomat/core/server"
import type { Client } from "@buildomat/core"
import { LocalProvider } from "@buildomat/provider-local"
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

const repo = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../../..")
const ADMIN = "bench-admin-token-0123456789"
const DISPATCH_RUNS = Number(process.env["BENCH_DISPATCH_RUNS"] ?? 30)
const LINES = Number(process.env["BENCH_LINES"] ?? 200_000)

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
const summary = (xs: ReadonlyArray<number>) => ({
  n: xs.length,
  p50_ms: percentile(xs, 50),
  p90_ms: percentile(xs, 90),
  p99_ms: percentile(xs, 99),
  max_ms: Math.max(...xs)
})

const run = (c: Client.Client, script: string) =>
  Effect.gen(function*() {
    const t0 = Date.now()
    const { id } = yield* c.api.jobs.submit({
      payload: { name: "bench", target: "default", output_rules: [], tasks: [{ name: "t", script, env_clear: false, env: {} }] }
    })
    // Poll rather than watch: an SSE consumer in this process would compete with the server
    // for the one event loop and slow it down (the CLI watches from its own process).
    let job = yield* c.api.jobs.get({ path: { job: id as any } })
    while (job.state !== "completed" && job.state !== "failed") {
      yield* Effect.sleep("5 millis")
      job = yield* c.api.jobs.get({ path: { job: id as any } })
    }
    const t1 = Date.now()
    return { id, t0, t1, job }
  })

const main = Effect.gen(function*() {
  const dir = yield* Testing.tempDirectory("buildomat-bench-")
  const url = yield* Testing.serve(
    { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
    LocalProvider.layer({ scratchRoot: NodePath.join(dir, "workers"), limit: 2 })
  )
  const { c } = yield* Testing.userClient(url, ADMIN, "bench")

  // Dispatch.
  const submitToStart: Array<number> = []
  const assignedToStart: Array<number> = []
  for (let i = 0; i < DISPATCH_RUNS; i++) {
    const r = yield* run(c, "true")
    const events = yield* c.allEvents(r.id)
    const start = events.find((e) => e.stream === "task" && e.payload.startsWith("starting task 0"))
    if (start === undefined || r.job.state !== "completed") return yield* Effect.dieMessage(`dispatch job ${r.id} ${r.job.state}`)
    const started = Date.parse(start.time_remote ?? start.time)
    submitToStart.push(started - r.t0)
    assignedToStart.push(started - Date.parse(r.job.times["assigned"]!))
  }

  // Log ingest.
  const script = `awk 'BEGIN { s = sprintf("%079d", 0); for (i = 0; i < ${LINES}; i++) print s }'`
  const r = yield* run(c, script)
  const readStart = Date.now()
  const events = yield* c.allEvents(r.id)
  const readMs = Date.now() - readStart
  const lines = events.filter((e) => e.stream === "stdout")
  if (lines.length !== LINES) return yield* Effect.dieMessage(`expected ${LINES} lines, stored ${lines.length}`)
  const start = events.find((e) => e.stream === "task" && e.payload.startsWith("starting task 0"))!
  const firstLine = Date.parse(lines[0]!.time)
  const lastLine = Date.parse(lines[lines.length - 1]!.time)
  const taskStart = Date.parse(start.time_remote ?? start.time)
  const visible = r.t1 - taskStart + readMs

  const result = {
    date: new Date().toISOString(),
    machine: { cpus: NodeOs.cpus().length, memory_gib: Math.round(NodeOs.totalmem() / 2 ** 30), node: process.version },
    dispatch: {
      runs: DISPATCH_RUNS,
      submit_to_first_task_cold_worker: summary(submitToStart),
      assigned_to_first_task_ready_worker: summary(assignedToStart)
    },
    log_ingest: {
      lines: LINES,
      bytes_per_line: 80,
      task_start_to_last_line_stored_ms: lastLine - taskStart,
      stored_lines_per_s: Math.round(LINES / ((lastLine - Math.min(firstLine, taskStart)) / 1000)),
      task_start_to_all_read_back_ms: visible,
      end_to_end_lines_per_s: Math.round(LINES / (visible / 1000)),
      read_back_ms: readMs
    }
  }
  const out = NodePath.join(repo, "bench-results")
  NodeFs.mkdirSync(out, { recursive: true })
  const text = JSON.stringify(result, null, 2)
  NodeFs.writeFileSync(NodePath.join(out, `bench-${result.date.replace(/[:.]/g, "-")}.json`), text)
  NodeFs.writeFileSync(NodePath.join(out, "latest.json"), text)
  process.stdout.write(`${text}\n`)
})

main.pipe(Effect.scoped, NodeRuntime.runMain)
