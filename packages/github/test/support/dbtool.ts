/**
 * Runs `buildomat-github-dbtool` in process, capturing what it prints.
 */
import { DbTool } from "@buildomat/github"
import { NodeContext } from "@effect/platform-node"
import { ConfigProvider, Console, Effect } from "effect"

const format = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? a : String(a))).join(" ")

export const dbtool = (db: string, ...args: Array<string>) =>
  Effect.gen(function*() {
    const stdout: Array<string> = []
    const stderr: Array<string> = []
    const unsafe = {
      log: (...a: ReadonlyArray<unknown>) => void stdout.push(format(a)),
      info: (...a: ReadonlyArray<unknown>) => void stdout.push(format(a)),
      error: (...a: ReadonlyArray<unknown>) => void stderr.push(format(a)),
      warn: (...a: ReadonlyArray<unknown>) => void stderr.push(format(a))
    }
    const console = new Proxy({} as Console.Console, {
      get(_, key) {
        if (key === Console.TypeId) return Console.TypeId
        if (key === "unsafe") return new Proxy(unsafe, { get: (t, k) => (t as any)[k] ?? (() => {}) })
        const f = (unsafe as any)[key]
        if (typeof f === "function") return (...a: Array<unknown>) => Effect.sync(() => f(...a))
        return (..._: Array<unknown>) => Effect.void
      }
    })
    const code = yield* DbTool.run(["node", "buildomat-github-dbtool", "--db", db, ...args]).pipe(
      Effect.withConsole(console),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
      Effect.provide(NodeContext.layer)
    )
    return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") }
  })
