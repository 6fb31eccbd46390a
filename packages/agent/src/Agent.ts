/**
 * The buildomat agent: the process on a worker machine that connects out to the core server,
 * runs the one job the server hands it, and reports back (buildomat §3). Shipped as the
 * self-contained `buildomat-agent` bundle; `run` is the whole life cycle, for embedding.
 *
 * @since 0.1.0
 */
import { Client, Ids, Workers } from "@buildomat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Data, Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Control from "./internal/control.js"
import type { WorkerFacts } from "./internal/control.js"
import * as Diagnostics from "./internal/diagnostics.js"
import * as EventLog from "./internal/events.js"
import { rehearse, runJob } from "./internal/job.js"
import * as Processes from "./internal/processes.js"
import { describe, retrying } from "./internal/retry.js"
import * as Spare from "./internal/spare.js"
import * as State from "./internal/state.js"
import { randomAlphanumeric } from "./internal/state.js"
import { currentIdentity } from "./internal/task.js"
import * as Wire from "./internal/wire.js"

/**
 * Where an agent keeps its state when it runs as root and none is given, as buildomat does.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_STATE_DIR = "/opt/buildomat/etc"

/**
 * How an agent is configured.
 *
 * - `url`: the core server, e.g. `http://10.0.0.1:9979`.
 * - `bootstrap`: the single-use bootstrap value the worker provider handed this machine.
 * - `stateDir`: where `agent.json` (URL, bootstrap value, and the worker token this agent chose;
 *   mode 0600), `job.json` (the job once adopted) and `spool/` (job events waiting for a slow or
 *   absent server) live. buildomat uses `/opt/buildomat/etc`.
 * - `root`: the real directory the job's `/` maps to; defaults to `/`. With another root, every
 *   job-visible path (task `workdir`, output rules, `/input`) is taken under it, tasks get
 *   `HOME=<root>/home` and `BUILDOMAT_ROOT=<root>`, and outputs are still reported by their
 *   job-visible path. The local provider uses this to run jobs in scratch directories.
 * - `waitMillis`: how long each long-poll of `GET /ext/0/worker/ping` may be held by the server,
 *   in ms; default 30,000. The server answers at once when a job is assigned or the worker is
 *   told to power off, so this bounds only how often an idle agent calls.
 * - `killGraceMillis`: when a task is cancelled (or the agent stops), the time between SIGTERM
 *   and SIGKILL to its process group, in ms; default 1,000.
 * - `bmatCommand`: the argv that tasks run as `bmat` (`bmat ARGS...` appended); by default
 *   `defaultBmatCommand()`. Without one, tasks have no `bmat`.
 * - `events`: tuning of event batches and the spool (see `EventOptions`); the defaults suit.
 * - `home`: `HOME` for tasks that run as the agent's own user; default the agent's `HOME` (an
 *   agent host gives each of its agents a home of its own).
 * - `rehearse`: whether an agent that finds no job at its first ping rehearses one before it
 *   waits (an `echo` task in a temporary directory, nothing sent to the server), so that the
 *   first real task starts sooner; default true.
 *
 * @since 0.1.0
 * @category models
 */
export interface Config {
  readonly url: string
  readonly bootstrap: string
  readonly stateDir: string
  readonly root?: string | undefined
  readonly waitMillis?: number | undefined
  readonly killGraceMillis?: number | undefined
  readonly bmatCommand?: ReadonlyArray<string> | undefined
  readonly events?: EventOptions | undefined
  readonly home?: string | undefined
  readonly rehearse?: boolean | undefined
}

/**
 * How job events are batched and spooled. Output lines are appended without waiting, as runs;
 * one batch at a time goes to `POST /ext/0/worker/job/{job}/append`, numbered so that a resent
 * batch is stored once.
 *
 * - `minBatchLines`: send as soon as this many lines wait (default 100);
 * - `windowMillis`: or once the oldest waiting line is this old, in ms (default 50);
 * - `maxBatchLines`, `maxBatchBytes`: the most in one batch (default 20,000 lines, 4 MiB); while a
 *   batch is in flight the next one grows up to these;
 * - `memoryBytes`: pending lines kept in memory before the rest is spooled to
 *   `<stateDir>/spool/` (default 8 MiB). Memory for events stays within `memoryBytes` plus one
 *   batch;
 * - `maxSpoolBytes`: past this much spooled, the task's output pipes are no longer read (the task
 *   blocks on its writes) until the spool is down to half (default 1 GiB).
 *
 * @since 0.1.0
 * @category models
 */
