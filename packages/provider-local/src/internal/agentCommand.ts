/**
 * Finds the agent bundle that the local provider starts by default.
 *
 * @internal
 */
import { WorkerProvider } from "@buildomat/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"

/** @internal */
export const BUNDLE_SPECIFIER = "@buildomat/agent/bundle"

/**
 * `[process.execPath, <bundle>]`, the bundle resolved from `from` (a file URL or path) the way
 * Node resolves `@buildomat/agent/bundle`. Fails with a `ProviderError` that says to run
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
