/**
 * `buildomat admin control ...` (also `buildomat control ...`): the global switches (buildomat's
 * `do_control_*`).
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import { err } from "../internal/format.js"
import { adminClient, handler } from "../internal/root.js"

/**
 * `buildomat admin control hold`: no new workers are created (`POST /0/control/hold`).
 *
 * @since 0.1.0
 * @category commands
 */
export const hold = Command.make("hold", {}, handler(() =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    yield* client.api.admin.controlHold()
    yield* err("new worker creation is on hold")
  }))).pipe(Command.withDescription("hold new worker creation"))

/**
 * `buildomat admin control resume`: workers are created again (`POST /0/control/resume`).
 *
 * @since 0.1.0
 * @category commands
 */
export const resume = Command.make("resume", {}, handler(() =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    yield* client.api.admin.controlResume()
    yield* err("new worker creation resumed")
  }))).pipe(Command.withDescription("resume new worker creation"))

/**
 * `buildomat admin control recycle`: recycles every worker (`POST /0/workers/recycle`).
 *
 * @since 0.1.0
 * @category commands
 */
export const recycle = Command.make("recycle", {}, handler(() =>
  Effect.gen(function*() {
    const { client } = yield* adminClient
    yield* client.api.admin.workersRecycle()
    yield* err("every worker recycled")
  }))).pipe(Command.withDescription("recycle every worker"))

/**
 * `buildomat admin control` (also `buildomat control`): the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const control = Command.make("control").pipe(
  Command.withDescription("hold or resume new worker creation; recycle every worker (admin)"),
  Command.withSubcommands([hold, resume, recycle])
)
