/**
 * `buildomat user ...` (also `buildomat admin user ...`): create and list users. These use the
 * profile's admin token when it has one, else the user token (which then needs the
 * `admin.user.create` / `admin.user.read` privileges), as buildomat's CLI.
 *
 * @since 0.1.0
 */
import { Args, Command } from "@effect/cli"
import { Effect } from "effect"
import { formatAge, now, out, printJson, printTable } from "../internal/format.js"
import { adminClient, handler, json } from "../internal/root.js"

/**
 * `buildomat user create NAME [--json]`: `POST /0/users`; prints the new user's token (shown
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
 * `buildomat user list [--json]` (also `ls`): `GET /0/users` as a table of id, name, age,
 * creation time and privileges.
 *
 * @since 0.1.0
 * @category commands
 */
export const list = makeList("list")

/**
 * `buildomat user ls`: the same as `user list`.
 *
 * @since 0.1.0
 * @category commands
 */
export const ls = makeList("ls")

/**
 * `buildomat user`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const user = Command.make("user").pipe(
  Command.withDescription("create and list users (admin)"),
  Command.withSubcommands([create, list, ls])
)

/**
 * `buildomat admin`: administrative commands; `admin user` is the same as `user`.
 *
 * @since 0.1.0
 * @category commands
 */
export const admin = Command.make("admin").pipe(
  Command.withDescription("administrative commands"),
  Command.withSubcommands([user])
)
