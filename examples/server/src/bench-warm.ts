#!/usr/bin/env node
/**
 * The second part of `npm run bench` (after `bench.ts`): the local provider's warm pool. It writes
 * `bench-results/warm-latest.json` (and prints it):
 *
 * - warm pool: 100 trivial jobs (`BENCH_WARM_JOBS`) submitted at once to a server whose local
 *   provider keeps a warm pool (`BENCH_WARM_POOL` agents, at most `BENCH_WARM_LIMIT` at once),
 *   each job on a fresh worker: jobs/s from the first submit to the last completion, and the
 *   time from submit to complete (p50/p99, from the server's `times`); then jobs one at a time on
 *   an idle, full pool (`BENCH_WARM_SINGLE` runs): submit to complete. CPU per job: the server's
 *   (this process, the bench's polling included) and the rest of the machine's.
 * - the same with `agentHost` (`warm_pool_agent_host`): each target's agents in one agent host
 *   process instead of a process each.
 *
 * @since 0.1.0
 */
import { Testing } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Logger, LogLevel } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

const repo = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../../..")
const ADMIN = "bench-admin-token-0123456789"
const WARM_JOBS = Number(process.env["BENCH_WARM_JOBS"] ?? 100)
const WARM_LIMIT = Number(process.env["BENCH_WARM_LIMIT"] ?? 6)
const WARM_POOL = Number(process.env["BENCH_WARM_POOL"] ?? WARM_LIMIT)
const WARM_SINGLE = Number(process.env["BENCH_WARM_SINGLE"] ?? 20)
/** Extra node flags for the warm pool's agents (space-separated), to compare their cost. */
const AGENT_NODE_FLAGS = (process.env["BENCH_AGENT_NODE_FLAGS"] ?? "").split(" ").filter((f) => f !== "")
const agentBundle = () => createRequire(import.meta.url).resolve("@buildomat/agent/bundle/cached")

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
 * CPU time used so far, in ms: by this process (the server), and by the whole machine (every
 * process: agents, agent hosts and tasks included), from `/proc/stat` (Linux only; 0 elsewhere).
 */
const cpu = () => {
  const own = process.cpuUsage()
  let machine = 0
  try {
    const fields = NodeFs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal: all but idle and iowait, in USER_HZ = 100
    machine = ((fields[0]! + fields[1]! + fields[2]! + fields[5]! + fields[6]! + fields[7]!) * 1000) / 100
  } catch {
    // not Linux
  }
  return { server: (own.user + own.system) / 1000, machine }
}

const machine = () => ({
  cpus: NodeOs.cpus().length,
  memory_gib: Math.round(NodeOs.totalmem() / 2 ** 30),
  node: process.version,
  node_flags: process.execArgv
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
const warmPool = (agentHost: boolean) => Effect.gen(function*() {
  const dir = yield* Testing.tempDirectory("buildomat-bench-warm-")
  const url = yield* Testing.serve(
    { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
    LocalProvider.layer({
      scratchRoot: NodePath.join(dir, "workers"),
      limit: WARM_LIMIT,
      killGraceMs: 1000,
      agentHost,
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
  // Waits for each job in turn, one small GET at a time: listing every job each time would cost
  // the server more than the jobs do. The figures come from the server's `times`, not from here.
  for (const id of ids) {
    for (;;) {
      const j = yield* c.api.jobs.get({ path: { job: id as any } })
      if (j.state === "completed" || j.state === "failed") break
      yield* Effect.sleep("25 millis")
    }
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
    agent_host: agentHost,
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
      agents_and_tasks: Math.round((cpu1.machine - cpu0.machine - (cpu1.server - cpu0.server)) / WARM_JOBS)
    },
    single_job_on_idle_pool_submit_to_complete: summary(single)
  }
}).pipe(Effect.scoped)

const main = Effect.gen(function*() {
  // The default (an agent process per worker), then agent hosts (`agentHost`).
  const warm = yield* warmPool(false)
  const host = yield* warmPool(true)
  const result = { date: new Date().toISOString(), machine: machine(), warm_pool: warm, warm_pool_agent_host: host }
  const out = NodePath.join(repo, "bench-results")
  NodeFs.mkdirSync(out, { recursive: true })
  const text = JSON.stringify(result, null, 2)
  NodeFs.writeFileSync(NodePath.join(out, `warm-${result.date.replace(/[:.]/g, "-")}.json`), text)
  NodeFs.writeFileSync(NodePath.join(out, "warm-latest.json"), text)
  process.stdout.write(`${text}\n`)
})

main.pipe(
  Effect.scoped,
  // Per-agent info logs would compete with the server for the one event loop.
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain
)
