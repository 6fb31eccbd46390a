#!/usr/bin/env node
/**
 * `npm run bench`: measures the core server with the local provider and real agent processes (the
 * built bundle), and writes the figures as JSON to `bench-results/` (and prints them). The server
 * runs in this process; agents run in their own. The bench follows jobs by polling, not watching:
 * an SSE consumer in the server's process would compete with it for the one event loop.
 *
 * - dispatch, ready worker: the time from submitting a job to its first task running, when a
 *   worker is already up and waiting. To have one, the bench submits a job and cancels it as soon
 *   as the provider has started a worker for it (its scratch directory appears, long before its
 *   agent can bootstrap): the worker boots, finds nothing to do, and waits in its long-poll. The
 *   bench waits until that agent says it waits for work (after its rehearsal, see the agent), then
 *   submits the measured job; if the agent took the prime job after all, it tries again.
 *   "task start" is the agent's `starting task 0` event, stamped just before it spawns bash;
 *   "first output" is the first line the task printed, stamped when the agent read it. Both are
 *   the agent's clock, the same clock as the bench's (one machine).
 * - dispatch, cold worker: the same with no worker up (one boots for the job), for comparison.
 * - log ingest: one task printing 200,000 lines of 80 bytes; lines/s from the task's start to the
 *   server storing the last line (each event's server `time`), and, separately, the time to read
 *   them all back through `GET /0/jobs/{job}/events`.
 * - artefact upload: one 256 MiB output, in three jobs one after another; MB/s from the agent's
 *   `uploading:` event to its `uploaded:` event (parts sent, stored, committed with size and
 *   SHA-256 checked), the median run and every run, the SHA-256 recorded compared with the
 *   expected one, and the server process's peak RSS during the uploads against its RSS before.
 *   Before each run, the disk's own rate: as many bytes written to a new file in the data
 *   directory and `fdatasync`'d (`disk_write_mb_per_s`). On this machine the disk has swung
 *   between about 220 MB/s and 1.9 GB/s from one session to the next, sometimes within seconds.
 *
 * Environment: `BENCH_DISPATCH_RUNS` (default 30), `BENCH_LINES` (200000), `BENCH_UPLOAD_MIB`
 * (256), `BENCH_UPLOAD_RUNS` (3), `BENCH_ONLY` (a comma-separated subset of
 * `dispatch,ingest,upload`), `BENCH_SETTLE_MS` (the pause between parts, default 2000),
 * `BENCH_HEAP_GROWING_PERCENT` (the servers' `heapGrowingPercent`, default theirs; 0 leaves V8's
 * dynamic factor, for comparison), `BENCH_AGENT_PROF` (a directory: agents then run under
 * `node --cpu-prof` (sampling every 50 µs, through the code-cached launcher) and leave their
 * profiles there).
 *
 * @since 0.1.0
 */
import { HeapGrowth, Testing } from "@buildomat/core/server"
import type { Client, Jobs } from "@buildomat/core"
import { LocalProvider } from "@buildomat/provider-local"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

const repo = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../../..")
const ADMIN = "bench-admin-token-0123456789"
const DISPATCH_RUNS = Number(process.env["BENCH_DISPATCH_RUNS"] ?? 30)
const LINES = Number(process.env["BENCH_LINES"] ?? 200_000)
const UPLOAD_MIB = Number(process.env["BENCH_UPLOAD_MIB"] ?? 256)
const UPLOAD_RUNS = Number(process.env["BENCH_UPLOAD_RUNS"] ?? 3)
/** `BENCH_ONLY=dispatch,ingest,upload` runs only those parts. */
const ONLY = new Set((process.env["BENCH_ONLY"] ?? "dispatch,ingest,upload").split(","))
const HEAP_GROWING_PERCENT = Number(process.env["BENCH_HEAP_GROWING_PERCENT"] ?? HeapGrowth.DEFAULT_PERCENT)

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
const summary = (xs: ReadonlyArray<number>) => xs.length === 0 ? undefined : ({
  n: xs.length,
  p50_ms: percentile(xs, 50),
  p90_ms: percentile(xs, 90),
  p99_ms: percentile(xs, 99),
  max_ms: Math.max(...xs)
})

const submitJob = (c: Client.Client, script: string, rules: ReadonlyArray<string> = []) =>
  c.api.jobs.submit({
    payload: { name: "bench", target: "default", output_rules: rules, tasks: [{ name: "t", script, env_clear: false, env: {} }] }
  })

