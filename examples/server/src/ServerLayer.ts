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
 * The server layer for a configuration: the providers the file names (local, AWS), side by side.
 * Provides `ServerUrl`; fails with `ProviderError` if a provider cannot start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: ResolvedConfig
): Layer.Layer<Config.ServerUrl, ServeError | WorkerProvider.ProviderError> => {
  const providers = Layer.scoped(
    WorkerProvider.WorkerProviders,
    Effect.all([
      ...(config.local !== undefined ? [LocalProvider.make(config.local)] : []),
      ...(config.aws !== undefined ? [AwsProvider.make(config.aws)] : [])
    ])
  )
  return Server.layer({
    dataDir: config.dataDir,
    adminToken: config.adminToken,
    host: config.host,
    port: config.port,
    publicUrl: config.publicUrl,
    maxBytesPerFile: config.maxBytesPerFile,
    maxRuntime: config.maxRuntime,
    hold: config.hold
  }).pipe(Layer.provide(providers))
}
