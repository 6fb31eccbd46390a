/**
 * `buildomat info`: who the profile's token belongs to, and on which server.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import { out, printJson } from "../internal/format.js"
import { handler, json, userClient } from "../internal/root.js"

/**
 * `buildomat info [--json]`: `GET /0/whoami`, printed as `id`, `name`, `url` (and the profile).
 *
 * @since 0.1.0
 * @category commands
 */
export const info = Command.make("info", { json }, handler(({ json }) =>
  Effect.gen(function*() {
    const { client, profile } = yield* userClient
    const me = yield* client.api.jobs.whoami()
    if (json) return yield* printJson({ id: me.id, name: me.name, url: profile.url, profile: profile.name })
    yield* out(`id:      ${me.id}`)
    yield* out(`name:    ${me.name}`)
    yield* out(`url:     ${profile.url}`)
    yield* out(`profile: ${profile.name} (${profile.source})`)
  }))).pipe(Command.withDescription("show who the token belongs to (GET /0/whoami)"))
