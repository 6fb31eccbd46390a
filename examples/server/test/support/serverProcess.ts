/**
 * The reference server as a process of its own (`src/main.ts -f <config>`, run from source with
 * tsx), so that a test can do to it what happens to real servers: `kill -9`, SIGSTOP/SIGCONT,
 * and a restart on the same data directory and port. Agents are started by its local provider
 * (the built bundle) and survive its death, as machines would.
 */
import { Testing } from "@buildomat/core/server"
import { Effect } from "effect"
import type { Scope } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url))

/** A free loopback port (bound, then released). */
export const freePort = Effect.async<number>((resume) => {
  const s = net.createServer()
  s.listen(0, "127.0.0.1", () => {
    const port = (s.address() as net.AddressInfo).port
    s.close(() => resume(Effect.succeed(port)))
  })
})

export interface ServerSpec {
  readonly dir: string
  readonly port: number
  readonly adminToken: string
  /** What agents are told to connect to (for a proxy in between); default the server itself. */
  readonly publicUrl?: string | undefined
  /** Extra environment for agents (`[providers.local.env]`). */
  readonly agentEnv?: Readonly<Record<string, string>> | undefined
}

export interface ServerProcess {
  readonly url: string
  readonly child: ChildProcess
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>
  /** Everything it wrote. */
  readonly output: () => string
}

const config = (spec: ServerSpec) => {
  const lines = [
    "[server]",
    `listen = "127.0.0.1:${spec.port}"`,
    `data_dir = ${JSON.stringify(path.join(spec.dir, "data"))}`,
    ...(spec.publicUrl === undefined ? [] : [`public_url = ${JSON.stringify(spec.publicUrl)}`]),
    "[admin]",
    `token = ${JSON.stringify(spec.adminToken)}`,
    "[providers.local]",
    "limit = 2",
    "kill_grace_ms = 500",
    `scratch_root = ${JSON.stringify(path.join(spec.dir, "workers"))}`
  ]
  if (spec.agentEnv !== undefined) {
    lines.push("[providers.local.env]")
    for (const [k, v] of Object.entries(spec.agentEnv)) lines.push(`${k} = ${JSON.stringify(v)}`)
  }
  return `${lines.join("\n")}\n`
}

/**
 * Starts the server and waits until it listens. The process is killed (SIGKILL) when the scope
 * closes if it is still running.
 */
export const start = (spec: ServerSpec): Effect.Effect<ServerProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const file = path.join(spec.dir, "buildomat.toml")
    fs.writeFileSync(file, config(spec))
    let out = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--conditions=@buildomat/source", "--import", "tsx", MAIN, "-f", file], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, NO_COLOR: "1" }
        })
      ),
      (c) => Effect.sync(() => {
        if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
      })
    )
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    child.stdout!.on("data", (d) => (out += String(d)))
    child.stderr!.on("data", (d) => (out += String(d)))
    const deadline = Date.now() + 60_000
    while (!out.includes("buildomat server listening on")) {
      if (child.exitCode !== null || Date.now() > deadline) {
        return yield* Effect.die(new Error(`the server did not start:\n${out}`))
      }
      yield* Effect.sleep("50 millis")
    }
    return { url: `http://127.0.0.1:${spec.port}`, child, exited, output: () => out }
  })

/** `kill -9`, and wait for it to be gone. */
export const kill9 = (server: ServerProcess) =>
  Effect.promise(() => {
    server.child.kill("SIGKILL")
    return server.exited
  })

/**
 * When the scope closes, SIGKILLs every process whose command line mentions `dir` (the agents
 * the servers started under it, which outlive a killed server), so that a failed test leaves
 * nothing behind.
 */
export const reapUnder = (dir: string) =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
        try {
          const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8")
          if (cmd.includes(dir)) process.kill(Number(entry), "SIGKILL")
        } catch {
          // gone
        }
      }
    })
  )

/** A temporary directory for a test, world-traversable (tasks may run as other users). */
export const testDir = (prefix: string) =>
  Effect.tap(Testing.tempDirectory(prefix), (d) => Effect.sync(() => fs.chmodSync(d, 0o755)))
