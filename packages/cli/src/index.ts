/**
 * `@buildomat/cli`: the `buildomat` command-line client, as a library for embedding (the command
 * tree and a runner) and the credentials profiles it reads.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Cli from "./Cli.js"
/** @since 0.1.0 */
export * as Profile from "./Profile.js"
