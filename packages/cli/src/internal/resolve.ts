import { Args } from "@effect/cli"
import type { Client } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import { Effect, Schema } from "effect"
import { CliError } from "./errors.js"

// "ID or name" arguments, as buildomat's CLI takes them for users, targets and factories: a
// ULID is taken as an id (names may not look like ULIDs), anything else is looked up by name
// through the admin listings. Failures are reported generically by `Cli.run`, so the error type
// is left open here.

/** A user id for `arg` (an id, or a name looked up with `GET /0/users?name=`). */
export const userId = (client: Client.Client, arg: string): Effect.Effect<Ids.UserId, unknown> =>
  Effect.gen(function*() {
    if (Ids.isUlid(arg)) return arg.toUpperCase() as Ids.UserId
    const found = yield* client.api.users.list({ urlParams: { name: arg } })
    const u = found.find((x) => x.name === arg)
    if (u === undefined) return yield* Effect.fail(new CliError({ message: `no user named ${JSON.stringify(arg)}` }))
    return u.id as Ids.UserId
  })

/** A target id for `arg` (an id, or a name looked up in `GET /0/admin/targets`). */
export const targetId = (client: Client.Client, arg: string): Effect.Effect<Ids.TargetId, unknown> =>
  Effect.gen(function*() {
    if (Ids.isUlid(arg)) return arg.toUpperCase() as Ids.TargetId
    const t = (yield* client.api.targets.list()).find((x) => x.name === arg)
    if (t === undefined) return yield* Effect.fail(new CliError({ message: `no target named ${JSON.stringify(arg)}` }))
    return t.id as Ids.TargetId
  })

/** A factory id for `arg` (an id, or a name looked up in `GET /0/admin/factories`). */
export const factoryId = (client: Client.Client, arg: string): Effect.Effect<Ids.FactoryId, unknown> =>
  Effect.gen(function*() {
    if (Ids.isUlid(arg)) return arg.toUpperCase() as Ids.FactoryId
    const f = (yield* client.api.factories.list()).find((x) => x.name === arg)
    if (f === undefined) return yield* Effect.fail(new CliError({ message: `no factory named ${JSON.stringify(arg)}` }))
    return f.id as Ids.FactoryId
  })

/** A worker id (workers have no names). */
export const workerId = (arg: string): Effect.Effect<Ids.WorkerId, CliError> =>
  Schema.decodeUnknown(Ids.WorkerId)(arg.trim()).pipe(
    Effect.mapError(() => new CliError({ message: `${JSON.stringify(arg)} is not a worker id (a 26-character ULID)` }))
  )

/** The positional arguments. */
export const userArg = Args.text({ name: "USER" }).pipe(Args.withDescription("user id or name"))
export const targetArg = (name = "TARGET") => Args.text({ name }).pipe(Args.withDescription("target id or name"))
export const factoryArg = Args.text({ name: "FACTORY" }).pipe(Args.withDescription("factory id or name"))
export const privilegeArg = Args.text({ name: "PRIVILEGE" }).pipe(
  Args.withDescription("privilege name: [0-9a-z._/-]+ (for example admin.job.read, delegate)")
)
