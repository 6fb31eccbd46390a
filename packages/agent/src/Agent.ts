/**
 * The buildomat agent: the process on a worker machine that connects out to the core server,
 * runs the one job the server hands it, and reports back (buildomat §3). Shipped as the
 * self-contained `buildomat-agent` bundle; `run` is the whole life cycle, for embedding.
 *
 * @since 0.1.0
 */
import { Client, Ids } from "@buildomat/core"
import type { Workers } from "@buildomat/core"
import type { HttpClient } from "@effect/platform"
import { Data, Duration, Effect, Schema } from "effect"
import * as path from "node:path"
import { runJob } from "./internal/job.js"
import { describe, retrying } from "./internal/retry.js"
import * as State from "./internal/state.js"

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
 *   mode 0600) and `job.json` (the job once adopted) live. buildomat uses `/opt/buildomat/etc`.
 * - `root`: the real directory the job's `/` maps to; defaults to `/`. With another root, every
 *   job-visible path (task `workdir`, output rules, `/input`) is taken under it, tasks get
 *   `HOME=<root>/home` and `BUILDOMAT_ROOT=<root>`, and outputs are still reported by their
 *   job-visible path. The local provider uses this to run jobs in scratch directories.
 * - `pingInterval`: how often to ping while idle; defaults to 250 ms (buildomat: 1 s).
 * - `busyPingInterval`: how often to ping while a job runs, to stay known as alive and to hear
 *   of a power-off; defaults to 5 s (as buildomat).
 *
 * @since 0.1.0
 * @category models
 */
export interface Config {
  readonly url: string
  readonly bootstrap: string
  readonly stateDir: string
  readonly root?: string | undefined
  readonly pingInterval?: Duration.DurationInput | undefined
  readonly busyPingInterval?: Duration.DurationInput | undefined
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

/**
 * Runs the agent's whole life cycle, following buildomat §3.2–3.7:
 *
 * 1. Load `agent.json` from the state directory, or create it with a fresh token (64 random
 *    alphanumerics).
 * 2. Bootstrap: `POST /0/worker/bootstrap {bootstrap, token}` until it succeeds, backing off
 *    up to about 1 s between attempts; a 401 is retried too, since the provider may not have
 *    associated the worker yet.
 * 3. If `job.json` exists, this agent already adopted a job before a restart: report
 *    `POST /0/worker/fail` ("agent restarted during a job") and only ping from then on, so a
 *    job never runs twice.
 * 4. Ping `GET /0/worker/ping` every `pingInterval` until a job arrives, then record it in
 *    `job.json` (created exclusively, fsync'd) and run it: each task as `/bin/bash <script>`
 *    until one fails, every output line sent as an event, the files matching the output rules
 *    uploaded in chunks and committed, then `POST /0/worker/job/{job}/complete {failed}`.
 * 5. Ping until the server says `poweroff`; the provider then destroys the machine.
 *
 * Every HTTP call retries transport errors, timeouts, 5xx and 429 forever with jittered
 * exponential backoff (capped near 1 s), so the agent rides out a server restart. `poweroff`
 * at any time, even mid-job, ends the life cycle: the effect succeeds, and a running task is
 * killed. Fails only with `AgentError`, when the state directory is unusable.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (config: Config): Effect.Effect<void, AgentError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const root = path.resolve(config.root ?? "/")
    const idleEvery = config.pingInterval ?? "250 millis"
    const busyEvery = config.busyPingInterval ?? "5 seconds"
    const state = yield* State.loadOrCreate(config.stateDir, config.url, config.bootstrap)
    const { api } = yield* Client.make({ url: config.url, token: state.token })

    const worker = yield* retrying(
      "bootstrap",
      api.bootstrap.bootstrap({ payload: { bootstrap: state.bootstrap, token: state.token } }),
      { retryAll: true }
    ).pipe(Effect.orDie)
    yield* Effect.logInfo(`bootstrapped as worker ${worker.id}`)

    // A refusal is not worth dying for: the server may come round, or the worker be deleted.
    const ping = retrying("ping", api.worker.ping(), { retryAll: true }).pipe(Effect.orDie)
    const untilPoweroff = Effect.gen(function*() {
      while (!(yield* ping).poweroff) yield* Effect.sleep(idleEvery)
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

    let job: Workers.WorkerPingJob | undefined
    for (;;) {
      const result = yield* ping
      if (result.poweroff) return yield* Effect.logInfo("the server asked for power-off")
      if (result.job !== undefined && result.job !== null) {
        job = result.job
        yield* State.adoptJob(config.stateDir, result)
        break
      }
      yield* Effect.sleep(idleEvery)
    }

    const jobId = yield* decodeJobId(job.id).pipe(Effect.either)
    if (jobId._tag === "Left") {
      yield* Effect.logError(`the server sent a job id that is not a ULID: ${JSON.stringify(job.id)}`)
      yield* fail("agent received a malformed job")
      return yield* untilPoweroff
    }

    yield* Effect.logInfo(`running job ${jobId.right} (${JSON.stringify(job.name)}), ${job.tasks.length} tasks`)
    // Keep pinging while busy: the server fails workers that fall silent, and a power-off
    // (the job cancelled, the worker recycled) must stop the job.
    const watch = Effect.gen(function*() {
      do yield* Effect.sleep(busyEvery)
      while (!(yield* ping).poweroff)
    })
    const outcome = yield* Effect.race(
      runJob(job, jobId.right, { api, root }).pipe(
        Effect.map((r) => (r.failed ? "failed" : "completed"))
      ),
      watch.pipe(Effect.as("poweroff" as const))
    )
    if (outcome === "poweroff") return yield* Effect.logInfo("the server asked for power-off during the job")
    yield* Effect.logInfo(`job ${jobId.right} ${outcome}`)
    yield* untilPoweroff
  }).pipe(
    Effect.catchTag("StateError", (e) => new AgentError({ message: e.message, cause: e.cause })),
    Effect.annotateLogs("component", "buildomat-agent")
  )
