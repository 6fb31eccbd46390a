/**
 * `buildomat job timings` and `buildomat job join` (buildomat `bin/src/main.rs`,
 * `do_job_timings`, `do_job_join`).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { Ids, Jobs } from "@buildomat/core"
import { Context, Duration, Effect, Option } from "effect"
import { CliError, ExitStatus } from "../internal/errors.js"
import { describe } from "../internal/errors.js"
import { err, out, printJson } from "../internal/format.js"
import { handler, jobId, json, userClient } from "../internal/root.js"

const jobsArg = Args.text({ name: "JOB" }).pipe(Args.withDescription("job id"), Args.atLeast(1))

/** RFC 3339 with the given precision, as buildomat's CLI prints times. */
const rfc3339 = (t: string, millis: boolean) => {
  const d = new Date(t)
  return Number.isNaN(d.getTime()) ? t : millis ? d.toISOString() : d.toISOString().replace(/\.\d{3}Z$/, "Z")
}

/**
 * `buildomat job timings [-I FROM,TO] JOB... [--json]`: each job's recorded times (`submit`,
 * `ready`, `assigned`, `complete`), one `JOB TIME NAME` line each in time order; with
 * `-I FROM,TO`, one `JOB FROM_TIME SECONDS` line per job (or `JOB missing`).
 *
 * @since 0.1.0
 * @category commands
 */
export const timings = Command.make(
  "timings",
  {
    interval: Options.text("I").pipe(
      Options.withPseudoName("FROM,TO"),
      Options.withDescription("measure the interval between two named times, in seconds"),
      Options.optional
    ),
    json,
    jobs: jobsArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const measure = yield* Option.match(o.interval, {
        onNone: () => Effect.succeed(undefined),
        onSome: (s) => {
          const at = s.indexOf(",")
          return at <= 0 || at === s.length - 1
            ? Effect.fail(new CliError({ message: `invalid interval specification ${JSON.stringify(s)}; use FROM,TO` }))
            : Effect.succeed([s.slice(0, at), s.slice(at + 1)] as const)
        }
      })
      const { client } = yield* userClient
      const all: Array<Jobs.Job> = []
      for (const j of o.jobs) all.push(yield* client.api.jobs.get({ path: { job: yield* jobId(j) } }))
      if (o.json) {
        return yield* printJson(all.map((j) => {
          if (measure === undefined) return { id: j.id, times: j.times }
          const [from, to] = measure.map((n) => j.times[n])
          return { id: j.id, from: from ?? null, seconds: from !== undefined && to !== undefined ? (Date.parse(to) - Date.parse(from)) / 1000 : null }
        }))
      }
      for (const j of all) {
        if (measure !== undefined) {
          const [from, to] = measure.map((n) => j.times[n])
          if (from === undefined || to === undefined) yield* out(`${j.id} missing`)
          else yield* out(`${j.id} ${rfc3339(from, false)} ${Math.trunc((Date.parse(to) - Date.parse(from)) / 1000)}`)
          continue
        }
        const times = Object.entries(j.times).sort((a, b) => a[1].localeCompare(b[1]))
        for (const [name, t] of times) yield* out(`${j.id} ${rfc3339(t, true)} ${name}`)
      }
    }))
).pipe(Command.withDescription("show when each job was submitted, ready, assigned and completed"))

/**
 * How often `job join` polls (buildomat: every 5 s).
 *
 * @since 0.1.0
 * @category references
 */
export class JoinInterval extends Context.Reference<JoinInterval>()("@buildomat/cli/JoinInterval", {
  defaultValue: () => Duration.seconds(5)
}) {}

/**
 * `buildomat job join [-v] JOB...`: waits until every job has completed, polling
 * `GET /0/job/{job}`; exits 1 (`ERROR: job J failed`) as soon as one fails or is cancelled.
 * `-v` reports state changes on stderr.
 *
 * @since 0.1.0
 * @category commands
 */
export const join = Command.make(
  "join",
  {
    verbose: Options.boolean("v").pipe(Options.withDescription("report state changes")),
    jobs: jobsArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const ids: Array<Ids.JobId> = []
      for (const j of o.jobs) ids.push(yield* jobId(j))
      const { client } = yield* userClient
      const last = new Map<string, string>()
      const waiting = new Set<Ids.JobId>(ids)
      while (waiting.size > 0) {
        for (const id of [...waiting]) {
          const r = yield* client.api.jobs.get({ path: { job: id } }).pipe(Effect.either)
          if (r._tag === "Left") {
            yield* err(`WARNING: polling ${id} failed: ${yield* describe(r.left)}`)
            continue
          }
          const job = r.right
          if (o.verbose) {
            const old = last.get(id)
            if (old !== undefined && old !== job.state) yield* err(`INFO: job ${id} state change: ${old} -> ${job.state}`)
            else if (old === undefined && job.state !== "completed") yield* err(`INFO: job ${id} in state ${job.state}`)
          }
          last.set(id, job.state)
          if (job.state === "completed") {
            if (o.verbose) yield* err(`job ${id} completed successfully`)
            waiting.delete(id)
          } else if (job.state === "failed") {
            yield* err(`ERROR: job ${id} failed`)
            return yield* new ExitStatus({ code: 1 })
          }
        }
        if (waiting.size > 0) yield* Effect.sleep(yield* JoinInterval)
      }
      if (o.verbose) yield* err("all specified jobs completed successfully")
    }))
).pipe(Command.withDescription("wait for jobs to complete; exit 1 if one fails"))
