/**
 * `buildomat admin worker ...` (also `buildomat worker ...`): list, recycle, hold, release and
 * follow workers (buildomat's `do_worker_*`). WORKER arguments are worker ids.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { Admin } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import { Duration, Effect } from "effect"
import { CliError } from "../internal/errors.js"
import { err, formatAge, now, out, printJson, printTable } from "../internal/format.js"
import { workerId } from "../internal/resolve.js"
import { adminClient, handler, json } from "../internal/root.js"
import { RetryDelay } from "../internal/tail.js"

const workersArg = Args.text({ name: "WORKER" }).pipe(Args.withDescription("worker id"), Args.atLeast(1))

/** Every worker (or every active one), following `next_page` (`GET /1/workers`). */
const allWorkers = (active: boolean) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const items: Array<Admin.Worker> = []
    let token: string | undefined
    for (;;) {
      const page = yield* client.api.admin.workersList({ urlParams: token === undefined ? { active } : { page_token: token } })
      items.push(...page.items)
      if (page.items.length === 0 || page.next_page == null) return items
      token = page.next_page
    }
  })

/**
 * A worker's flags as buildomat prints them: `B` bootstrapped, `J` has a job, `R` recycled,
 * `D` deleted, `H` held, `d` post-job diagnostics pending; `-` for each flag not set.
 */
export const workerFlags = (w: Admin.Worker): string =>
  [
    ["B", w.bootstrap],
    ["J", w.jobs.length > 0],
    ["R", w.recycle],
    ["D", w.deleted],
    ["H", w.hold != null],
    ["d", w.diagnostics]
  ].map(([c, on]) => (on ? c : "-")).join("")

const makeList = (name: "list" | "ls") =>
  Command.make(
    name,
    {
      json,
      active: Options.boolean("active").pipe(
        Options.withAlias("A"),
        Options.withDescription("only workers not yet destroyed")
      ),
      held: Options.boolean("held").pipe(
        Options.withAlias("H"),
        Options.withDescription("only workers on hold (buildomat: -h)")
      )
    },
    handler((o) =>
      Effect.gen(function*() {
        const { client } = yield* adminClient
        const all = yield* allWorkers(o.active || o.held)
        const workers = all.filter((w) => (!o.active || !w.deleted) && (!o.held || (!w.deleted && w.hold != null)))
        if (o.json) return yield* printJson(workers)
        const targets = yield* client.api.targets.list()
        const t = yield* now
        yield* printTable(
          ["id", "flags", "age", "target", "info", "ping", "hold"],
          workers.map((w) => [
            w.id,
            workerFlags(w),
            Ids.isUlid(w.id) ? formatAge(t - Ids.timestamp(w.id)) : "-",
            targets.find((x) => x.id === w.target)?.name ?? w.target,
            w.factory_private ?? "-",
            w.lastping == null ? "-" : formatAge(t - Date.parse(w.lastping)),
            w.hold == null ? "-" : w.hold.reason
          ])
        )
      }))
  ).pipe(Command.withDescription("list workers: id, flags (B J R D H d), age, target, machine, last ping, hold"))

/**
 * `buildomat admin worker list [-A] [-H] [--json]` (also `ls`): every worker (`GET /1/workers`,
 * all pages), or with `-A` only those not yet destroyed, with `-H` only those on hold; a table
 * of id, flags (`B` bootstrapped, `J` job, `R` recycled, `D` deleted, `H` held, `d` diagnostics),
 * age, target, the factory's name for the machine, time since the last ping, and the hold reason.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/** `buildomat admin worker ls`: the same as `worker list`. @since 0.1.0 @category commands */
export const ls = makeList("ls")

/**
 * `buildomat admin worker recycle WORKER...`: `POST /0/admin/worker/{worker}/recycle` for each.
 *
 * @since 0.1.0
 * @category commands
 */
export const recycle = Command.make("recycle", { workers: workersArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    for (const arg of o.workers) {
      yield* client.api.admin.workerRecycle({ path: { worker: yield* workerId(arg) } }).pipe(
        Effect.mapError((e) => new CliError({ message: `recycling ${arg}: ${(e as { message?: string }).message ?? String(e)}` }))
      )
      yield* err(`worker ${arg} recycled`)
    }
  }))).pipe(Command.withDescription("recycle workers"))

/**
 * `buildomat admin worker hold -r REASON WORKER...`: holds each worker with REASON (at least 8
 * characters, as buildomat's CLI asks).
 *
 * @since 0.1.0
 * @category commands
 */
