/**
 * `buildomat admin target ...`: list, create, restrict to a privilege, redirect, rename targets
 * (buildomat's `do_target_*`). TARGET arguments are a target id or name.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect } from "effect"
import { err, out, printJson, printTable } from "../internal/format.js"
import { privilegeArg, targetArg, targetId } from "../internal/resolve.js"
import { adminClient, handler, json } from "../internal/root.js"

const desc = (what: string) =>
  Options.text("desc").pipe(Options.withAlias("d"), Options.withPseudoName("DESC"), Options.withDescription(what))

const makeList = (name: "list" | "ls") =>
  Command.make(name, { json }, handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const targets = yield* client.api.targets.list()
      if (o.json) return yield* printJson(targets)
      yield* printTable(
        ["id", "name", "description", "redirect", "privilege"],
        targets.map((t) => [
          t.id,
          t.name,
          t.desc,
          t.redirect == null ? "-" : (targets.find((x) => x.id === t.redirect)?.name ?? "?MISSING"),
          t.privilege ?? "-"
        ])
      )
    }))).pipe(Command.withDescription("list targets: id, name, description, redirect, privilege"))

/**
 * `buildomat admin target list [--json]` (also `ls`): `GET /0/admin/targets` as a table of id,
 * name, description, the name of the target it redirects to, and the privilege it requires.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/** `buildomat admin target ls`: the same as `target list`. @since 0.1.0 @category commands */
export const ls = makeList("ls")

/**
 * `buildomat admin target create -d DESC NAME [--json]`: `POST /0/admin/target`; prints the new
 * target's id.
 *
 * @since 0.1.0
 * @category commands
 */
export const create = Command.make(
  "create",
  { json, desc: desc("target description"), name: Args.text({ name: "NAME" }).pipe(Args.withDescription("target name")) },
  handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const r = yield* client.api.targets.create({ payload: { name: o.name, desc: o.desc } })
      yield* o.json ? printJson(r) : out(r.id)
    }))
).pipe(Command.withDescription("create a target and print its id"))

/**
 * `buildomat admin target restrict TARGET PRIVILEGE`: only users holding PRIVILEGE may submit
 * jobs that resolve to TARGET (`PUT /0/admin/targets/{target}/require/{privilege}`).
 *
 * @since 0.1.0
 * @category commands
 */
export const restrict = Command.make("restrict", { target: targetArg(), privilege: privilegeArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* targetId(client, o.target)
    yield* client.api.targets.requirePrivilege({ path: { target: id, privilege: o.privilege } })
    yield* err(`target ${o.target} now requires ${o.privilege}`)
  }))).pipe(Command.withDescription("require a privilege to use a target"))

/**
 * `buildomat admin target unrestrict TARGET`: `DELETE /0/admin/targets/{target}/require`.
 *
 * @since 0.1.0
 * @category commands
 */
export const unrestrict = Command.make("unrestrict", { target: targetArg() }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* targetId(client, o.target)
    yield* client.api.targets.requireNoPrivilege({ path: { target: id } })
    yield* err(`target ${o.target} requires no privilege`)
  }))).pipe(Command.withDescription("require no privilege to use a target"))

/**
 * `buildomat admin target redirect TARGET TO`: jobs naming TARGET run on TO from now on
 * (`PUT /0/admin/targets/{target}/redirect`).
 *
 * @since 0.1.0
 * @category commands
 */
export const redirect = Command.make("redirect", { target: targetArg(), to: targetArg("REDIRECT_TO") }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* targetId(client, o.target)
    const to = yield* targetId(client, o.to)
    yield* client.api.targets.redirect({ path: { target: id }, payload: { redirect: to } })
    yield* err(`target ${o.target} now redirects to ${o.to}`)
  }))).pipe(Command.withDescription("redirect a target to another target"))

/**
 * `buildomat admin target unredirect TARGET`: stops redirecting (`PUT .../redirect` with no
 * target).
 *
 * @since 0.1.0
 * @category commands
 */
export const unredirect = Command.make("unredirect", { target: targetArg() }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* targetId(client, o.target)
    yield* client.api.targets.redirect({ path: { target: id }, payload: {} })
    yield* err(`target ${o.target} no longer redirects`)
  }))).pipe(Command.withDescription("stop redirecting a target"))

/**
 * `buildomat admin target rename -d DESC TARGET NEWNAME [--json]`: renames TARGET and leaves a
 * signpost target with the old name (described by DESC) that redirects to it
 * (`POST /0/admin/targets/{target}/rename`); prints the signpost's id.
 *
 * @since 0.1.0
 * @category commands
 */
export const rename = Command.make(
  "rename",
  {
    json,
    desc: desc("description of the signpost target left with the old name"),
    target: targetArg(),
    newName: Args.text({ name: "NEWNAME" }).pipe(Args.withDescription("the target's new name"))
  },
  handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const id = yield* targetId(client, o.target)
      const r = yield* client.api.targets.rename({
        path: { target: id },
        payload: { new_name: o.newName, signpost_description: o.desc }
      })
      yield* o.json ? printJson(r) : out(r.id)
    }))
).pipe(Command.withDescription("rename a target, leaving a redirecting signpost with the old name"))

/**
 * `buildomat admin target`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const target = Command.make("target").pipe(
  Command.withDescription("list, create, restrict, redirect and rename targets (admin)"),
  Command.withSubcommands([list, ls, create, restrict, unrestrict, redirect, unredirect, rename])
)
