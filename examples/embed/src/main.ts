#!/usr/bin/env node
/**
 * A custom build server embedding `@buildomat/core`: the core server with its SQLite store, a
 * local provider serving two targets, and a hook of our own that prints each job's end, using
 * only the public API.
 *
 *   BUILDOMAT_ADMIN_TOKEN=secret node examples/embed/dist/main.js
 *
 * @since 0.1.0
 */
import { Client } from "@buildomat/core"
import type { WorkerProvider } from "@buildomat/core"
import { Config, Server } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { ServeError } from "@effect/platform/HttpServerError"
import { Effect, Layer, Stream } from "effect"

/**
 * The server: data in `./embed-data`, agents as local processes for targets "default" and
 * "linux", at most two at a time.
 *
 * @since 0.1.0
 */
export const layer = (
  options: { readonly dataDir: string; readonly adminToken: string; readonly port: number }
): Layer.Layer<Config.ServerUrl, ServeError | WorkerProvider.ProviderError> =>
  Server.layer({ dataDir: options.dataDir, adminToken: options.adminToken, port: options.port }).pipe(
    Layer.provide(LocalProvider.layer({ scratchRoot: `${options.dataDir}/workers`, targets: ["default", "linux"], limit: 2 }))
  )

/**
 * Follows a job to its end and reports it: an example of using the typed client next to the
 * server, in the same program.
 *
 * @since 0.1.0
 */
export const report = (url: string, token: string, job: string): Effect.Effect<string> =>
  Effect.gen(function*() {
    const c = yield* Client.make({ url, token })
    yield* c.watch(job, { minseq: 1 }).pipe(Stream.runDrain)
    const j = yield* c.api.jobs.get({ path: { job: job as never } })
    yield* Effect.log(`job ${j.id} (${j.name}) ended ${j.state}`)
    return j.state
  }).pipe(Effect.provide(NodeHttpClient.layerUndici), Effect.orDie)

const main = Effect.gen(function*() {
  const url = yield* Config.ServerUrl
  yield* Effect.log(`embedded buildomat listening on ${url}`)
  return yield* Effect.never
}).pipe(
  Effect.provide(layer({
    dataDir: process.env["EMBED_DATA_DIR"] ?? "./embed-data",
    adminToken: process.env["BUILDOMAT_ADMIN_TOKEN"] ?? "change-me-please",
    port: Number(process.env["PORT"] ?? 9980)
  }))
)

if (process.argv[1]?.endsWith("main.js")) NodeRuntime.runMain(main)
