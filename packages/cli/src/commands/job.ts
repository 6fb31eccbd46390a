/**
 * `buildomat job ...`: submit, list, show, follow, cancel jobs and fetch their outputs.
 * Command names, flags and output follow buildomat's CLI (`bin/src/main.rs`).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Ids, OutputRules } from "@buildomat/core"
import type { Jobs } from "@buildomat/core"
import { Console, Effect, Either, Option } from "effect"
import { download } from "../internal/download.js"
import { CliError } from "../internal/errors.js"
import {
  displayState,
  err,
  formatAge,
  formatBytes,
  now,
  out,
  parseKeyValues,
  printJson,
  printTable,
  stateLetter
} from "../internal/format.js"
import { handler, jobId, json, userClient } from "../internal/root.js"
import { exitFor, tail as tailJob } from "../internal/tail.js"
import { checkInputs, parseInputs, uploadInput } from "../internal/upload.js"
import { publish, sign } from "./jobOutputs.js"
import { join, timings } from "./jobTimes.js"
import { store } from "./store.js"

const jobArg = Args.text({ name: "JOB" }).pipe(Args.withDescription("job id"))

const fromEither = <A>(e: Either.Either<A, string>) =>
  Either.match(e, { onLeft: (message) => Effect.fail(new CliError({ message })), onRight: Effect.succeed })

/**
 * Parses `-d NAME=JOBID` values into dependencies as buildomat's CLI makes them: the outputs
 * copied as inputs, satisfied when the prior job completes (not when it fails).
 */
export const parseDepends = (values: ReadonlyArray<string>): Either.Either<Record<string, Jobs.DependSubmit>, string> => {
  const out: Record<string, Jobs.DependSubmit> = {}
  for (const v of values) {
    const at = v.indexOf("=")
    if (at <= 0 || at === v.length - 1) return Either.left(`dependency ${JSON.stringify(v)} not well-formed; use NAME=JOBID`)
    const name = v.slice(0, at)
    const prior = v.slice(at + 1).trim()
    if (!Ids.isUlid(prior)) return Either.left(`dependency ${JSON.stringify(v)}: ${JSON.stringify(prior)} is not a job id`)
    if (name in out) return Either.left(`two dependencies are named ${JSON.stringify(name)}`)
    out[name] = { prior_job: prior.toUpperCase(), copy_outputs: true, on_completed: true, on_failed: false }
  }
  return Either.right(out)
}

// ---------------------------------------------------------------------------------------------
// job run
// ---------------------------------------------------------------------------------------------

const runOptions = {
  name: Options.text("name").pipe(Options.withAlias("n"), Options.withPseudoName("NAME"), Options.withDescription("job name")),
  script: Options.text("script").pipe(
    Options.withAlias("c"),
    Options.withPseudoName("SCRIPT"),
    Options.withDescription("bash script to run"),
    Options.optional
  ),
  scriptFile: Options.text("script-file").pipe(
    Options.withAlias("C"),
    Options.withPseudoName("FILE"),
    Options.withDescription("file holding the bash script to run"),
    Options.optional
  ),
  target: Options.text("target").pipe(
    Options.withAlias("t"),
    Options.withPseudoName("TARGET"),
    Options.withDescription("target to run the job on"),
    Options.withDefault("default")
  ),
  env: Options.text("env").pipe(
    Options.withAlias("e"),
    Options.withPseudoName("KEY=VALUE"),
    Options.withDescription("environment variable KEY=VALUE (repeatable)"),
    Options.repeated
  ),
  emptyEnv: Options.boolean("empty-env").pipe(
    Options.withAlias("E"),
    Options.withDescription("start the task with an empty environment")
  ),
  outputRules: Options.text("output-rule").pipe(
    Options.withAlias("O"),
    Options.withPseudoName("RULE"),
    Options.withDescription("output rule, e.g. /work/*.tar.gz or =/out/report (repeatable)"),
    Options.repeated
  ),
  tags: Options.text("tag").pipe(
    Options.withAlias("T"),
    Options.withPseudoName("KEY=VALUE"),
    Options.withDescription("tag KEY=VALUE (repeatable)"),
    Options.repeated
  ),
  inputs: Options.text("input").pipe(
    Options.withAlias("i"),
    Options.withPseudoName("[NAME=]FILE"),
    Options.withDescription("input file for the job, at /input/NAME (default NAME: the file's basename; repeatable)"),
    Options.repeated
  ),
  depends: Options.text("depend-on").pipe(
    Options.withAlias("d"),
    Options.withPseudoName("NAME=JOBID"),
    Options.withDescription("run after job JOBID completes, with its outputs at /input/NAME/... (repeatable)"),
    Options.repeated
  ),
  noWait: Options.boolean("no-wait").pipe(
    Options.withAlias("W"),
    Options.withDescription("do not wait: print the job id and exit")
  ),
  wait: Options.boolean("wait").pipe(
    Options.withDescription("wait for the job, streaming its output, and exit 1 if it fails (the default)")
  ),
  json
}

