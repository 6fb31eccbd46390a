#!/usr/bin/env node
/**
 * The `buildomat-github-dbtool` executable.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Exit } from "effect"
import * as DbTool from "./DbToolCli.js"

NodeRuntime.runMain(DbTool.main(process.argv), {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? Number(process.exitCode ?? 0) : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
