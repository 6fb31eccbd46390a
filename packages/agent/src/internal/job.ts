/**
 * Running one job (buildomat §3.3–3.7): its inputs, its tasks in order until one fails, then its
 * outputs, then completion. Every event goes through one ordered, loss-free log (`events.ts`),
 * flushed before each task completion and before the job completion, so that the server has a
 * task's whole log when it learns the task is done.
 *
 * @internal
 */
import { type Client, type Ids, Workers } from "@buildomat/core"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import * as Control from "./control.js"
import * as EventLog from "./events.js"
import * as Inputs from "./inputs.js"
import type { Processes } from "./processes.js"
import type { SpareFile } from "./spare.js"
import { describe, retrying } from "./retry.js"
import * as Rules from "./rules.js"
import * as Task from "./task.js"
import { uploadFile } from "./upload.js"
import * as Wire from "./wire.js"

/** What a job needs from the agent. */
export interface JobContext {
  readonly api: Client.ApiClient
  readonly http: HttpClient.HttpClient
  /** The real directory the job's `/` maps to (absolute, normalised). */
  readonly root: string
  /** The agent's state directory; the event spool lives in `<stateDir>/spool`. */
  readonly stateDir: string
  readonly processes: Processes
  readonly identity?: Task.Identity | undefined
  /** The argv that runs the agent bundle, for `bmat`. */
  readonly bmatCommand?: ReadonlyArray<string> | undefined
  readonly events?: EventLog.Options | undefined
  /**
   * Runs once the first task's process has started, and again (it must be idempotent) before the
   * job completes: the restart guard reaching the disk.
   */
  readonly afterFirstSpawn?: Effect.Effect<void> | undefined
  /** What the server said about the worker (factory metadata and info), for `bmat`. */
  readonly worker?: Control.WorkerFacts | undefined
  /** A control channel made ahead, for the first task (`Control.makeChannel`). */
  readonly spareControl?: Control.Channel | undefined
  /** An empty script file made ahead, for the first task (`Spare.make`). */
  readonly spareScript?: SpareFile | undefined
  /** A rehearsal (`rehearse`): events are dropped and nothing is reported to the server. */
  readonly dryRun?: boolean | undefined
}

/**
 * Sends one numbered batch (`POST /ext/0/worker/job/{job}/append`), retrying transient failures
 * (transport errors, timeouts, 5xx, 429) forever with backoff. A resend of a stored batch is
 * acknowledged by the server, so retrying after a lost answer stores nothing twice. A definite
 * refusal (the job is complete) drops the batch.
 */
export const sendBatch = (http: HttpClient.HttpClient, job: Ids.JobId) => (batch: EventLog.Batch) =>
  Effect.suspend(() => {
    const body = JSON.stringify({ batch: batch.batch, runs: batch.runs })
    const req = HttpClientRequest.post(`/ext/0/worker/job/${job}/append`).pipe(
      HttpClientRequest.bodyText(body, "application/json")
    )
    return retrying("event append", Wire.text(http, req)).pipe(
      Effect.as("sent" as const),
      Effect.catchAll((e) =>
        Effect.logError(`dropping batch ${batch.batch} (${batch.lines} events) the server refused: ${describe(e)}`).pipe(
          Effect.as("dropped" as const)
        )
      )
    )
  })

/** The job id a rehearsal runs as (never a real job's: its timestamp is 0). */
const REHEARSAL_JOB = "00000000000000000000000000" as Ids.JobId

/**
 * A rehearsal of a job, run by an agent that found no work at once, while it waits: one task
 * (`echo`) through the same code as a real job (the ping's schema, the event log, the script
 * file, the control channel, the spawn), in a temporary directory as the job's root, with
 * nothing sent to the server. A fresh agent process runs its first job's code cold (not yet
 * compiled, node's modules not yet loaded); after a rehearsal, the first real task starts
 * several milliseconds sooner. Bounded by 2 s; never fails.
 */