/**
 * `buildomat job run -n NAME (-c SCRIPT | -C FILE) [-t TARGET] [-e K=V]... [-E] [-O RULE]...
 * [-i [NAME=]FILE]... [-d NAME=JOBID]... [-T K=V]... [-W | --wait] [--json]`: submits a job with
 * one task named `default`. Inputs are checked against the server's quota first, then uploaded
 * after the submit in 5 MiB chunks (progress bar on a terminal) and committed; the job waits for
 * them. Each `-d` depends on an earlier job with `copy_outputs` and `on_completed` (buildomat).
 * Unless `-W` is given it follows the job like `job tail` and exits 0 if it completed, 1 if it
 * failed; with `-W` it prints only the job id (with `--json`, `{"id": ...}`).
 *
 * @since 0.1.0
 * @category commands
 */
export const run = Command.make("run", runOptions, handler((o) =>
  Effect.gen(function*() {
    if (o.noWait && o.wait) return yield* new CliError({ message: "--no-wait (-W) and --wait contradict each other" })
    const script = yield* Option.match(o.script, {
      onSome: (script) =>
        Option.isSome(o.scriptFile)
          ? Effect.fail(new CliError({ message: "give one of --script (-c) and --script-file (-C), not both" }))
          : Effect.succeed(script),
      onNone: () =>
        Option.match(o.scriptFile, {
          onNone: () => Effect.fail(new CliError({ message: "must specify one of --script (-c) or --script-file (-C)" })),
          onSome: (file) =>
            Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(file)).pipe(
              Effect.mapError((e) => new CliError({ message: `reading script file ${file}: ${e.message}` }))
            )
        })
    })
    const env = yield* fromEither(parseKeyValues(o.env, "--env (-e)"))
    const tags = yield* fromEither(parseKeyValues(o.tags, "--tag (-T)"))
    for (const rule of o.outputRules) yield* fromEither(OutputRules.parse(rule))
    const depends = yield* fromEither(parseDepends(o.depends))
    const wanted = yield* parseInputs(o.inputs)

    const { client } = yield* userClient
    const inputs = yield* checkInputs(client, wanted)
    const submitted = yield* client.api.jobs.submit({
      payload: {
        name: o.name,
        target: o.target,
        output_rules: o.outputRules,
        tasks: [{ name: "default", script, env_clear: o.emptyEnv, env }],
        inputs: inputs.map((i) => i.name),
        tags,
        depends
      }
    })
    const submittedId = yield* jobId(submitted.id)
    for (const input of inputs) yield* uploadInput(client, submittedId, input)
    if (o.noWait) {
      return yield* o.json ? Console.log(JSON.stringify({ id: submitted.id })) : out(submitted.id)
    }
    const id = submittedId
    if (!o.json) {
      yield* out(`job ${id} submitted`)
      yield* err("polling for job output...")
    }
    yield* exitFor(yield* tailJob(client, id, o.json))
  }))).pipe(Command.withDescription("submit a job with one bash task and, unless -W, follow it to the end"))

// ---------------------------------------------------------------------------------------------
// job list
// ---------------------------------------------------------------------------------------------

const listOptions = {
  tags: Options.text("tag").pipe(
    Options.withAlias("T"),
    Options.withPseudoName("KEY=VALUE"),
    Options.withDescription("only jobs with tag KEY=VALUE (repeatable; all must match)"),
    Options.repeated
  ),
  state: Options.text("state").pipe(
    Options.withAlias("F"),
    Options.withPseudoName("STATE"),
    Options.withDescription("only jobs in this state (queued, waiting, running, completed, failed, cancelled)"),
    Options.optional
  ),
  json
}

/** Every job of the user, following `next_page` (`GET /1/jobs`). */
const listAll = (tag: string | undefined) =>
  Effect.gen(function*() {
    const { client } = yield* userClient
    const items: Array<Jobs.JobListEntry> = []
    let pageToken: string | undefined
    const seen = new Set<string>()
    while (true) {
      const page = yield* client.api.jobs.list({
        urlParams: {
          ...(pageToken !== undefined ? { page_token: pageToken } : {}),
          ...(tag !== undefined ? { tag } : {})
        }
      })
      items.push(...page.items)
      const next = page.next_page
      if (page.items.length === 0 || next === undefined || next === null || seen.has(next)) break
      seen.add(next)
      pageToken = next
    }
    return items
  })