export const hold = Command.make(
  "hold",
  {
    reason: Options.text("reason").pipe(
      Options.withAlias("r"),
      Options.withPseudoName("REASON"),
      Options.withDescription("why the worker is held (at least 8 characters)")
    ),
    workers: workersArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const reason = o.reason.trim()
      if (reason.length < 8) return yield* new CliError({ message: "please specify a more in depth reason for the hold" })
      const { client } = yield* adminClient
      for (const arg of o.workers) {
        yield* client.api.admin.workerHold({ path: { worker: yield* workerId(arg) }, payload: { reason } }).pipe(
          Effect.mapError((e) =>
            new CliError({ message: `marking ${arg} as held: ${(e as { message?: string }).message ?? String(e)}` })
          )
        )
        yield* err(`worker ${arg} held`)
      }
    }))
).pipe(Command.withDescription("mark workers as held: never assigned a job, never destroyed"))

/**
 * `buildomat admin worker release [-v] all|WORKER...`: releases the hold on each worker; `all`
 * releases every held worker. `-v` says what it does.
 *
 * @since 0.1.0
 * @category commands
 */
export const release = Command.make(
  "release",
  {
    verbose: Options.boolean("verbose").pipe(Options.withAlias("v"), Options.withDescription("say what is released")),
    workers: workersArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      let ids: ReadonlyArray<string> = o.workers
      if (o.workers.includes("all")) {
        if (o.workers.length !== 1) return yield* new CliError({ message: "\"all\" must be the only argument" })
        ids = (yield* allWorkers(true)).filter((w) => !w.deleted && w.hold != null).map((w) => w.id)
        if (o.verbose) yield* out(`found ${ids.length} held workers to release`)
      }
      for (const arg of ids) {
        if (o.verbose) yield* out(`releasing worker ${arg}`)
        yield* client.api.admin.workerRelease({ path: { worker: yield* workerId(arg) } }).pipe(
          Effect.mapError((e) =>
            new CliError({ message: `releasing hold on ${arg}: ${(e as { message?: string }).message ?? String(e)}` })
          )
        )
      }
    }))
).pipe(Command.withDescription("release held workers (or all of them)"))

/** A worker event as `worker tail` prints it (buildomat `poll_worker`). */
export const renderWorkerEvent = (e: Admin.WorkerEvent): string => {
  if (e.stream === "stdout" || e.stream === "stderr") return e.payload
  if (e.stream === "control") return `|=| ${e.payload}`
  if (e.stream.startsWith("diag.")) return `|D| ${e.payload}`
  if (e.stream === "worker") return `|W| ${e.payload}`
  return `|${e.stream}| ${e.payload}`
}

/**
 * `buildomat admin worker tail [-j] WORKER`: prints the worker's events
 * (`GET /0/admin/worker/{worker}/events`), polling every 250 ms, until the worker is deleted
 * and every event has been printed. `-j` prints one JSON event per line.
 *
 * @since 0.1.0
 * @category commands
 */
export const tail = Command.make(
  "tail",
  {
    json: Options.boolean("json").pipe(Options.withAlias("j"), Options.withDescription("one JSON event per line")),
    worker: Args.text({ name: "WORKER" }).pipe(Args.withDescription("worker id"))
  },
  handler((o) =>
    Effect.gen(function*() {
      const id = yield* workerId(o.worker)
      const { client } = yield* adminClient
      const delay = yield* RetryDelay
      if (!o.json) yield* err("polling for worker output...")
      let next = 0
      for (;;) {
        const w = yield* client.api.admin.workerGet({ path: { worker: id } })
        const events = yield* client.api.admin.workerEvents({ path: { worker: id }, urlParams: { minseq: next } })
        for (const e of events) {
          yield* out(o.json ? JSON.stringify(e) : renderWorkerEvent(e))
          next = e.seq + 1
        }
        if (events.length === 0 && w.deleted) return
        if (events.length === 0) yield* Effect.sleep(Duration.min(delay, Duration.millis(250)))
      }
    }))
).pipe(Command.withDescription("follow a worker's events until it is destroyed"))

/**
 * `buildomat admin worker` (also `buildomat worker`): the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const worker = Command.make("worker").pipe(
  Command.withDescription("list, recycle, hold, release and follow workers (admin)"),
  Command.withSubcommands([list, ls, recycle, hold, release, tail])
)
