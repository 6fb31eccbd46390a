/**
 * `buildomat admin user ...` (also `buildomat user ...`): create, list and show users, grant and
 * revoke privileges. These use the profile's admin token when it has one, else the user token
 * (which then needs the `admin.user.*` / `admin.privilege.*` privileges), as buildomat's CLI.
 * A USER argument is a user id or a user name.
 *
 * @since 0.1.0
 */
import { Args, Command } from "@effect/cli"
import { Effect } from "effect"
import { err, formatAge, now, out, printJson, printTable } from "../internal/format.js"
import { privilegeArg, userArg, userId } from "../internal/resolve.js"
import { adminClient, handler, json } from "../internal/root.js"

/**
 * `buildomat admin user create NAME [--json]`: `POST /0/users`; prints the new user's token (shown
 * only this once), or `{id, name, token}` with `--json`.
 *
 * @since 0.1.0
 * @category commands
 */
export const create = Command.make(
  "create",
  { json, name: Args.text({ name: "NAME" }).pipe(Args.withDescription("user name: 1-64 of [A-Za-z0-9._-]")) },
  handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const user = yield* client.api.users.create({ payload: { name: o.name } })
      if (o.json) return yield* printJson(user)
      yield* out(user.token)
    }))
).pipe(Command.withDescription("create a user and print its token"))

const makeList = (name: "list" | "ls") =>
  Command.make(name, { json }, handler((o) =>
    Effect.gen(function*() {
      const { client } = yield* adminClient
      const users = yield* client.api.users.list({ urlParams: {} })
      if (o.json) return yield* printJson(users)
      const t = yield* now
      yield* printTable(
        ["id", "name", "age", "created", "privileges"],
        users.map((u) => [
          u.id,
          u.name,
          formatAge(t - Date.parse(u.time_create)),
          u.time_create.replace(/\.\d+Z$/, "Z"),
          u.privileges.length > 0 ? u.privileges.join(",") : "-"
        ])
      )
    }))).pipe(Command.withDescription("list users: id, name, age, created, privileges"))

/**
 * `buildomat admin user list [--json]` (also `ls`): `GET /0/users` as a table of id, name, age,
 * creation time and privileges.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/**
 * `buildomat admin user ls`: the same as `user list`.
 *
 * @since 0.1.0
 * @category commands
 */
export const ls = makeList("ls")

/**
 * `buildomat admin user show USER [--json]`: `GET /0/users/{user}`: id, name, creation time and
 * privileges.
 *
 * @since 0.1.0
 * @category commands
 */
export const show = Command.make("show", { json, user: userArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const u = yield* client.api.users.get({ path: { user: yield* userId(client, o.user) } })
    if (o.json) return yield* printJson(u)
    yield* out(`id:          ${u.id}`)
    yield* out(`name:        ${u.name}`)
    yield* out(`created at:  ${u.time_create}`)
    if (u.privileges.length > 0) {
      yield* out("privileges:")
      for (const p of u.privileges) yield* out(`    * ${p}`)
    }
  }))).pipe(Command.withDescription("show a user: id, name, creation time, privileges"))

/**
 * `buildomat admin user grant USER PRIVILEGE`: `PUT /0/users/{user}/privilege/{privilege}`
 * (idempotent).
 *
 * @since 0.1.0
 * @category commands
 */
export const grant = Command.make("grant", { user: userArg, privilege: privilegeArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* userId(client, o.user)
    yield* client.api.users.grant({ path: { user: id, privilege: o.privilege } })
    yield* err(`granted ${o.privilege} to ${o.user}`)
  }))).pipe(Command.withDescription("grant a privilege to a user"))

/**
 * `buildomat admin user revoke USER PRIVILEGE`: `DELETE /0/users/{user}/privilege/{privilege}`
 * (idempotent).
 *
 * @since 0.1.0
 * @category commands
 */
export const revoke = Command.make("revoke", { user: userArg, privilege: privilegeArg }, handler((o) =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    const id = yield* userId(client, o.user)
    yield* client.api.users.revoke({ path: { user: id, privilege: o.privilege } })
    yield* err(`revoked ${o.privilege} from ${o.user}`)
  }))).pipe(Command.withDescription("revoke a privilege from a user"))

/**
 * `buildomat admin user` (also `buildomat user`): the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const user = Command.make("user").pipe(
  Command.withDescription("create, list and show users; grant and revoke privileges (admin)"),
  Command.withSubcommands([list, ls, create, show, grant, revoke])
)
