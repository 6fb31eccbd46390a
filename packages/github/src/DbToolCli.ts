/**
 * `buildomat-github-dbtool`: the operator's view of the App's database (buildomat-github.md
 * §7.1), working on the SQLite file directly, with or without the App running.
 *
 * ```
 * buildomat-github-dbtool [--db FILE]
 *   delivery|del list|ls [-n N]            SEQ ACK RECVTIME EVENT ACTION SENDER ERROR
 *   delivery|del show SEQ...               deliveries: summary and payload
 *   delivery|del dump SEQ...               deliveries: the rows, as JSON
 *   delivery|del unack SEQ...              queue deliveries for processing again
 *   repository|repo list|ls                ID OWNER NAME VISIBILITY
 *   check suite list|ls                    ID GHID REPO STATE SSHA BRANCH
 *   check suite show SUITE                 one suite
 *   check suite runs SUITE                 ID FLAGS VARIETY NAME GHID (flags: A active, F flushed)
 *   check run show RUN                     one run
 * ```
 *
 * The database is `--db`, else `$BUILDOMAT_GITHUB_DB`, else `./var/data.sqlite3`; it must exist.
 *
 * @since 0.1.0
 */
import { Args, CliConfig, Command, Options } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import Table from "cli-table3"
import { Cause, Config, Console, Data, Effect, Layer, Option } from "effect"
import * as NodeFs from "node:fs"
import { BasicPrivate, readPrivate } from "./CheckRuns.js"
import * as Database from "./Database.js"
import { actionOf } from "./Deliveries.js"
import * as Store from "./Store.js"

/**
 * A failure with a message for the operator; printed as `ERROR: <message>`, exit status 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class DbToolError extends Data.TaggedError("DbToolError")<{ readonly message: string }> {}

/**
 * A borderless table with upper-case headings, columns two spaces apart (buildomat's style).
 *
 * @since 0.1.0
 * @category formatting
 */
export const table = (headings: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const t = new Table({
    head: headings.map((h) => h.toUpperCase()),
    chars: {
      top: "", "top-mid": "", "top-left": "", "top-right": "", bottom: "", "bottom-mid": "", "bottom-left": "",
      "bottom-right": "", left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "  "
    },
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true }
  })
  for (const r of rows) t.push([...r])
  return t.toString().split("\n").map((l) => l.trimEnd()).join("\n")
}

const dbOption = Options.file("db").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("the App's database (default: $BUILDOMAT_GITHUB_DB, else ./var/data.sqlite3)"),
  Options.optional
)

const root = Command.make("buildomat-github-dbtool", { db: dbOption }).pipe(
  Command.withDescription("inspect and repair the buildomat GitHub App's database")
)

/** Runs `f` with the store of the chosen database. */
const withStore = <A, E>(f: (store: Effect.Effect.Success<typeof Store.Store>) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const g = yield* root
    const env = yield* Config.string("BUILDOMAT_GITHUB_DB").pipe(Config.option)
    const file = Option.getOrElse(Option.orElse(g.db, () => env), () => "var/data.sqlite3")
    if (!NodeFs.existsSync(file)) return yield* new DbToolError({ message: `no database at ${file} (use --db FILE)` })
    return yield* Effect.flatMap(Store.Store, f).pipe(Effect.provide(Store.layer.pipe(Layer.provide(Database.layer(file)))))
  })

const seconds = (iso: string) => iso.replace(/\.\d+Z$/, "Z")
const seqArgs = Args.integer({ name: "SEQ" }).pipe(Args.atLeast(1))

const delList = (name: string) =>
  Command.make(name, {
    n: Options.integer("n").pipe(Options.withDescription("only the N most recent"), Options.optional)
  }, (o) =>
    withStore((store) =>
      Effect.gen(function*() {
        const rows = yield* store.listDeliveries(Option.getOrUndefined(o.n))
        yield* Console.log(table(
          ["seq", "ack", "recvtime", "event", "action", "sender", "error"],
          rows.map((d) => {
            const a = actionOf(d)
            return [
              String(d.seq),
              d.ack === null ? (d.attempts > 0 ? `-(${d.attempts})` : "-") : String(d.ack),
              seconds(d.recvtime),
              d.event,
              a === undefined ? "?" : a.action || "-",
              a === undefined ? "?" : a.sender,
              d.last_error === null ? "" : d.last_error.replace(/\s+/g, " ").slice(0, 60)
            ]
          })
        ))
      })
    )).pipe(Command.withDescription("list deliveries: seq, ack (- pending), receive time, event, action, sender, error"))

