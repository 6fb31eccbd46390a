/**
 * Runs the CLI in process: argv as typed, the environment as a map (through `Config`, so
 * nothing leaks between concurrent tests), stdout and stderr captured through Effect's Console.
 */
import { ConfigProvider, Console, Duration, Effect } from "effect"
import * as Cli from "../../src/Cli.js"
import { RetryDelay } from "../../src/internal/tail.js"

export interface Captured {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const format = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? a : String(a))).join(" ")

/** A Console that records `log` (stdout) and `error` (stderr) lines. */
export const captureConsole = () => {
  const stdout: Array<string> = []
  const stderr: Array<string> = []
  const unsafe = {
    log: (...args: ReadonlyArray<unknown>) => void stdout.push(format(args)),
    info: (...args: ReadonlyArray<unknown>) => void stdout.push(format(args)),
    error: (...args: ReadonlyArray<unknown>) => void stderr.push(format(args)),
    warn: (...args: ReadonlyArray<unknown>) => void stderr.push(format(args))
  }
  const console = new Proxy({} as Console.Console, {
    get(_, key) {
      if (key === Console.TypeId) return Console.TypeId
      if (key === "unsafe") return new Proxy(unsafe, { get: (t, k) => (t as any)[k] ?? (() => {}) })
      const f = (unsafe as any)[key]
      if (typeof f === "function") return (...args: Array<unknown>) => Effect.sync(() => f(...args))
      return (..._: Array<unknown>) => Effect.void
    }
  })
  return { console, stdout, stderr }
}

export const runCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.gen(function*() {
    const { console, stdout, stderr } = captureConsole()
    const code = yield* Cli.run(["node", "buildomat", ...args]).pipe(
      Effect.withConsole(console),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Effect.provideService(RetryDelay, Duration.millis(20)),
      Effect.provide(Cli.layer)
    )
    return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") } satisfies Captured
  })
