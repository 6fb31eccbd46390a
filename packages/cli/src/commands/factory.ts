/**
 * `buildomat admin factory ...`: list, create, enable, disable and drain factories (buildomat's
 * `do_factory_*`). FACTORY arguments are a factory id or name.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { Admin, Ids } from "@buildomat/core"
import { Effect } from "effect"
import { err, formatAge, now, out, printJson, printTable } from "../internal/format.js"
import { factoryArg, factoryId } from "../internal/resolve.js"
import { adminClient, handler, json } from "../internal/root.js"
import { RetryDelay } from "../internal/tail.js"

const flags = (pairs: ReadonlyArray<readonly [string, boolean]>) => pairs.map(([c, on]) => (on ? c : "-")).join("")

const makeList = (name: "list" | "ls") =>
  Command.make(name, { json }, handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const factories = yield* client.api.factories.list()
      if (o.json) return yield* printJson(factories)
      const t = yield* now
      yield* printTable(
        ["id", "name", "flags", "ping", "last_ping"],
        factories.map((f) => [
          f.id,
          f.name,
          flags([["E", f.enable], ["H", f.hold_workers]]),
          f.last_ping == null ? "-" : formatAge(t - Date.parse(f.last_ping)),
          f.last_ping == null ? "-" : f.last_ping.replace(/\.\d+Z$/, "Z")
        ])
      )
    }))).pipe(Command.withDescription("list factories: id, name, flags (E enabled, H hold workers), last ping"))

/**
 * `buildomat admin factory list [--json]` (also `ls`): `GET /0/admin/factories` as a table of id,
 * name, flags (`E` enabled, `H` holds the workers it creates) and time since the last ping.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/** `buildomat admin factory ls`: the same as `factory list`. @since 0.1.0 @category commands */
export const ls = makeList("ls")

/**
 * `buildomat admin factory create NAME [--json]`: `POST /0/admin/factory`; prints the factory's
 * token, shown only this once.
 *
 * @since 0.1.0
 * @category commands
 */
export const create = Command.make(
  "create",
  { json, name: Args.text({ name: "NAME" }).pipe(Args.withDescription("factory name: 1-64 of [A-Za-z0-9._-]")) },
  handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const r = yield* client.api.factories.create({ payload: { name: o.name } })
      yield* o.json ? printJson(r) : out(r.token)
    }))
).pipe(Command.withDescription("create a factory and print its token"))

/**
 * `buildomat admin factory enable [-H] FACTORY`: enables the factory; with `-H`
 * (`--hold-workers`) every worker it creates from now on starts held (buildomat spells this
 * `-h`, which `@effect/cli` keeps for help).
 *
 * @since 0.1.0
 * @category commands
 */
export const enable = Command.make(
  "enable",
  {
    holdWorkers: Options.boolean("hold-workers").pipe(
      Options.withAlias("H"),
      Options.withDescription("mark new workers created by this factory as held")
    ),
    factory: factoryArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const id = yield* factoryId(client, o.factory)
      yield* client.api.factories.enable({ path: { factory: id }, payload: { hold_workers: o.holdWorkers } })
      yield* err(`factory ${o.factory} enabled${o.holdWorkers ? " (new workers will be held)" : ""}`)
    }))
).pipe(Command.withDescription("enable a factory"))

/**
 * `buildomat admin factory disable FACTORY`: the factory gets no more leases; its workers carry on.
 *
 * @since 0.1.0
 * @category commands
 */
export const disable = Command.make("disable", { factory: factoryArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* factoryId(client, o.factory)
    yield* client.api.factories.disable({ path: { factory: id } })
    yield* err(`factory ${o.factory} disabled`)
  }))).pipe(Command.withDescription("disable a factory"))

/** The factory's workers not yet deleted (`GET /1/workers?active=true&factory=`, every page). */
const activeWorkers = (id: Ids.FactoryId) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const out: Array<Admin.Worker> = []
    let token: string | undefined
    for (;;) {
      const page = yield* client.api.admin.workersList({
        urlParams: token === undefined ? { active: true, factory: id } : { page_token: token }
      })
      out.push(...page.items)
      if (page.items.length === 0 || page.next_page == null) return out
      token = page.next_page
    }
  })

/**
 * `buildomat admin factory drain FACTORY`: disables the factory, then waits until it has no
 * active workers left, polling every 2 s (buildomat: 3 s).
 *
 * @since 0.1.0
 * @category commands
 */
export const drain = Command.make("drain", { factory: factoryArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* factoryId(client, o.factory)
    yield* out(` * disabling factory ${id}...`)
    yield* client.api.factories.disable({ path: { factory: id } })
    const delay = yield* RetryDelay
    let last: number | undefined
    for (;;) {
      const n = (yield* activeWorkers(id)).length
      if (n === 0) break
      if (n !== last) yield* out(` * waiting for ${n} workers to complete...`)
      last = n
      yield* Effect.sleep(delay)
    }
    yield* out(`factory ${id} is disabled and has no active workers`)
  }))).pipe(Command.withDescription("disable a factory and wait until its workers are gone"))

/**
 * `buildomat admin factory`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const factory = Command.make("factory").pipe(
  Command.withDescription("list, create, enable, disable and drain factories (admin)"),
  Command.withSubcommands([list, ls, create, enable, disable, drain])
)
