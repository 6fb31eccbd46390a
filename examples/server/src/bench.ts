#!/usr/bin/env node
/**
 * `npm run bench`: measures the core server with the local provider and real agents, and writes
 * the figures as JSON to `bench-results/` (and prints them):
 *
 * - dispatch: for jobs with one trivial task, the time from submit to the task starting (a fresh
 *   worker boots for each job, as buildomat), and from assignment to the task starting (the
 *   agent picking up work from a worker that is already up);
 * - log ingest: one task printing 200,000 lines of 80 bytes: lines/s until every line is stored
 *   and readable through `GET /0/jobs/{job}/events`;
 * - warm pool: 100 trivial jobs (`BENCH_WARM_JOBS`) submitted at once to a server whose local
 *   provider keeps a warm pool (`BENCH_WARM_POOL` agents, at most `BENCH_WARM_LIMIT` at once),
 *   each job on a fresh worker: jobs/s from the first submit to the last completion, and the
 *   time from submit to complete (p50/p99, from the server's `times`); then jobs one at a time on
 *   an idle, full pool (`BENCH_WARM_SINGLE` runs): submit to complete.
 *
 * @since 0.1.0
 */
import { Testing } from "@buildomat/core/server"
import type { Client } from "@buildomat/core"
import { LocalProvider } from "@buildomat/provider-local"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Logger, LogLevel } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

const repo = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../../..")
const ADMIN = "bench-admin-token-0123456789"
const DISPATCH_RUNS = Number(process.env["BENCH_DISPATCH_RUNS"] ?? 30)
const LINES = Number(process.env["BENCH_LINES"] ?? 200_000)
const WARM_JOBS = Number(process.env["BENCH_WARM_JOBS"] ?? 100)
const WARM_LIMIT = Number(process.env["BENCH_WARM_LIMIT"] ?? 6)
const WARM_POOL = Number(process.env["BENCH_WARM_POOL"] ?? WARM_LIMIT)
const WARM_SINGLE = Number(process.env["BENCH_WARM_SINGLE"] ?? 20)
const ONLY = process.env["BENCH_ONLY"] // "warm": only the warm pool section
/** Extra node flags for the warm pool's agents (space-separated), to compare their cost. */
const AGENT_NODE_FLAGS = (process.env["BENCH_AGENT_NODE_FLAGS"] ?? "").split(" ").filter((f) => f !== "")
const agentBundle = () => createRequire(import.meta.url).resolve("@buildomat/agent/bundle")

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

/**
 * CPU time used so far, in ms: by this process (the server), and by its children that have
 * exited (the agents and their tasks), from `/proc/self/stat` (Linux only; 0 elsewhere).
 */