/**
 * The disk's own rate, just before an upload: `size` bytes of `block` written to a new file in
 * `dir`, then `fdatasync`, as the server stores an upload; in ms. The file is removed.
 */
const diskWriteMs = (dir: string, size: number, block: Buffer) =>
  Effect.promise(async () => {
    const file = NodePath.join(dir, `disk-probe-${process.pid}`)
    const t0 = Date.now()
    const fh = await NodeFs.promises.open(file, "wx")
    try {
      for (let at = 0; at < size; at += block.length) await fh.write(block, 0, Math.min(block.length, size - at))
      await fh.datasync()
    } finally {
      await fh.close()
    }
    const ms = Date.now() - t0
    await NodeFs.promises.rm(file)
    return ms
  })

/** Polls until the job is complete or failed (every `every` ms). */
const finish = (c: Client.Client, id: string, every = 5) =>
  Effect.gen(function*() {
    let job: Jobs.Job = yield* c.api.jobs.get({ path: { job: id as any } })
    while (job.state !== "completed" && job.state !== "failed") {
      yield* Effect.sleep(every)
      job = yield* c.api.jobs.get({ path: { job: id as any } })
    }
    return job
  })

/**
 * The dispatch measurements against one server (`c`) whose local provider keeps its workers'
 * directories in `scratch`.
 */
