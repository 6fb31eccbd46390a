/**
 * The reference server composed from a resolved configuration: core with its embedded SQLite
 * database, and the providers the file names.
 *
 * @since 0.1.0
 */
import { WorkerProvider } from "@buildomat/core"
import { Config, S3ObjectStore, Server } from "@buildomat/core/server"
import type { ServeError } from "@effect/platform/HttpServerError"
import { LocalProvider } from "@buildomat/provider-local"
import { Layer } from "effect"
import type { ResolvedConfig } from "./Config.js"

/**
 * The server layer for a configuration. Provides `ServerUrl`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: ResolvedConfig): Layer.Layer<Config.ServerUrl, ServeError> => {
  const providers = config.local !== undefined
    ? LocalProvider.layer(config.local)
    : Layer.succeed(WorkerProvider.WorkerProviders, [])
  return Server.layer({
    dataDir: config.dataDir,
    adminToken: config.adminToken,
    host: config.host,
    port: config.port,
    publicUrl: config.publicUrl,
    maxBytesPerFile: config.maxBytesPerFile,
    archiveStore: config.storage !== undefined ? S3ObjectStore.layerArchive(config.storage) : undefined,
    background: {
      jobAutoArchive: config.jobAutoArchive,
      jobAutoPurge: config.jobAutoPurge,
      purgeDelay: config.purgeDelayMs,
      fileAutoArchive: config.fileAutoArchive
    }
  }).pipe(Layer.provide(providers))
}