const delShow = (name: "show" | "dump") =>
  Command.make(name, { seqs: seqArgs }, (o) =>
    withStore((store) =>
      Effect.gen(function*() {
        for (const seq of o.seqs) {
          const d = yield* store.getDelivery(seq)
          if (Option.isNone(d)) return yield* new DbToolError({ message: `no delivery with sequence ${seq}` })
          if (name === "dump") {
            yield* Console.log(JSON.stringify(d.value, null, 2))
            continue
          }
          const a = actionOf(d.value)
          yield* Console.log(`delivery: sequence ${seq} event ${JSON.stringify(d.value.event)}`)
          yield* Console.log(`  uuid:     ${d.value.uuid}`)
          yield* Console.log(`  received: ${d.value.recvtime}`)
          yield* Console.log(`  ack:      ${d.value.ack ?? "-"} (attempts ${d.value.attempts})`)
          if (a !== undefined) yield* Console.log(`  action:   ${a.action || "-"}, sender ${a.sender}, installation ${a.install}`)
          if (d.value.last_error !== null) yield* Console.log(`  error:    ${d.value.last_error}`)
          let payload: string
          try {
            payload = JSON.stringify(JSON.parse(d.value.payload), null, 2)
          } catch {
            payload = d.value.payload
          }
          yield* Console.log(payload)
        }
      })
    )).pipe(Command.withDescription(name === "dump" ? "print deliveries' rows as JSON" : "show deliveries: summary and payload"))

const delUnack = Command.make("unack", { seqs: seqArgs }, (o) =>
  withStore((store) =>
    Effect.gen(function*() {
      for (const seq of o.seqs) {
        if (!(yield* store.unackDelivery(seq))) return yield* new DbToolError({ message: `no delivery with sequence ${seq}` })
        yield* Console.log(`unacked delivery sequence ${seq}`)
      }
    })
  )).pipe(Command.withDescription("queue deliveries to be processed again"))

const delivery = (name: string) =>
  Command.make(name).pipe(
    Command.withDescription("webhook deliveries"),
    Command.withSubcommands([delList("list"), delList("ls"), delShow("show"), delShow("dump"), delUnack])
  )

const repoList = (name: string) =>
  Command.make(name, {}, () =>
    withStore((store) =>
      Effect.gen(function*() {
        const rows = yield* store.listRepositories
        yield* Console.log(table(["id", "owner", "name", "visibility"], rows.map((r) => [String(r.id), r.owner, r.name, r.visibility ?? "-"])))
      })
    )).pipe(Command.withDescription("list repositories"))

const repository = (name: string) =>
  Command.make(name).pipe(Command.withDescription("GitHub repositories"), Command.withSubcommands([repoList("list"), repoList("ls")]))

const suiteList = (name: string) =>
  Command.make(name, {}, () =>
    withStore((store) =>
      Effect.gen(function*() {
        const rows = yield* store.listSuites
        const repos = new Map((yield* store.listRepositories).map((r) => [r.id, `${r.owner}/${r.name}`]))
        yield* Console.log(table(
          ["id", "ghid", "repo", "state", "ssha", "branch"],
          rows.map((s) => [s.id, String(s.github_id), repos.get(s.repo) ?? String(s.repo), s.state, s.head_sha.slice(0, 16), s.head_branch ?? "-"])
        ))
      })
    )).pipe(Command.withDescription("list check suites"))

const suiteArg = Args.text({ name: "SUITE" })
const runArg = Args.text({ name: "RUN" })

const suiteShow = Command.make("show", { suite: suiteArg }, (o) =>
  withStore((store) =>
    Effect.gen(function*() {
      const s = yield* store.getSuite(o.suite.toUpperCase())
      if (Option.isNone(s)) return yield* new DbToolError({ message: `no check suite ${o.suite}` })
      const { plan, ...rest } = s.value
      yield* Console.log(JSON.stringify({ ...rest, plan: plan === null ? null : JSON.parse(plan) }, null, 2))
    })
  )).pipe(Command.withDescription("show a check suite"))

