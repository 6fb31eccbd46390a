#!/usr/bin/env node
/**
 * `buildomat-server [-f CONFIG]`: runs the reference server until interrupted.
 *
 * @since 0.1.0
 */
import { Config } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { GitHubApp } from "@buildomat/github"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import { parseArgs } from "node:util"
import * as ServerConfig from "./Config.js"
import * as ServerLayer from "./ServerLayer.js"

const { values } = parseArgs({
  options: { file: { type: "string", short: "f" }, help: { type: "boolean", short: "h" } },
  strict: true
})
if (values.help) {
  process.stdout.write("usage: buildomat-server [-f CONFIG.toml]\n  (default: ./buildomat.toml if it exists)\n")
  process.exit(0)
}
const file = values.file ?? (NodeFs.existsSync("buildomat.toml") ? "buildomat.toml" : undefined)

const program = Effect.gen(function*() {
  const config = yield* ServerConfig.load(file)
  return yield* Layer.launch(
    Layer.effectDiscard(
      Effect.gen(function*() {
        const url = yield* Config.ServerUrl
        yield* Effect.gen(function*() {
          process.stdout.write(`buildomat server listening on ${url}\n`)
          process.stdout.write(`  data directory: ${config.dataDir}\n`)
          process.stdout.write(
            config.adminTokenFile !== undefined
              ? `  admin token:    ${config.adminTokenFile}\n`
              : `  admin token:    from ${file} ([admin] token)\n`
          )
          const app = yield* Effect.serviceOption(GitHubApp.AppUrl)
          if (config.github !== undefined && app._tag === "Some") {
            process.stdout.write(`  GitHub App:     ${app.value} (webhook ${config.github.baseUrl ?? app.value}/webhook)\n`)
          }
          const remote = (kind: "local" | "aws") =>
            config.remote.includes(kind) ? " (run by a separate factory process: dist/factory.js)" : ""
          if (config.local !== undefined) {
            process.stdout.write(
              `  local provider: targets ${LocalProvider.targetNames(config.local).join(", ")}, up to ${config.local.limit} workers${
                remote("local")
              }\n`
            )
          }
          if (config.aws !== undefined) {
            process.stdout.write(
              `  aws provider:   targets ${Object.keys(config.aws.targets).join(", ")} in ${config.aws.region}, up to ${config.aws.limit} instances${
                remote("aws")
              }\n`
            )
          }
          if (config.local === undefined && config.aws === undefined) {
            process.stdout.write(`  no worker provider configured: jobs will queue\n`)
          }
          process.stdout.write(
            config.storage !== undefined
              ? `  archive tier:   s3://${config.storage.bucket}/${config.storage.prefix ?? ""}\n`
              : `  archive tier:   none (files and job archives stay in the data directory)\n`
          )
        })
      })
    ).pipe(Layer.provideMerge(ServerLayer.layer(config)))
  )
})

program.pipe(
  Effect.catchTag("ConfigError", (e) =>
    Effect.sync(() => {
      process.stderr.write(`buildomat-server: ${e.message}\n`)
      process.exit(2)
    })),
  Effect.catchTag("ProviderError", (e) =>
    Effect.sync(() => {
      process.stderr.write(`buildomat-server: ${e.message}\n`)
      process.exit(2)
    })),
  NodeRuntime.runMain
)
