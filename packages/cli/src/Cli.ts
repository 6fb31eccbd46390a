/**
 * The `buildomat` command as an `@effect/cli` command tree, and ways to run it: `run` (in
 * process, giving the exit status, for embedding and tests) and `main` (what the `buildomat`
 * binary does).
 *
 * ```
 * buildomat [-p PROFILE] [-D USER]
 *   info [--json]
 *   job run -n NAME (-c SCRIPT | -C FILE) [-t TARGET] [-e K=V]... [-E] [-O RULE]...
 *           [-i [NAME=]FILE]... [-d NAME=JOBID]... [-T K=V]... [-W | --wait]
 *   job list|ls [-T K=V]... [-F STATE] [--json]
 *   job show [--json] JOB
 *   job tail [-j] JOB
 *   job outputs [--json] JOB
 *   job copy|cp [--json] JOB SRC_PATH DST_FILE
 *   job cancel JOB
 *   job store list|ls [--json] JOB | get JOB NAME | put [-s] JOB NAME [VALUE]
 *   job publish JOB SRC_PATH SERIES VERSION NAME
 *   job sign [-x] [--json] JOB SRC_PATH
 *   job timings [-I FROM,TO] [--json] JOB...
 *   job join [-v] JOB...
 *   user create [--json] NAME            (also: admin user create)
 *   user list|ls [--json]                (also: admin user list)
 *   admin|a
 *     user list|ls [--json] | create [--json] NAME | show [--json] USER | grant USER PRIV | revoke USER PRIV
 *     target list|ls [--json] | create -d DESC [--json] NAME | restrict TARGET PRIV | unrestrict TARGET
 *            | redirect TARGET TO | unredirect TARGET | rename -d DESC [--json] TARGET NEWNAME
 *     worker list|ls [-A] [-H] [--json] | recycle WORKER... | hold -r REASON WORKER...
 *            | release [-v] all|WORKER... | tail [-j] WORKER
 *     factory list|ls [--json] | create [--json] NAME | enable [-H] FACTORY | disable FACTORY | drain FACTORY
 *     job list|ls [-T K=V]... [-F STATE] [-U] [--json] | archive JOB... | purge JOB...
 *     control hold | resume | recycle
 *   user ...                             (the same as admin user)
 *   worker ...                           (the same as admin worker)
 *   control ...                          (the same as admin control)
 * ```
 *
 * USER, TARGET and FACTORY arguments take an id or a name.
 *
 * Global options go before the subcommand, and a command's options before its arguments
 * (`buildomat -p prod job tail -j JOB`).
 *
 * @since 0.1.0
 */
import { CliConfig, Command } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, Layer } from "effect"
import { a, admin } from "./commands/admin.js"
import { control } from "./commands/control.js"
import { info } from "./commands/info.js"
import { job } from "./commands/job.js"
import { user } from "./commands/user.js"
import { worker } from "./commands/worker.js"
import { report } from "./internal/errors.js"
import { root } from "./internal/root.js"

/**
 * The version `buildomat --version` prints.
 *
 * @since 0.1.0
 * @category constants
 */
export const VERSION = "0.1.0"

/**
 * The whole command tree: `buildomat` with `info`, `job`, `admin` (and `a`), and the shortcuts
 * `user`, `worker` and `control` for the `admin` groups of those names.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = root.pipe(Command.withSubcommands([info, job, admin, a, user, worker, control]))

/**
 * What running the CLI needs: the platform services `@effect/cli` uses (file system, path,
 * terminal) and an `HttpClient` to reach the server.
 *
 * @since 0.1.0
 * @category models
 */
export type Environment = CliApp.CliApp.Environment | HttpClient.HttpClient

/**
 * Runs the CLI on a full argv (`[node, script, ...args]`, as `process.argv`) and succeeds with
 * the exit status: 0 on success; 1 on any error (printed as `ERROR: <message>` on stderr; usage
 * errors are printed by `@effect/cli`) and when a followed job failed; 130 when interrupted.
 * Output goes through Effect's `Console`, and the profile is read through `Config` (the
 * environment by default), so both can be replaced when embedding.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, Environment> =>
  Command.run(command, { name: "buildomat", version: VERSION })(argv).pipe(
    Effect.as(0),
    Effect.catchAllCause(report),
    Effect.provideService(CliConfig.CliConfig, config)
  )

/**
 * How `@effect/cli` parses: case-sensitive, because buildomat's flags pair `-e`/`-E`,
 * `-c`/`-C`, `-t`/`-T` and `-w`/`-W` (the library's default folds case).
 *
 * @since 0.1.0
 * @category constants
 */
export const config: CliConfig.CliConfig = CliConfig.make({ isCaseSensitive: true })

/**
 * The Node services for `run`: `NodeContext.layer` and the undici `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Environment> = Layer.mergeAll(NodeContext.layer, NodeHttpClient.layerUndici)

/**
 * What the `buildomat` binary runs: `run` with `layer`, then sets `process.exitCode`.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<void> =>
  run(argv).pipe(
    Effect.provide(layer),
    Effect.flatMap((code) =>
      Effect.sync(() => {
        process.exitCode = code
      })
    )
  )
