/**
 * Handlers of the administrative user routes.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { BuildomatApi } from "../../Api.js"
import { UserStore } from "../UserStore.js"
import { requireAdmin } from "./Auth.js"

/**
 * Administrative user routes: create (`admin.user.create`), list and get (`admin.user.read`),
 * grant (`admin.privilege.grant`) and revoke (`admin.privilege.revoke`) privileges.
 *
 * @since 0.1.0
 * @category handlers
 */
export const UsersLive = HttpApiBuilder.group(BuildomatApi, "users", (handlers) =>
  Effect.gen(function*() {
    const users = yield* UserStore
    return handlers
      .handle("create", ({ payload }) => requireAdmin("user.create").pipe(Effect.zipRight(users.create(payload.name))))
      .handle("list", ({ urlParams }) => requireAdmin("user.read").pipe(Effect.zipRight(users.list(urlParams.name))))
      .handle("get", ({ path }) => requireAdmin("user.read").pipe(Effect.zipRight(users.get(path.user))))
      .handle("grant", ({ path }) =>
        requireAdmin("privilege.grant").pipe(Effect.zipRight(users.grant(path.user, path.privilege))))
      .handle("revoke", ({ path }) =>
        requireAdmin("privilege.revoke").pipe(Effect.zipRight(users.revoke(path.user, path.privilege))))
  }))