const suiteRuns = Command.make("runs", { suite: suiteArg }, (o) =>
  withStore((store) =>
    Effect.gen(function*() {
      const s = yield* store.getSuite(o.suite.toUpperCase())
      if (Option.isNone(s)) return yield* new DbToolError({ message: `no check suite ${o.suite}` })
      const runs = yield* store.runsOfSuite(s.value.id)
      yield* Console.log(table(
        ["id", "flags", "variety", "name", "ghid", "job"],
        runs.map((r) => [
          r.id,
          `${r.active === 1 ? "A" : "-"}${r.flushed === 1 ? "F" : "-"}`,
          r.variety,
          r.name,
          r.github_id === null ? "-" : String(r.github_id),
          r.variety === "basic" ? readPrivate(BasicPrivate, r.private).buildomat_id ?? "-" : "-"
        ])
      ))
    })
  )).pipe(Command.withDescription("list the check runs of a suite (flags: A active, F flushed)"))

const runShow = Command.make("show", { run: runArg }, (o) =>
  withStore((store) =>
    Effect.gen(function*() {
      const r = yield* store.getRun(o.run.toUpperCase())
      if (Option.isNone(r)) return yield* new DbToolError({ message: `no check run ${o.run}` })
      const parse = (s: string | null) => (s === null ? null : JSON.parse(s))
      yield* Console.log(JSON.stringify(
        { ...r.value, config: parse(r.value.config), private: parse(r.value.private), dependencies: parse(r.value.dependencies) },
        null,
        2
      ))
    })
  )).pipe(Command.withDescription("show a check run"))

const check = Command.make("check").pipe(
  Command.withDescription("check suites and runs"),
  Command.withSubcommands([
    Command.make("suite").pipe(
      Command.withDescription("check suites"),
      Command.withSubcommands([suiteList("list"), suiteList("ls"), suiteShow, suiteRuns])
    ),
    Command.make("run").pipe(Command.withDescription("check runs"), Command.withSubcommands([runShow]))
  ])
)

/**
 * The command tree.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = root.pipe(
  Command.withSubcommands([delivery("delivery"), delivery("del"), repository("repository"), repository("repo"), check])
)

/**
 * Runs the tool on a full argv (`[node, script, ...args]`) and gives the exit status: 0, or 1
 * after printing `ERROR: <message>` on stderr.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Command.run(command, { name: "buildomat-github-dbtool", version: "0.1.0" })(argv).pipe(
    Effect.as(0),
    Effect.catchAllCause((cause) =>
      Effect.gen(function*() {
        if (Cause.isInterruptedOnly(cause)) return 130
        const f = Cause.failureOption(cause)
        if (Option.isSome(f)) {
          const e = f.value as { _tag?: string; message?: string }
          if (e._tag === "DbToolError") {
            yield* Console.error(`ERROR: ${e.message}`)
            return 1
          }
          // @effect/cli has already printed its usage errors.
          if (typeof e._tag === "string" && ["MissingValue", "InvalidValue", "CommandMismatch", "UnclusteredFlag", "MultipleValuesDetected", "MissingFlag", "MissingSubcommand", "CorrectedFlag", "InvalidArgument", "HelpRequested", "NoBuiltInMatch"].includes(e._tag)) {
            return e._tag === "HelpRequested" ? 0 : 1
          }
          yield* Console.error(`ERROR: ${e.message ?? String(e)}`)
          return 1
        }
        yield* Console.error(`ERROR: ${Cause.pretty(cause)}`)
        return 1
      })
    ),
    Effect.provideService(CliConfig.CliConfig, CliConfig.make({ isCaseSensitive: true }))
  )

/**
 * What the binary runs: `run` with Node's services, then sets `process.exitCode`.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<void> =>
  run(argv).pipe(
    Effect.provide(NodeContext.layer),
    Effect.flatMap((code) => Effect.sync(() => {
      process.exitCode = code
    }))
  )