const cpu = () => {
  const own = process.cpuUsage()
  let children = 0
  try {
    const stat = NodeFs.readFileSync("/proc/self/stat", "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    children = ((Number(fields[13]) + Number(fields[14])) * 1000) / 100 // cutime + cstime, USER_HZ = 100
  } catch {
    // not Linux
  }
  return { server: (own.user + own.system) / 1000, children }
}

const machine = () => ({ cpus: NodeOs.cpus().length, memory_gib: Math.round(NodeOs.totalmem() / 2 ** 30), node: process.version })

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

const trivial = (name: string) => ({
  name,
  target: "default",
  output_rules: [],
  tasks: [{ name: "t", script: "true", env_clear: false, env: {} }]
})

/**
 * The warm pool: a server whose local provider keeps `WARM_POOL` agents bootstrapped ahead of
 * jobs; `WARM_JOBS` trivial jobs at once, each on its own fresh worker; then single jobs on an
 * idle pool.
 */
const warmPool = Effect.gen(function*() {
  const dir = yield* Testing.tempDirectory("buildomat-bench-warm-")
  const url = yield* Testing.serve(
    { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
    LocalProvider.layer({
      scratchRoot: NodePath.join(dir, "workers"),
      limit: WARM_LIMIT,
      killGraceMs: 1000,
      targets: { default: { warm: WARM_POOL } },
      ...(AGENT_NODE_FLAGS.length > 0 ? { agentCommand: [process.execPath, ...AGENT_NODE_FLAGS, agentBundle()] } : {})
    })
  )
  const admin = yield* Testing.client(url, ADMIN)
  const { c } = yield* Testing.userClient(url, ADMIN, "bench")
  const spareReady = Effect.map(admin.api.admin.workersListOld({ urlParams: {} }), (r) =>
    r.workers.filter((w) => !w.deleted && !w.recycle && w.bootstrap && w.jobs.length === 0 && w.hold == null).length)
  const waitPool = Effect.gen(function*() {
    const t = Date.now()
    while ((yield* spareReady) < WARM_POOL) {
      if (Date.now() - t > 120_000) return yield* Effect.dieMessage("the warm pool did not fill in 2 minutes")
      yield* Effect.sleep("20 millis")
    }
    return Date.now() - t
  })
  const poolFillMs = yield* waitPool

  // Burst: every job submitted at once.
  const cpu0 = cpu()
  const first = Date.now()
  const ids: Array<string> = []
  for (let i = 0; i < WARM_JOBS; i++) ids.push((yield* c.api.jobs.submit({ payload: trivial(`warm ${i}`) })).id)
  const submitted = Date.now()
  for (;;) {
    const page = yield* c.api.jobs.list({ urlParams: { limit: 10_000 } })
    const mine = page.items.filter((j) => ids.includes(j.id))
    if (mine.every((j) => j.state === "completed" || j.state === "failed")) break
    yield* Effect.sleep("25 millis")
  }
  const cpu1 = cpu()
  const jobs = yield* Effect.forEach(ids, (id) => c.api.jobs.get({ path: { job: id as any } }))
  const failed = jobs.filter((j) => j.state !== "completed")
  if (failed.length > 0) return yield* Effect.dieMessage(`${failed.length} warm-pool jobs did not complete, e.g. ${failed[0]!.id}`)
  const at = (j: (typeof jobs)[number], name: string) => Date.parse(j.times[name]!)
  const lastComplete = Math.max(...jobs.map((j) => at(j, "complete")))
  const workers = yield* Effect.forEach(ids, (id) =>
    Effect.map(c.allEvents(id), (events) => /^job assigned to worker (\S+)/.exec(events[0]?.payload ?? "")?.[1]))
  const distinct = new Set(workers.filter((w) => w !== undefined)).size
  if (distinct !== WARM_JOBS) return yield* Effect.dieMessage(`${WARM_JOBS} jobs ran on only ${distinct} workers`)

  // One at a time, each on an idle, full pool.
  const single: Array<number> = []
  for (let i = 0; i < WARM_SINGLE; i++) {
    yield* waitPool
    const { id } = yield* c.api.jobs.submit({ payload: trivial(`single ${i}`) })
    let j = yield* c.api.jobs.get({ path: { job: id as any } })
    while (j.state !== "completed" && j.state !== "failed") {
      yield* Effect.sleep("5 millis")
      j = yield* c.api.jobs.get({ path: { job: id as any } })
    }
    if (j.state !== "completed") return yield* Effect.dieMessage(`single job ${id} ${j.state}`)
    single.push(Date.parse(j.times["complete"]!) - Date.parse(j.times["submit"]!))
  }

  return {
    jobs: WARM_JOBS,
    limit: WARM_LIMIT,
    pool: WARM_POOL,
    distinct_workers: distinct,
    pool_fill_ms: poolFillMs,
    submit_all_ms: submitted - first,
    jobs_per_s: Math.round((WARM_JOBS / ((lastComplete - first) / 1000)) * 10) / 10,
    wall_ms: lastComplete - first,
    submit_to_complete: summary(jobs.map((j) => at(j, "complete") - at(j, "submit"))),
    submit_to_assigned: summary(jobs.map((j) => at(j, "assigned") - at(j, "submit"))),
    assigned_to_complete: summary(jobs.map((j) => at(j, "complete") - at(j, "assigned"))),
    cpu_ms_per_job: {
      server: Math.round((cpu1.server - cpu0.server) / WARM_JOBS),
      agents_and_tasks: Math.round((cpu1.children - cpu0.children) / WARM_JOBS)
    },
    single_job_on_idle_pool_submit_to_complete: summary(single)
  }
}).pipe(Effect.scoped)

const main = Effect.gen(function*() {
  if (ONLY === "warm") {
    const warm = yield* warmPool
    const text = JSON.stringify({ date: new Date().toISOString(), machine: machine(), warm_pool: warm }, null, 2)
    return process.stdout.write(`${text}\n`)
  }
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

  const warm = yield* warmPool

  const result = {
    date: new Date().toISOString(),
    machine: machine(),
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
    },
    warm_pool: warm
  }
  const out = NodePath.join(repo, "bench-results")
  NodeFs.mkdirSync(out, { recursive: true })
  const text = JSON.stringify(result, null, 2)
  NodeFs.writeFileSync(NodePath.join(out, `bench-${result.date.replace(/[:.]/g, "-")}.json`), text)
  NodeFs.writeFileSync(NodePath.join(out, "latest.json"), text)
  process.stdout.write(`${text}\n`)
})

main.pipe(
  Effect.scoped,
  // Per-agent info logs would compete with the server for the one event loop.
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain
)