export const rehearse = (
  ctx: Omit<JobContext, "root" | "stateDir" | "dryRun" | "afterFirstSpawn" | "spareControl" | "spareScript">
): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "buildomat-rehearsal-"))),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    const ping = Schema.decodeUnknownSync(Workers.WorkerPingResult)({
      poweroff: false,
      job: {
        id: REHEARSAL_JOB,
        name: "rehearsal",
        output_rules: [],
        inputs: [],
        tasks: [{ id: 0, name: "rehearsal", script: "echo rehearsal", env_clear: false, env: {}, uid: 0, gid: 0, workdir: "/" }]
      }
    })
    yield* runJob(ping.job!, REHEARSAL_JOB, { ...ctx, root: dir, stateDir: dir, dryRun: true })
  })).pipe(Effect.timeout("2 seconds"), Effect.ignore, Effect.catchAllDefect(() => Effect.void))

/** Runs the job and reports its completion. Never fails: problems end up as events. */
export const runJob = (
  job: Workers.WorkerPingJob,
  jobId: Ids.JobId,
  ctx: JobContext
): Effect.Effect<{ readonly failed: boolean }> =>
  Effect.scoped(Effect.gen(function*() {
    const { api, http, root } = ctx
    const log = yield* EventLog.make(ctx.dryRun === true ? () => Effect.succeed("sent" as const) : sendBatch(http, jobId), {
      spoolDir: path.join(ctx.stateDir, "spool"),
      onSpool: (file) => Effect.runFork(Effect.logInfo(`the server is behind: spooling job events to ${file}`)),
      ...ctx.events
    })
    const note = (payload: string) => log.append(undefined, "worker", [payload])
    // Reported back to the server, but never allowed to stop the agent.
    const report = <E>(what: string, call: Effect.Effect<void, E>) =>
      ctx.dryRun === true ? Effect.void : retrying(what, call).pipe(
        Effect.catchAll((e) => Effect.logError(`${what} refused by the server: ${describe(e)}`))
      )

    let failed = false
    const identity = ctx.identity ?? Task.currentIdentity()
    const tmpdir = os.tmpdir()

    if (job.inputs.length > 0) {
      const errors = yield* Inputs.download(http, jobId, job.inputs, root, log)
      for (const e of errors) note(`ERROR: ${e}`)
      if (errors.length > 0) failed = true
    }

    const control: Control.ControlContext = {
      api,
      http,
      job: jobId,
      root,
      log,
      processes: ctx.processes,
      identity,
      tmpdir,
      command: ctx.bmatCommand,
      worker: ctx.worker ?? { metadata: undefined, factory: undefined }
    }
    if (!failed) {
      for (const task of job.tasks) {
        const result = yield* Task.runTask(task, {
          jobId,
          root,
          log,
          processes: ctx.processes,
          identity,
          tmpdir,
          control: (t) => Control.open(control, t, ctx.spareControl),
          spareScript: ctx.spareScript,
          afterSpawn: ctx.afterFirstSpawn
        })
        yield* log.flush
        if (result._tag !== "SpawnFailed") {
          yield* report(
            "task complete",
            api.worker.taskComplete({ path: { job: jobId, task: task.id }, payload: { failed: Task.failed(result) } })
          )
        }
        if (Task.failed(result)) {
          failed = true
          break
        }
      }
    }

    // Whatever the tasks left running in the background is stopped before the outputs are read.
    yield* ctx.processes.killAll

    // Outputs are uploaded even after a failed task: they are often what explains the failure.
    const found = yield* Rules.scan(job.output_rules, root)
    for (const error of found.errors) note(`upload error: ${error}`)
    if (found.errors.length > 0) failed = true
    note(`found ${found.files.length} output files`)
    const used = new Set<number>()
    for (const file of found.files) {
      const r = yield* uploadFile({ api, http, job: jobId, log }, file)
      if (r.result === "Failed") failed = true
      if (r.result === "Uploaded") file.required.forEach((i) => used.add(i))
    }
    for (const error of Rules.unusedRequired(job.output_rules, used)) {
      note(`upload error: ${error}`)
      failed = true
    }

    if (ctx.afterFirstSpawn !== undefined) yield* ctx.afterFirstSpawn
    yield* log.flush
    yield* report("job complete", api.worker.jobComplete({ path: { job: jobId }, payload: { failed } }))
    return { failed }
  }))
