/**
 * The reference server composed from a resolved configuration: core with its embedded SQLite
 * database, the providers the file names (local, AWS) side by side, and the GitHub App if it has
 * a `[github]` table.
 *
 * @since 0.1.0
 */
import { WorkerProvider } from "@buildomat/core"
import { Config, S3ObjectStore, Server } from "@buildomat/core/server"
import { GitHubApp } from "@buildomat/github"
import { AwsProvider } from "@buildomat/provider-aws"
import { LocalProvider } from "@buildomat/provider-local"
import type { ServeError } from "@effect/platform/HttpServerError"
import { Effect, Layer } from "effect"
import type { ResolvedConfig } from "./Config.js"

/**
 * The core server layer for a configuration, with its providers: those the file names (local,
 * AWS), side by side, except those `[factory] providers` leaves to a separate factory process
 * (whose targets are still made at start). Provides `ServerUrl`; fails with `ProviderError` if a
 * provider cannot start.
 *
 * @since 0.1.0
 * @category layers
 */
export const coreLayer = (
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
    targets: remoteTargets,
    archiveStore: config.storage !== undefined ? S3ObjectStore.layerArchive(config.storage) : undefined,
    background: {
      jobAutoArchive: config.jobAutoArchive,
      jobAutoPurge: config.jobAutoPurge,
      purgeDelay: config.purgeDelayMs,
      fileAutoArchive: config.fileAutoArchive
    }
  }).pipe(Layer.provide(providers))
}

/**
 * The server layer for a configuration: core, and the GitHub App next to it when configured
 * (pointed at this core unless the table names another). Provides `ServerUrl`; when the App runs
 * the context also holds its `GitHubApp.AppUrl` (read it with `Effect.serviceOption`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: ResolvedConfig
): Layer.Layer<Config.ServerUrl, ServeError | WorkerProvider.ProviderError> => {
  const core = coreLayer(config)
  const github = config.github
  if (github === undefined) return core
  const app = Layer.unwrapEffect(
    Effect.map(Config.ServerUrl, (url) =>
      GitHubApp.layer(config.githubUsesThisServer ? { ...github, core: { ...github.core, url } } : github))
  )
  return app.pipe(Layer.provideMerge(core))
}