const makeList = (name: "list" | "ls") =>
  Command.make(name, listOptions, handler((o) =>
    Effect.gen(function*() {
      const tags = yield* fromEither(parseKeyValues(o.tags, "--tag (-T)"))
      const pairs = Object.entries(tags)
      const tag = pairs.length > 0 ? pairs.map(([k, v]) => `${k}=${v}`).join("|") : undefined
      const all = yield* listAll(tag)
      const jobs = Option.match(o.state, {
        onNone: () => all,
        onSome: (s) => all.filter((j) => j.state === s || displayState(j.state, j.cancelled) === s)
      })
      if (o.json) return yield* printJson(jobs)
      const t = yield* now
      yield* printTable(
        ["id", "age", "s", "name", "state"],
        jobs.map((j) => [
          j.id,
          Ids.isUlid(j.id) ? formatAge(t - Ids.timestamp(j.id)) : "-",
          stateLetter(j.state, j.cancelled),
          j.name,
          displayState(j.state, j.cancelled)
        ])
      )
    }))).pipe(Command.withDescription("list your jobs: id, age, state letter (F C r w q X), name, state"))

/**
 * `buildomat job list [-T K=V]... [-F STATE] [--json]` (also `ls`): every job of the user
 * (`GET /1/jobs`, all pages), as a table of id, age, state letter (`F` failed, `C` completed,
 * `r` running, `w` waiting, `q` queued, `X` cancelled), name and state.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/**
 * `buildomat job ls`: the same as `job list`.
 *
 * @since 0.1.0
 * @category commands
 */
export const ls = makeList("ls")

// ---------------------------------------------------------------------------------------------
// job show
// ---------------------------------------------------------------------------------------------

/**
 * Why a job waits, as text: `waiting:` followed by one line per reason, `[code] message`
 * (see `Jobs.JobWaitReasonCode`); nothing when there is no reason.
 */
export const renderWhy = (why: Jobs.JobWhy): ReadonlyArray<string> =>
  why.reasons.map((r, i) => `${i === 0 ? "waiting:  " : "          "}[${r.code}] ${r.message}`)

/**
 * The job view as text: the lines `job show` prints. With `why` (from
 * `GET /ext/0/jobs/{job}/why`), a queued or waiting job also shows its place in its target's
 * queue and why it is not running yet.
 */
export const renderJob = (job: Jobs.Job, why?: Jobs.JobWhy | undefined): ReadonlyArray<string> => {
  const lines: Array<string> = []
  lines.push(`id:       ${job.id}`)
  lines.push(`name:     ${job.name}`)
  lines.push(`owner:    ${job.owner}`)
  const position = why?.position != null && job.state === "queued" ? ` (place ${why.position} in the queue of its target)` : ""
  lines.push(`state:    ${displayState(job.state, job.cancelled)}${position}`)
  if (why !== undefined) lines.push(...renderWhy(why))
  lines.push(`target:   ${job.target}${job.target_real !== job.target ? ` (resolved to ${job.target_real})` : ""}`)
  const times = Object.entries(job.times).sort((a, b) => a[1].localeCompare(b[1]))
  if (times.length > 0) {
    lines.push("times:")
    const submit = Date.parse(job.times["submit"] ?? times[0]![1])
    for (const [name, time] of times) {
      const delta = (Date.parse(time) - submit) / 1000
      lines.push(`    ${name.padEnd(10)} ${time}${name !== "submit" && Number.isFinite(delta) ? `  (+${delta.toFixed(1)}s)` : ""}`)
    }
  }
  if (job.time_archived !== undefined && job.time_archived !== null) lines.push(`archived: ${job.time_archived}`)
  if (job.time_purged !== undefined && job.time_purged !== null) lines.push(`purged:   ${job.time_purged}`)
  lines.push("tasks:")
  job.tasks.forEach((task, i) => {
    lines.push(`    ${String(i).padStart(2)}  ${task.name.padEnd(20)} ${task.state}`)
  })
  if (job.output_rules.length > 0) {
    lines.push("output rules:")
    for (const rule of job.output_rules) lines.push(`    ${rule}`)
  }
  const tags = Object.entries(job.tags).sort((a, b) => a[0].localeCompare(b[0]))
  if (tags.length > 0) {
    lines.push("tags:")
    for (const [k, v] of tags) lines.push(`    ${k}=${v}`)
  }
  return lines
}

/**
 * `buildomat job show JOB [--json]`: the job view (`GET /0/job/{job}`): state, target, times,
 * tasks with their states, output rules and tags. For a job still queued or waiting it also says
 * why it is not running yet (`GET /ext/0/jobs/{job}/why`: waiting for inputs or dependencies,
 * creation on hold, no provider for its target, the factory disabled or at its limit, a worker
 * booting; left out against a server without that route). `--json` prints the job view alone,
 * as buildomat's `Job`.
 *
 * @since 0.1.0
 * @category commands
 */
