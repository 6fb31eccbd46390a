/**
 * The agent command's run path, loaded by `bin.ts` only when the agent runs (not for `bmat`).
 *
 * @internal
 */
// Per-module imports keep the bundle free of the rest of platform-node (cluster, workers, undici).
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer, Logger } from "effect"
import * as Agent from "../Agent.js"
import * as Host from "../Host.js"

/** @internal */
export const DEFAULT_STATE_DIR = Agent.DEFAULT_STATE_DIR

/**
 * node:http with keep-alive connections (node's default agent opens one per request): an
 * upload's parts, the event batches and the pings reuse them. A connection the server has
 * closed meanwhile fails its request, which is retried like any transport error.
 */
const HttpClientLive = NodeHttpClient.layerWithoutAgent.pipe(
  Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true }))
)

/**
 * No spans: an agent exports none, and making them (one per HTTP call, with an attribute per
 * header) is CPU between a job's assignment and its first task.
 */
const NoTracing = Layer.setTracerEnabled(false)

/**
 * Runs the agent until it powers off, then exits the process (`NodeRuntime.runMain`).
 *
 * @internal
 */
export const runAgent = (config: Agent.Config): void => {
  // Structured logs when a machine reads them, readable ones on a terminal.
  const LoggerLive = process.stdout.isTTY ? Logger.pretty : Logger.json
  Agent.run(config).pipe(
    // node:http rather than undici: as fast here, and a third of the bundle less to load on
    // every agent start.
    Effect.provide(Layer.mergeAll(HttpClientLive, LoggerLive, NoTracing)),
    NodeRuntime.runMain({ disablePrettyLogger: true })
  )
}

/**
 * Runs an agent host (`Host.serve`) on stdin and stdout until stdin ends, then exits. Its own
 * log lines go to stderr; each agent's to its own file.
 *
 * @internal
 */
export const runHost = (): void => {
  const stderrLogger = Logger.map(Logger.jsonLogger, (line) => process.stderr.write(`${line}\n`))
  Host.serve(process.stdin, process.stdout).pipe(
    Effect.provide(Layer.mergeAll(HttpClientLive, Logger.replace(Logger.defaultLogger, stderrLogger), NoTracing)),
    NodeRuntime.runMain({ disablePrettyLogger: true })
  )
}
