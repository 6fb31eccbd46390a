#!/usr/bin/env node
/**
 * `buildomat-factory [-f CONFIG] [--provider local|aws]`: runs one provider of the reference
 * server's TOML configuration as a separate factory process (buildomat §4.1) until interrupted:
 * the core reconcile loop (`Factory.run`) against the server's factory API, with the factory
 * token from `[factory] token` or `BUILDOMAT_FACTORY_TOKEN`. On SIGINT/SIGTERM the provider's
 * machines are destroyed (for the local provider: its agents are stopped); their workers are
 * deleted by the next factory process that runs with the same token, or stay until then.
 *
 * ```toml
 * [factory]
 * url = "http://ci.example:9979"
 * token = "..."                # buildomat admin factory create NAME
 * providers = ["local"]        # a server reading this file leaves these to the factory
 *
 * [providers.local]
 * scratch_root = "/var/tmp/buildomat"
 * [providers.local.targets.default]
 * limit = 4
 * warm = 2
 * ```
 *
 * Exits 2 on a configuration error.
 *
 * @since 0.1.0
 */
import { Factory } from "@buildomat/core"
import { AwsProvider } from "@buildomat/provider-aws"
import { LocalProvider } from "@buildomat/provider-local"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import { parseArgs } from "node:util"
import * as ServerConfig from "./Config.js"

const { values } = parseArgs({
  options: {
    file: { type: "string", short: "f" },
    provider: { type: "string", short: "p" },
    help: { type: "boolean", short: "h" }
  },
  strict: true
})
if (values.help) {
  process.stdout.write(
    "usage: buildomat-factory [-f CONFIG.toml] [--provider local|aws]\n" +
      "  (default: ./buildomat.toml if it exists; the provider named by [factory] providers, or the only one)\n"
  )
  process.exit(0)
}
const file = values.file ?? (NodeFs.existsSync("buildomat.toml") ? "buildomat.toml" : undefined)

const program = Effect.gen(function*() {
  const config = yield* ServerConfig.loadFactory(file, values.provider)
  const provider = config.provider.kind === "local"
    ? yield* LocalProvider.make(config.provider.config)
    : yield* AwsProvider.make(config.provider.config)
  yield* Effect.sync(() =>
    process.stdout.write(
      `buildomat factory: provider ${provider.name} (${config.provider.kind}), targets ${provider.targets.join(", ")}, ` +
        `up to ${provider.limit} workers, server ${config.url}\n`
    )
  )
  return yield* Factory.run(provider, {
    url: config.url,
    token: config.token,
    agentUrl: config.agentUrl,
    intervalMs: config.intervalMs,
    bootTimeoutMs: config.bootTimeoutMs
  })
})

const exit = (message: string) =>
  Effect.sync(() => {
    process.stderr.write(`buildomat-factory: ${message}\n`)
    process.exit(2)
  })

program.pipe(
  Effect.scoped,
  Effect.catchTags({ ConfigError: (e) => exit(e.message), ProviderError: (e) => exit(e.message) }),
  Effect.provide(NodeHttpClient.layerUndici),
  NodeRuntime.runMain
)
