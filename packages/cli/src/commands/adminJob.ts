/**
 * `buildomat admin job ...`: every owner's jobs, and archive and purge requests (buildomat's
 * `do_admin_job_*`).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { Jobs } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import { Effect, Either, Option } from "effect"
import { CliError } from "../internal/errors.js"
import { displayState, err, formatAge, now, parseKeyValues, printJson, printTable, stateLetter } from "../internal/format.js"
import { adminClient, handler, jobId, json } from "../internal/root.js"

const jobsArg = Args.text({ name: "JOB" }).pipe(Args.withDescription("job id"), Args.atLeast(1))

const makeList = (name: "list" | "ls") =>
  Command.make(
    name,
    {
      json,
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
      recent: Options.boolean("recent-first").pipe(
        Options.withAlias("U"),
        Options.withDescription("newest first (as the server sends them)")
      )
    },
    handler((o) =>
      Effect.gen(function*() {
        const tags = yield* Either.match(parseKeyValues(o.tags, "--tag (-T)"), {
          onLeft: (message) => Effect.fail(new CliError({ message })),
          onRight: Effect.succeed
        })
        const pairs = Object.entries(tags)
        const tag = pairs.length > 0 ? pairs.map(([k, v]) => `${k}=${v}`).join("|") : undefined
        const { client } = yield* adminClient
        const all: Array<Jobs.JobListEntry> = []
        let token: string | undefined
        for (;;) {
          const page = yield* client.api.admin.jobsList({
            urlParams: token !== undefined
              ? { page_token: token }
              : { recent_first: o.recent, ...(tag !== undefined ? { tag } : {}) }
          })
          all.push(...page.items)
          if (page.items.length === 0 || page.next_page == null) break
          token = page.next_page
        }
        const jobs = Option.match(o.state, {
          onNone: () => all,
          onSome: (s) => all.filter((j) => j.state === s || displayState(j.state, j.cancelled) === s)
        })
        if (o.json) return yield* printJson(jobs)
        const users = yield* client.api.users.list({ urlParams: {} })
        const targets = yield* client.api.targets.list()
        const t = yield* now
        yield* printTable(
          ["id", "age", "s", "name", "state", "user", "target"],
          jobs.map((j) => [
            j.id,
            Ids.isUlid(j.id) ? formatAge(t - Ids.timestamp(j.id)) : "-",
            stateLetter(j.state, j.cancelled),
            j.name,
            displayState(j.state, j.cancelled),
            users.find((u) => u.id === j.owner)?.name ?? "?MISSING",
            targets.find((x) => x.id === j.target_id)?.name ?? "?MISSING"
          ])
        )
      }))
  ).pipe(Command.withDescription("list every user's jobs: id, age, state letter, name, state, user, target"))

/**
 * `buildomat admin job list [-T K=V]... [-F STATE] [-U] [--json]` (also `ls`): every job of every
 * user (`GET /1/admin/jobs`, all pages; `-U` newest first), as a table of id, age, state letter,
 * name, state, owner's name and the name of the target it resolved to.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/** `buildomat admin job ls`: the same as `admin job list`. @since 0.1.0 @category commands */
export const ls = makeList("ls")

/**
 * `buildomat admin job archive JOB...`: asks for each (complete) job to be archived
 * (`POST /0/admin/jobs/{job}/archive`).
 *
 * @since 0.1.0
 * @category commands
 */
export const archive = Command.make("archive", { jobs: jobsArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    for (const arg of o.jobs) {
      yield* client.api.admin.jobArchive({ path: { job: yield* jobId(arg) } }).pipe(
        Effect.mapError((e) => new CliError({ message: `archiving ${arg}: ${(e as { message?: string }).message ?? String(e)}` }))
      )
      yield* err(`job ${arg}: archive requested`)
    }
  }))).pipe(Command.withDescription("request archiving of complete jobs"))

/**
 * `buildomat admin job purge JOB...`: asks for each (archived) job to be purged
 * (`POST /0/admin/jobs/{job}/purge`).
 *
 * @since 0.1.0
 * @category commands
 */
export const purge = Command.make("purge", { jobs: jobsArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    for (const arg of o.jobs) {
      yield* client.api.admin.jobPurge({ path: { job: yield* jobId(arg) } }).pipe(
        Effect.mapError((e) => new CliError({ message: `purging ${arg}: ${(e as { message?: string }).message ?? String(e)}` }))
      )
      yield* err(`job ${arg}: purge requested`)
    }
  }))).pipe(Command.withDescription("request purging of archived jobs"))

/**
 * `buildomat admin job`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const adminJob = Command.make("job").pipe(
  Command.withDescription("list every user's jobs; request archiving and purging (admin)"),
  Command.withSubcommands([list, ls, archive, purge])
)
