/**
 * Finds the agent bundle that the local provider starts by default.
 *
 * @internal
 */
import { WorkerProvider } from "@buildomat/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"

/**
 * The agent bundle's launcher that compiles it through a V8 code cache (see
 * `@buildomat/agent`'s `launcher.cts`); it runs the bundle beside it.
 *
 * @internal
 */
export const BUNDLE_SPECIFIER = "@buildomat/agent/bundle/cached"

/**
 * The environment variable that names the agent's code cache directory.
 *
 * @internal
 */
export const CODE_CACHE_ENV = "BUILDOMAT_AGENT_CODE_CACHE"

/**
 * `[process.execPath, <launcher>]`, the bundle's launcher resolved from `from` (a file URL or path) the way
 * Node resolves `@buildomat/agent/bundle/cached`. Fails with a `ProviderError` that says to run
 * `npm run build` when the bundle cannot be found (it is built by tsup, not checked in).
 *
 * @internal
 */
export const resolveAgentCommand = (
  from: string
): Effect.Effect<ReadonlyArray<string>, WorkerProvider.ProviderError> =>
  Effect.try({
    try: () => {
      const bundle = createRequire(from).resolve(BUNDLE_SPECIFIER)
      // Node's resolver does not always check that an `exports` target exists.
      if (!fs.existsSync(bundle)) throw new Error(`Cannot find module '${bundle}'`)
      return [process.execPath, bundle] as const
    },
    catch: (cause) =>
      new WorkerProvider.ProviderError({
        message: `cannot find the agent bundle "${BUNDLE_SPECIFIER}" (${
          cause instanceof Error ? cause.message.split("\n")[0] : String(cause)
        }); build it with \`npm run build\` at the repository root, or set \`agentCommand\``,
        cause
      })
  })