export interface EventOptions {
  readonly minBatchLines?: number | undefined
  readonly windowMillis?: number | undefined
  readonly maxBatchLines?: number | undefined
  readonly maxBatchBytes?: number | undefined
  readonly memoryBytes?: number | undefined
  readonly maxSpoolBytes?: number | undefined
}

/**
 * The agent cannot go on: its state directory cannot be read or written. Everything else (the
 * server away, a refused call, a failing task) is retried or reported, never fatal.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgentError extends Data.TaggedError("AgentError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const decodeJobId = Schema.decodeUnknown(Ids.JobId)
const decodeMetadata = Schema.decodeUnknownOption(Workers.FactoryMetadata)
const decodePing = Schema.decodeUnknown(Workers.WorkerPingResult)

/**
 * The argv that runs `bmat` (tasks call it with `bmat ARGS...` appended): the small `bmat.cjs`
 * beside the agent bundle if it is there, else the bundle itself (this process's script if it is
 * the bundle or its launcher, else the package's built bundle). `undefined` if none is found.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultBmatCommand = (): ReadonlyArray<string> | undefined => {
  const withBmat = (bundle: string): ReadonlyArray<string> => {
    const small = path.join(path.dirname(bundle), "bmat.cjs")
    return [process.execPath, fs.existsSync(small) ? small : bundle]
  }
  const script = process.argv[1]
  if (script !== undefined && /buildomat-agent(-cached)?(\.c?js)?$/.test(script)) return withBmat(path.resolve(script))
  try {
    const here = fileURLToPath(import.meta.url)
    if (/buildomat-agent\.c?js$/.test(here)) return withBmat(here)
    const bundle = path.resolve(path.dirname(here), "../bundle/buildomat-agent.cjs")
    const fromSrc = path.resolve(path.dirname(here), "../../bundle/buildomat-agent.cjs")
    for (const b of [bundle, fromSrc]) if (fs.existsSync(b)) return withBmat(b)
  } catch {
    // not a file URL
  }
  return undefined
}

/**
 * Runs the agent's whole life cycle, following buildomat §3.2–3.9:
 *
 * 1. Load `agent.json` from the state directory, or create it with a fresh token (64 random
 *    alphanumerics).
 * 2. Bootstrap: `POST /0/worker/bootstrap {bootstrap, token}` until it succeeds (a 401 is
 *    retried too: the provider may not have associated the worker yet).
 * 3. If `job.json` exists, this agent already adopted a job before a restart: report
 *    `POST /0/worker/fail` ("agent restarted during a job") and only wait for power-off from then
 *    on, so a job never runs twice.
 * 4. Ask for work (`GET /ext/0/worker/ping?wait_ms=0`); if there is none yet, rehearse a job
 *    (`rehearse`: its code warmed, nothing sent), then wait for work with the long-poll
 *    `GET /ext/0/worker/ping`, which the server answers the moment it assigns a job. Factory
 *    metadata in the answer is applied once: root's authorized keys and password hash; a
 *    pre-job diagnostic script is run first (a fault fails the worker); a post-job one is
 *    announced (`POST /0/worker/diagnostics/enable`). The metadata and the factory info of the
 *    latest pings are what tasks see through `bmat address list` and `bmat factory`.
 * 5. Adopt the job (`job.json`, made exclusively before anything runs from an empty file
 *    created while the agent waited, fsync'd once the first task has started) and run it:
 *    inputs, each task as `/bin/bash <script>` in its own process group until one fails, every
 *    output line sent as numbered batches that the server stores exactly once, the files
 *    matching the output rules uploaded and checked (size, SHA-256), then
 *    `POST /0/worker/job/{job}/complete {failed}`. Meanwhile a long-poll with the job's id waits
 *    for power-off (the job cancelled, `max_runtime` exceeded): the task's process group is then
 *    killed (SIGTERM, `killGraceMillis`, SIGKILL) and the agent stops.
 * 6. Run the post-job diagnostic script, if any, and report it
 *    (`POST /0/worker/diagnostics/complete {hold: failed}`).
 * 7. Wait for power-off; the provider then destroys the machine.
 *
 * Every HTTP call retries transport errors, timeouts, 5xx and 429 forever with jittered
 * exponential backoff (capped near 1 s), so the agent rides out a server restart, dropped
 * connections and a server away for minutes; events wait in memory, then on disk. `poweroff`
 * ends the life cycle: the effect succeeds. No process the agent started outlives it. Fails only
 * with `AgentError`, when the state directory is unusable.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (config: Config): Effect.Effect<void, AgentError, HttpClient.HttpClient> =>
  Effect.scoped(Effect.gen(function*() {
    const root = path.resolve(config.root ?? "/")
    const waitMs = config.waitMillis ?? 30_000
    const grace = config.killGraceMillis ?? 1_000
    const bmatCommand = config.bmatCommand ?? defaultBmatCommand()
    const state = yield* State.loadOrCreate(config.stateDir, config.url, config.bootstrap)
    const { api, http } = yield* Client.make({ url: config.url, token: state.token })
    const processes = yield* Processes.make(grace)

    const worker = yield* retrying(
      "bootstrap",
      api.bootstrap.bootstrap({ payload: { bootstrap: state.bootstrap, token: state.token } }),
      { retryAll: true }
    ).pipe(Effect.orDie)
    yield* Effect.logInfo(`bootstrapped as worker ${worker.id}`)

    // What the pings say about this worker, for `bmat factory` and `bmat address`.
    const facts: WorkerFacts = { metadata: undefined, factory: undefined }
    // The long-poll, a raw call (`Wire`): its answer is what the first task waits for. A refusal
    // is not worth dying for: the server may come round.
    const ping = (job: string | undefined, wait = waitMs) =>
      retrying(
        "ping",
        Wire.json(
          http,
          HttpClientRequest.get("/ext/0/worker/ping").pipe(
            HttpClientRequest.setUrlParams({ wait_ms: String(wait), ...(job === undefined ? {} : { job }) })
          )
        ).pipe(Effect.flatMap(decodePing)),
        { retryAll: true, timeout: waitMs + 30_000 }
      ).pipe(
        Effect.orDie,
        Effect.tap((r) => {
          if (r.factory_metadata !== undefined && r.factory_metadata !== null) facts.metadata = r.factory_metadata
          if (r.factory_info !== undefined && r.factory_info !== null) facts.factory = r.factory_info
        })
      )
    const untilPoweroff = Effect.gen(function*() {
      while (!(yield* ping(undefined)).poweroff) {
        // Nothing to wait for but power-off: a held worker answers at once with no job.
        yield* Effect.sleep("1 second")
      }
      yield* Effect.logInfo("the server asked for power-off")
    })
    const fail = (reason: string) =>
      retrying("fail", api.worker.fail({ payload: { reason } })).pipe(
        Effect.catchAll((e) => Effect.logError(`reporting failure refused by the server: ${describe(e)}`))
      )

    if (yield* State.jobAdopted(config.stateDir)) {
      yield* Effect.logError("job.json exists: the agent restarted during a job; reporting failure")
      yield* fail("agent restarted during a job")
      return yield* untilPoweroff
    }

    // Worker events (diagnostic output), buildomat's POST /0/worker/append.
    const workerLog = yield* EventLog.make((batch) =>
      retrying(
        "worker append",
        Wire.text(
          http,
          HttpClientRequest.post("/0/worker/append").pipe(
            HttpClientRequest.bodyText(
              JSON.stringify(batch.runs.flatMap((r) => r.payloads.map((payload) => ({ stream: r.stream, time: r.time, payload })))),
              "application/json"
            )
          )
        )
      ).pipe(Effect.as("sent" as const), Effect.orElseSucceed(() => "dropped" as const))
    )
    const diagnostics = Diagnostics.make({ api, root, processes, log: workerLog })

    // The first task's control channel, made while the agent waits (closed here if no task took it).
    const spareControl = yield* Effect.acquireRelease(
      Effect.sync(() => {
        if (bmatCommand === undefined) return undefined
        try {
          return Control.makeChannel(bmatCommand, os.tmpdir())
        } catch {
          return undefined // the task makes its own, and says why it cannot
        }
      }),
      (c) => (c !== undefined && c.take() ? c.close : Effect.void)
    )

    // The restart guard and the first task's script, made ahead (`Spare`): creating a file is the
    // slow part of writing one. Removed here if no job took them.
    fs.rmSync(State.pendingJobFile(config.stateDir), { force: true }) // a crash's leftover
    const spareJobFile = yield* Spare.scoped(State.pendingJobFile(config.stateDir))
    const spareScript = yield* Spare.scoped(path.join(os.tmpdir(), `${randomAlphanumeric(16)}.sh`))

    const identity = config.home !== undefined ? { ...currentIdentity(), home: config.home } : undefined
    let job: Workers.WorkerPingJob | undefined
    let durable: Effect.Effect<void, State.StateError> = Effect.void
    // No work at once: rehearse a job (warming its code), then wait for one.
    let rehearsed = config.rehearse === false
    for (;;) {
      const result = yield* ping(undefined, rehearsed ? waitMs : 0)
      if (result.poweroff) return yield* Effect.logInfo("the server asked for power-off")
      const metadata = decodeMetadata(result.factory_metadata)
      if (metadata._tag === "Some") {
        const ok = yield* diagnostics.apply(metadata.value)
        if (!ok) {
          yield* fail("pre-job diagnostics reported a fault")
          return yield* untilPoweroff
        }
      }
      if (result.job !== undefined && result.job !== null) {
        job = result.job
        durable = yield* State.adoptJob(config.stateDir, result, spareJobFile)
        break
      }
      if (!rehearsed) {
        rehearsed = true
        const t0 = Date.now()
        yield* rehearse({ api, http, processes, bmatCommand, worker: facts, ...(identity !== undefined ? { identity } : {}) })
        yield* Effect.logInfo(`rehearsed a job in ${Date.now() - t0} ms; waiting for work`)
      }
    }

    const jobId = yield* decodeJobId(job.id).pipe(Effect.either)
    if (jobId._tag === "Left") {
      yield* Effect.logError(`the server sent a job id that is not a ULID: ${JSON.stringify(job.id)}`)
      yield* fail("agent received a malformed job")
      return yield* untilPoweroff
    }

    // Said once the first task has started (or before the job completes, if none does): a log
    // line is CPU that the first task need not wait for.
    const announce = yield* Effect.once(
      Effect.logInfo(`running job ${jobId.right} (${JSON.stringify(job.name)}), ${job.tasks.length} tasks`)
    )
    // While the job runs, a long-poll with its id waits for power-off (the job cancelled, the
    // worker recycled): the job is then interrupted, which kills its process groups.
    const watch = Effect.gen(function*() {
      // Not at once: the first milliseconds belong to starting the first task.
      yield* Effect.sleep("200 millis")
      for (;;) {
        const r = yield* ping(jobId.right)
        if (r.poweroff) return "poweroff" as const
        if (r.job?.id !== jobId.right) return "taken" as const
      }
    })
    const outcome = yield* Effect.race(
      runJob(job, jobId.right, {
        api,
        http,
        root,
        stateDir: config.stateDir,
        processes,
        bmatCommand,
        events: config.events,
        ...(identity !== undefined ? { identity } : {}),
        // The restart guard is written before anything of the job runs, fsync'd once it does.
        afterFirstSpawn: Effect.zipRight(announce, Effect.orDie(durable)),
        worker: facts,
        spareControl,
        spareScript
      }).pipe(Effect.map((r) => (r.failed ? "failed" : "completed"))),
      watch
    )
    if (outcome === "poweroff") return yield* Effect.logInfo("the server asked for power-off during the job")
    if (outcome === "taken") yield* Effect.logWarning("the server no longer assigns the job to this worker; stopped it")
    else yield* Effect.logInfo(`job ${jobId.right} ${outcome}`)
    yield* diagnostics.afterJob(outcome === "failed")
    yield* untilPoweroff
  })).pipe(
    Effect.catchTag("StateError", (e) => new AgentError({ message: e.message, cause: e.cause })),
    Effect.annotateLogs("component", "buildomat-agent")
  )