export const show = Command.make("show", { json, job: jobArg }, handler((o) =>
  Effect.gen(function*() {
    const id = yield* jobId(o.job)
    const { client } = yield* userClient
    const job = yield* client.api.jobs.get({ path: { job: id } })
    if (o.json) return yield* printJson(job)
    const why = job.state === "queued" || job.state === "waiting"
      ? yield* client.api.jobs.why({ path: { job: id } }).pipe(Effect.option, Effect.map(Option.getOrUndefined))
      : undefined
    for (const line of renderJob(job, why)) yield* out(line)
  }))).pipe(Command.withDescription("show a job: state (and why it waits), target, times, tasks, output rules, tags"))

// ---------------------------------------------------------------------------------------------
// job tail
// ---------------------------------------------------------------------------------------------

/**
 * `buildomat job tail [-j] JOB`: follows the job's events live (the SSE watch, resumed after any
 * interruption) until it ends; exits 0 if it completed, 1 if it failed. `-j` (`--json`) prints
 * one JSON event per line and no state changes.
 *
 * @since 0.1.0
 * @category commands
 */
export const tail = Command.make(
  "tail",
  {
    json: Options.boolean("json").pipe(Options.withAlias("j"), Options.withDescription("one JSON event per line")),
    job: jobArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const id = yield* jobId(o.job)
      const { client } = yield* userClient
      yield* exitFor(yield* tailJob(client, id, o.json))
    }))
).pipe(Command.withDescription("follow a job's output until it ends; exit 1 if it failed"))

// ---------------------------------------------------------------------------------------------
// job outputs, copy, cancel
// ---------------------------------------------------------------------------------------------

/**
 * `buildomat job outputs JOB [--json]`: the job's stored outputs (`GET /0/jobs/{job}/outputs`):
 * path, size, id.
 *
 * @since 0.1.0
 * @category commands
 */
export const outputs = Command.make("outputs", { json, job: jobArg }, handler((o) =>
  Effect.gen(function*() {
    const id = yield* jobId(o.job)
    const { client } = yield* userClient
    const list = yield* client.api.jobs.outputs({ path: { job: id } })
    if (o.json) return yield* printJson(list)
    yield* printTable(["path", "size", "id"], list.map((f) => [f.path, formatBytes(f.size), f.id]))
  }))).pipe(Command.withDescription("list a job's outputs: path, size, id"))

const makeCopy = (name: "copy" | "cp") =>
  Command.make(
    name,
    {
      json,
      job: jobArg,
      src: Args.text({ name: "SRC_PATH" }).pipe(Args.withDescription("the output's path, exactly as `job outputs` shows it")),
      dst: Args.text({ name: "DST_FILE" }).pipe(Args.withDescription("local file to write"))
    },
    handler((o) =>
      Effect.gen(function*() {
        const id = yield* jobId(o.job)
        const { client } = yield* userClient
        const { direct, result } = yield* download(client, id, o.src, o.dst)
        // Written to /dev/stdout or a pipe: the report goes to stderr, out of the data's way.
        const report = (line: string) => (direct ? err(line) : out(line))
        if (o.json) return yield* report(JSON.stringify(result, null, 2))
        yield* report(`${result.file}: ${result.size} bytes, sha256 ${result.sha256}${result.verified ? " (verified)" : ""}`)
      }))
  ).pipe(Command.withDescription("download an output by its exact path, checking its size and SHA-256"))

/**
 * `buildomat job copy JOB SRC_PATH DST_FILE [--json]` (also `cp`): downloads the output whose
 * path is exactly `SRC_PATH`, with a progress bar on stderr when it is a terminal, computing the
 * SHA-256 while writing and comparing it with the server's digest; on a mismatch the file is
 * removed and the command fails. Prints the size and the SHA-256.
 *
 * @since 0.1.0
 * @category commands
 */
export const copy = makeCopy("copy")

/**
 * `buildomat job cp`: the same as `job copy`.
 *
 * @since 0.1.0
 * @category commands
 */
export const cp = makeCopy("cp")

/**
 * `buildomat job cancel JOB`: `POST /0/jobs/{job}/cancel`. The job ends `failed`, shown as
 * `cancelled`; cancelling a finished job is a conflict reported by the server.
 *
 * @since 0.1.0
 * @category commands
 */
export const cancel = Command.make("cancel", { job: jobArg }, handler((o) =>
  Effect.gen(function*() {
    const id = yield* jobId(o.job)
    const { client } = yield* userClient
    yield* client.api.jobs.cancel({ path: { job: id } })
    yield* err(`job ${id} cancelled`)
  }))).pipe(Command.withDescription("cancel a job"))

/**
 * `buildomat job`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const job = Command.make("job").pipe(
  Command.withDescription("submit, list, follow and cancel jobs; fetch, publish and sign their outputs; use their store"),
  Command.withSubcommands([run, list, ls, show, tail, outputs, copy, cp, cancel, store, publish, sign, timings, join])
)
