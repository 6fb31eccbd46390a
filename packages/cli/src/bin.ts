#!/usr/bin/env node
/**
 * The `buildomat` executable. `Cli.main` sets `process.exitCode`; the teardown only matters
 * when the program is interrupted (Ctrl-C: exit status 130, as a shell would report it). No
 * spans are made: the command exports none.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit } from "effect"
import * as Cli from "./Cli.js"

NodeRuntime.runMain(Cli.main(process.argv).pipe(Effect.withTracerEnabled(false)), {
  disableErrorReporting: true,
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