const dispatcher = (c: Effect.Effect.Success<ReturnType<typeof Testing.userClient>>["c"], scratch: string) => {
  const workerDirs = () => (NodeFs.existsSync(scratch) ? NodeFs.readdirSync(scratch) : [])
  const until = (what: string, f: () => string | undefined) =>
    Effect.gen(function*() {
      const deadline = Date.now() + 30_000
      for (;;) {
        const r = f()
        if (r !== undefined) return r
        if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} did not happen within 30 s`)
        yield* Effect.sleep("5 millis")
      }
    })

  /**
   * A worker up and waiting: submit a job, and cancel it as soon as the provider starts a worker
   * for it (long before its agent can bootstrap); then wait for that agent to say it waits for
   * work (after its rehearsal).
   */
  const tryIdleWorker = Effect.gen(function*() {
    const before = new Set(workerDirs())
    const prime = yield* submitJob(c, "true")
    const w = yield* until("a worker start", () => workerDirs().find((d) => !before.has(d)))
    yield* c.api.jobs.cancel({ path: { job: prime.id as any } })
    const log = NodePath.join(scratch, w, "agent.log")
    // Its agent rehearses a job and says it waits; or, had it bootstrapped before the cancel, it
    // took the prime job (its worker may be gone already), and the bench tries again.
    const ready = yield* until("the agent to wait for work or take the prime job", () => {
      if (!NodeFs.existsSync(NodePath.join(scratch, w))) return "taken"
      const text = NodeFs.existsSync(log) ? NodeFs.readFileSync(log, "utf8") : ""
      return text.includes("waiting for work") ? "ready" : text.includes("running job") ? "taken" : undefined
    })
    return ready === "ready" ? w : undefined
  })

  /** A worker up and waiting: `tryIdleWorker` until one is. */
  const idleWorker = Effect.gen(function*() {
    for (;;) {
      const w = yield* tryIdleWorker
      if (w !== undefined) return w
    }
  })

  /** One measured dispatch: submit, then the agent's task start and first output, relative to submit. */
  const dispatch = Effect.gen(function*() {
    const t0 = Date.now()
    const { id } = yield* submitJob(c, "echo go")
    const job = yield* finish(c, id, 20)
    const events = yield* c.allEvents(id)
    const start = events.find((e) => e.stream === "task" && e.payload.startsWith("starting task 0"))
    const out = events.find((e) => e.stream === "stdout")
    if (start === undefined || out === undefined || job.state !== "completed") {
      return yield* Effect.dieMessage(`dispatch job ${id} ${job.state}`)
    }
    return {
      start: Date.parse(start.time_remote!) - t0,
      output: Date.parse(out.time_remote!) - t0,
      assigned: Date.parse(job.times["assigned"]!) - t0
    }
  })
  return { idleWorker, dispatch }
}

const main = Effect.gen(function*() {
  const loadAtStart = NodeOs.loadavg()[0]
  const dir = yield* Testing.tempDirectory("buildomat-bench-")
  const scratch = NodePath.join(dir, "workers")
  const url = yield* Testing.serve(
    { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN, heapGrowingPercent: HEAP_GROWING_PERCENT },
    LocalProvider.layer({ scratchRoot: scratch, limit: 2, ...(process.env["BENCH_AGENT_PROF"] ? { agentCommand: [process.execPath, "--cpu-prof", "--cpu-prof-interval=50", `--cpu-prof-dir=${process.env["BENCH_AGENT_PROF"]}`, NodePath.join(repo, "packages/agent/bundle/buildomat-agent-cached.cjs")] } : {}) })
  )
  const { c } = yield* Testing.userClient(url, ADMIN, "bench")

  const { dispatch, idleWorker } = dispatcher(c, scratch)

  // Dispatch to a ready worker: prime a worker with a job cancelled at once, wait until its
  // agent waits for work, then submit the measured job.
  const readyRuns = (m: ReturnType<typeof dispatcher>) =>
    Effect.gen(function*() {
      const ready = { start: [] as Array<number>, output: [] as Array<number>, assigned: [] as Array<number> }
      for (let i = 0; ONLY.has("dispatch") && i < DISPATCH_RUNS; i++) {
        yield* m.idleWorker
        yield* Effect.sleep("20 millis")
        const r = yield* m.dispatch
        ready.start.push(r.start)
        ready.output.push(r.output)
        ready.assigned.push(r.assigned)
      }
      return ready
    })
  const ready = yield* readyRuns({ dispatch, idleWorker })
  // Cold: a worker boots for each job.
  const cold: Array<number> = []
  for (let i = 0; ONLY.has("dispatch") && i < Math.min(5, DISPATCH_RUNS); i++) {
    yield* Effect.sleep("300 millis") // let the previous worker go
    cold.push((yield* dispatch).start)
  }

  // The same with the local provider's agent hosts (`agentHost`): the agent's code is warm.
  const hosted = !ONLY.has("dispatch") ? undefined : yield* Effect.scoped(Effect.gen(function*() {
    const hostScratch = NodePath.join(dir, "hosted-workers")
    const hostUrl = yield* Testing.serve(
      { dataDir: NodePath.join(dir, "hosted-data"), adminToken: ADMIN, heapGrowingPercent: HEAP_GROWING_PERCENT },
      LocalProvider.layer({ scratchRoot: hostScratch, limit: 2, agentHost: true })
    )
    const hc = (yield* Testing.userClient(hostUrl, ADMIN, "bench")).c
    return yield* readyRuns(dispatcher(hc, hostScratch))
  }))

  // Each part starts on a machine that has settled (writeback of the last part's files, GC).
  const settle = Effect.sleep(process.env["BENCH_SETTLE_MS"] === undefined ? "2 seconds" : Number(process.env["BENCH_SETTLE_MS"]))

  // The upload goes before the ingest: reading 200,000 events back decodes them in this process,
  // which is the server's too, and its bigger heap would slow the server down for what follows.
  // Artefact upload.
  if (ONLY.has("upload")) yield* settle
  const upload = !ONLY.has("upload") ? undefined : yield* Effect.gen(function*() {
    const size = UPLOAD_MIB * 1024 * 1024
    // Hashed a MiB at a time: a 256 MiB buffer in this process (the server's too) would cost the
    // server a major GC in the middle of the upload.
    const zeros = Buffer.alloc(1024 * 1024)
    const hash = NodeCrypto.createHash("sha256")
    for (let i = 0; i < UPLOAD_MIB; i++) hash.update(zeros)
    const expected = hash.digest("hex")
    // The server's memory while the jobs run: sampled every 20 ms.
    const before = process.memoryUsage.rss()
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
    const runs: Array<number> = []
    const disk: Array<number> = []
    const mbPerS = (ms: number) => Math.round((size / 1e6) / (ms / 1000))
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sampler)))
    for (let i = 0; i < UPLOAD_RUNS; i++) {
      if (i > 0) yield* settle
      disk.push(yield* diskWriteMs(NodePath.join(dir, "data"), size, zeros))
      const { id } = yield* submitJob(c, `mkdir -p out && head -c ${size} /dev/zero > out/big.bin`, ["/out/big.bin"])
      const job = yield* finish(c, id, 100)
      const events = yield* c.allEvents(id)
      const t = (prefix: string) => {
        const e = events.find((x) => x.stream === "worker" && x.payload.startsWith(prefix))
        return e === undefined ? undefined : Date.parse(e.time_remote!)
      }
      const t1 = t("uploading: /out/big.bin")
      const t2 = t("uploaded: /out/big.bin")
      const digests = yield* c.api.jobs.outputDigests({ path: { job: id as any } })
      if (job.state !== "completed" || t1 === undefined || t2 === undefined || digests[0]?.sha256 !== expected) {
        return yield* Effect.dieMessage(`upload: ${job.state}, ${JSON.stringify(digests)}`)
      }
      runs.push(t2 - t1)
    }
    clearInterval(sampler)
    const ms = percentile(runs, 50)
    return {
      bytes: size,
      runs: runs.length,
      upload_ms: ms,
      mb_per_s: mbPerS(ms),
      mib_per_s: Math.round(UPLOAD_MIB / (ms / 1000)),
      runs_mb_per_s: runs.map(mbPerS),
      disk_write_mb_per_s: disk.map(mbPerS),
      sha256_checked: true,
      server_rss_before_mib: Math.round(before / 2 ** 20),
      server_rss_peak_mib: Math.round(peak / 2 ** 20)
    }
  })

  // Log ingest.
  if (ONLY.has("ingest")) yield* settle
  const script = `awk 'BEGIN { s = sprintf("%079d", 0); for (i = 0; i < ${LINES}; i++) print s }'`
  const ingest = !ONLY.has("ingest") ? undefined : yield* Effect.gen(function*() {
    const { id } = yield* submitJob(c, script)
    const job = yield* finish(c, id, 50)
    const readStart = Date.now()
    const events = yield* c.allEvents(id)
    const readMs = Date.now() - readStart
    const lines = events.filter((e) => e.stream === "stdout")
    if (lines.length !== LINES || job.state !== "completed") {
      return yield* Effect.dieMessage(`ingest: ${job.state}, expected ${LINES} lines, stored ${lines.length}`)
    }
    if (!lines.every((e, i) => i === 0 || e.seq === lines[i - 1]!.seq + 1)) return yield* Effect.dieMessage("ingest: gap")
    const start = events.find((e) => e.stream === "task" && e.payload.startsWith("starting task 0"))!
    const taskStart = Date.parse(start.time_remote!)
    const lastStored = Date.parse(lines[lines.length - 1]!.time)
    const lastProduced = Date.parse(lines[lines.length - 1]!.time_remote!)
    return {
      lines: LINES,
      bytes_per_line: 80,
      task_start_to_last_line_produced_ms: lastProduced - taskStart,
      task_start_to_last_line_stored_ms: lastStored - taskStart,
      end_to_end_lines_per_s: Math.round(LINES / ((lastStored - taskStart) / 1000)),
      read_back_all_events_ms: readMs,
      read_back_events_per_s: Math.round(events.length / (readMs / 1000))
    }
  })

  const result = {
    date: new Date().toISOString(),
    machine: {
      cpus: NodeOs.cpus().length,
      memory_gib: Math.round(NodeOs.totalmem() / 2 ** 30),
      node: process.version,
      // The server runs in this process: the Node flags it ran with.
      node_flags: process.execArgv,
      // V8's heap growing factor the servers set (`ServerOptions.heapGrowingPercent`; 0: V8's own).
      server_heap_growing_percent: HeapGrowth.setByCommandLine() ? "set by node_flags" : HEAP_GROWING_PERCENT,
      // The machine may be shared: the figures are only as quiet as it was.
      load_average_1m_at_start: loadAtStart,
      load_average_1m_at_end: NodeOs.loadavg()[0]
    },
    dispatch: {
      method: "ready: a worker started for a job cancelled at once boots and waits in its long-poll; cold: a worker boots for the job",
      submit_to_task_start_ready_worker: summary(ready.start),
      submit_to_first_output_ready_worker: summary(ready.output),
      submit_to_assigned_ready_worker: summary(ready.assigned),
      submit_to_task_start_cold_worker: summary(cold),
      ...(hosted === undefined ? {} : {
        agent_host_submit_to_task_start_ready_worker: summary(hosted.start),
        agent_host_submit_to_first_output_ready_worker: summary(hosted.output),
        agent_host_submit_to_assigned_ready_worker: summary(hosted.assigned)
      })
    },
    log_ingest: ingest,
    artefact_upload: upload
  }
  const out = NodePath.join(repo, "bench-results")
  NodeFs.mkdirSync(out, { recursive: true })
  const text = JSON.stringify(result, null, 2)
  NodeFs.writeFileSync(NodePath.join(out, `bench-${result.date.replace(/[:.]/g, "-")}.json`), text)
  NodeFs.writeFileSync(NodePath.join(out, "latest.json"), text)
  process.stdout.write(`${text}\n`)
})

// The bench's client makes no spans, as the `buildomat` command makes none (the server makes
// none by default either).
main.pipe(Effect.scoped, Effect.withTracerEnabled(false), NodeRuntime.runMain)
