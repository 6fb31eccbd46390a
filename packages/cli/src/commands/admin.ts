/**
 * `buildomat admin ...` (also `buildomat a ...`): administration, following buildomat's command
 * tree: `user`, `target`, `worker`, `factory`, `job`, `control`. Admin commands use the
 * profile's `admin_token` when it has one, else the user token, which then needs the matching
 * `admin.*` privileges.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { adminJob } from "./adminJob.js"
import { control } from "./control.js"
import { factory } from "./factory.js"
import { target } from "./target.js"
import { user } from "./user.js"
import { worker } from "./worker.js"

const subcommands = [user, target, worker, factory, adminJob, control] as const

/**
 * `buildomat admin`: the group.
 *
 * @since 0.1.0
 * @category commands
 */
export const admin = Command.make("admin").pipe(
  Command.withDescription("administration: users, targets, workers, factories, jobs, control"),
  Command.withSubcommands(subcommands)
)

/**
 * `buildomat a`: the same as `admin`, as in buildomat.
 *
 * @since 0.1.0
 * @category commands
 */
export const a = Command.make("a").pipe(
  Command.withDescription("the same as admin"),
  Command.withSubcommands(subcommands)
)
