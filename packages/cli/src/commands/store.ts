/**
 * `buildomat job store ...`: the job store, named values passed into a running job
 * (buildomat `bin/src/main.rs`, `do_job_store_*`).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { CliError } from "../internal/errors.js"
import { formatAge, now, printJson, printTable } from "../internal/format.js"
import { handler, jobId, json, userClient } from "../internal/root.js"

const jobArg = Args.text({ name: "JOB" }).pipe(Args.withDescription("job id"))
const nameArg = Args.text({ name: "NAME" }).pipe(Args.withDescription("store value name ([A-Za-z0-9_]+)"))

/** Reads all of stdin as UTF-8. */
const readStdin = Effect.async<string, CliError>((resume) => {
  const parts: Array<Buffer> = []
  process.stdin.on("data", (d: Buffer) => parts.push(d))
  process.stdin.once("end", () => resume(Effect.succeed(Buffer.concat(parts).toString("utf8"))))
  process.stdin.once("error", (e) => resume(Effect.fail(new CliError({ message: `reading stdin: ${e.message}` }))))
})

/**
 * A value read from stdin as buildomat (and `bmat store put`) takes it: one trailing newline is
 * dropped when it is the only newline; a multi-line value is kept as it is.
 */
export const stdinValue = (s: string): string => {
  if (!s.endsWith("\n")) return s
  const body = s.slice(0, -1)
  return body.includes("\n") ? s : body
}

const makeList = (name: "list" | "ls") =>
  Command.make(name, { json, job: jobArg }, handler((o) =>
    Effect.gen(function*() {
      const id = yield* jobId(o.job)
      const { client } = yield* userClient
      const store = yield* client.api.jobStore.list({ path: { job: id } })
      const names = Object.keys(store).sort()
      if (o.json) return yield* printJson(Object.fromEntries(names.map((n) => [n, store[n]])))
      const t = yield* now
      yield* printTable(
        ["name", "flags", "age", "value", "source"],
        names.map((n) => {
          const e = store[n]!
          return [n, e.secret ? "S" : "-", formatAge(t - Date.parse(e.time_update)), e.value ?? "-", e.source]
        })
      )
    }))).pipe(Command.withDescription("list a job's store: name, flags (S secret), age, value, source"))

/**
 * `buildomat job store list JOB [--json]` (also `ls`): every value of the job's store
 * (`GET /0/jobs/{job}/store`); secret values show as `-` with the flag `S`.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/**
 * `buildomat job store ls`: the same as `job store list`.
 *
 * @since 0.1.0
 * @category commands
 */
export const ls = makeList("ls")

/**
 * `buildomat job store get JOB NAME`: prints one value (a newline is added unless it ends with
 * one). Refuses secrets, which only the job itself can read, and names not in the store.
 *
 * @since 0.1.0
 * @category commands
 */
export const get = Command.make("get", { job: jobArg, name: nameArg }, handler((o) =>
  Effect.gen(function*() {
    const id = yield* jobId(o.job)
    const { client } = yield* userClient
    const store = yield* client.api.jobStore.list({ path: { job: id } })
    const e = store[o.name]
    if (e === undefined) return yield* new CliError({ message: `${JSON.stringify(o.name)} was not found in the store for job ${id}` })
    if (e.secret) {
      return yield* new CliError({ message: `${JSON.stringify(o.name)} is a secret property; cannot get value outside of job` })
    }
    if (e.value === undefined || e.value === null) {
      return yield* new CliError({ message: `server would not give us the value of ${JSON.stringify(o.name)}` })
    }
    yield* Console.log(e.value.endsWith("\n") ? e.value.slice(0, -1) : e.value)
  }))).pipe(Command.withDescription("print a value from the job store (not secrets)"))

/**
 * `buildomat job store put [-s] JOB NAME [VALUE]`: sets a value (`PUT /0/jobs/{job}/store/{name}`),
 * read from stdin when VALUE is omitted; `-s` marks it secret (and a secret stays secret).
 *
 * @since 0.1.0
 * @category commands
 */
export const put = Command.make(
  "put",
  {
    secret: Options.boolean("secret").pipe(Options.withAlias("s"), Options.withDescription("mark the value as secret")),
    job: jobArg,
    name: nameArg,
    value: Args.text({ name: "VALUE" }).pipe(Args.withDescription("the value (default: read from stdin)"), Args.optional)
  },
  handler((o) =>
    Effect.gen(function*() {
      const id = yield* jobId(o.job)
      const value = yield* Option.match(o.value, { onSome: Effect.succeed, onNone: () => Effect.map(readStdin, stdinValue) })
      const { client } = yield* userClient
      yield* client.api.jobStore.put({ path: { job: id, name: o.name }, payload: { value, secret: o.secret } })
    }))
).pipe(Command.withDescription("put a value into the job store"))

/**
 * `buildomat job store`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const store = Command.make("store").pipe(
  Command.withDescription("list, get and put values in a job's store"),
  Command.withSubcommands([list, ls, get, put])
)

