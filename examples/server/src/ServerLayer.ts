/**
 * The reference server composed from a resolved configuration: core with its embedded SQLite
 * database, and the providers the file names.
 *
 * @since 0.1.0
 */
import { WorkerProvider } from "@buildomat/core"
import { Config, Server } from "@buildomat/core/server"
import type { ServeError } from "@effect/platform/HttpServerError"
import { AwsProvider } from "@buildomat/provider-aws"
import { LocalProvider } from "@buildomat/provider-local"
import { Effect, Layer } from "effect"
import type { ResolvedConfig } from "./Config.js"

/**
 * The server layer for a configuration: the providers the file names (local, AWS), side by side,
 * except those `[factory] providers` leaves to a separate factory process (whose targets are
 * still made at start). Provides `ServerUrl`; fails with `ProviderError` if a provider cannot
 * start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: ResolvedConfig
): Layer.Layer<Config.ServerUrl, ServeError | WorkerProvider.ProviderError> => {
  const inProcess = (kind: "local" | "aws") => !config.remote.includes(kind)
  const providers = Layer.scoped(
    WorkerProvider.WorkerProviders,
    Effect.all([
      ...(config.local !== undefined && inProcess("local") ? [LocalProvider.make(config.local)] : []),
      ...(config.aws !== undefined && inProcess("aws") ? [AwsProvider.make(config.aws)] : [])
    ])
  )
  const remoteTargets = [
    ...(config.local !== undefined && !inProcess("local") ? LocalProvider.targetNames(config.local) : []),
    ...(config.aws !== undefined && !inProcess("aws") ? Object.keys(config.aws.targets) : [])
  ]
  return Server.layer({
    dataDir: config.dataDir,
    adminToken: config.adminToken,
    host: config.host,
    port: config.port,
    publicUrl: config.publicUrl,
    maxBytesPerFile: config.maxBytesPerFile,
    maxRuntime: config.maxRuntime,
    hold: config.hold,
    bootTimeoutMs: config.bootTimeoutMs,
    targets: remoteTargets
  }).pipe(Layer.provide(providers))
}
