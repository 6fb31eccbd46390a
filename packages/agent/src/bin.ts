#!/usr/bin/env node
/**
 * `buildomat-agent run --url URL --bootstrap VALUE [--state-dir DIR] [--root DIR]`: the agent
 * as a command. Options may also come from the environment: `BUILDOMAT_URL`,
 * `BUILDOMAT_BOOTSTRAP`, `BUILDOMAT_AGENT_STATE`, `BUILDOMAT_AGENT_ROOT`,
 * `BUILDOMAT_AGENT_KILL_GRACE_MS`, and `BUILDOMAT_AGENT_EVENT_MEMORY` (bytes of pending events kept
 * in memory before spooling to disk). Exits 0 once the server asks for power-off, 1 if the agent
 * cannot go on, 2 on a usage error.
 *
 * Invoked as `bmat` (by that basename, or as `buildomat-agent bmat ...`), it is the control
 * command of a running task instead (see `internal/bmat.ts`). `buildomat-agent host` runs an
 * agent host (see `Host.ts`) on stdin and stdout.
 *
 * @since 0.1.0
 */
import * as path from "node:path"
import { parseArgs } from "node:util"
import type * as Agent from "./Agent.js"
import * as Bmat from "./internal/bmat.js"
import * as Main from "./internal/main.js"

const USAGE_LINE = "Usage: buildomat-agent run --url URL --bootstrap VALUE [--state-dir DIR] [--root DIR]"

const usage = (defaultStateDir: string) => `${USAGE_LINE}

Connects to a buildomat server, exchanges the bootstrap value for a worker token, runs the
job the server assigns, and keeps pinging until the server asks for power-off.

Options:
  --url URL          the core server (env BUILDOMAT_URL)
  --bootstrap VALUE  the single-use bootstrap value of this worker (env BUILDOMAT_BOOTSTRAP)
  --state-dir DIR    where agent.json and job.json live (env BUILDOMAT_AGENT_STATE);
                     default ${defaultStateDir} when run as root, otherwise required
  --root DIR         the directory the job's "/" maps to (env BUILDOMAT_AGENT_ROOT); default /
  --kill-grace-ms N  SIGTERM to SIGKILL, when a task is cancelled (env BUILDOMAT_AGENT_KILL_GRACE_MS);
                     default 1000
  -h, --help         show this help

Run as "bmat" (or "buildomat-agent bmat ..."), it is a task's control command: "bmat --help".

"buildomat-agent host" runs many agents in one process, started and stopped by requests on
stdin (JSON lines; see the Host module of @buildomat/agent), for a provider that starts many.
`

const usageError = (message: string): never => {
  process.stderr.write(`buildomat-agent: ${message}\n${USAGE_LINE}\nTry "buildomat-agent --help".\n`)
  process.exit(2)
}

const parse = (argv: ReadonlyArray<string>, defaultStateDir: string): Agent.Config => {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: "string" },
        bootstrap: { type: "string" },
        "state-dir": { type: "string" },
        root: { type: "string" },
        "kill-grace-ms": { type: "string" },
        help: { type: "boolean", short: "h" }
      }
    })
  } catch (e) {
    return usageError(e instanceof Error ? e.message : String(e))
  }
  const { positionals, values } = parsed
  if (values.help === true) {
    process.stdout.write(usage(defaultStateDir))
    process.exit(0)
  }
  if (positionals.length === 0) return usageError("missing command (expected \"run\")")
  if (positionals[0] !== "run") return usageError(`unknown command ${JSON.stringify(positionals[0])}`)
  if (positionals.length > 1) return usageError(`unexpected argument ${JSON.stringify(positionals[1])}`)

  const env = process.env
  const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v)
  const url = nonEmpty(values.url) ?? nonEmpty(env["BUILDOMAT_URL"])
  const bootstrap = nonEmpty(values.bootstrap) ?? nonEmpty(env["BUILDOMAT_BOOTSTRAP"])
  const stateDir = nonEmpty(values["state-dir"]) ?? nonEmpty(env["BUILDOMAT_AGENT_STATE"]) ??
    (process.getuid?.() === 0 ? defaultStateDir : undefined)
  const root = nonEmpty(values.root) ?? nonEmpty(env["BUILDOMAT_AGENT_ROOT"])

  if (url === undefined) return usageError("--url (or BUILDOMAT_URL) is required")
  try {
    const u = new URL(url)
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http")
  } catch {
    return usageError(`--url ${JSON.stringify(url)} is not an http(s) URL`)
  }
  if (bootstrap === undefined) return usageError("--bootstrap (or BUILDOMAT_BOOTSTRAP) is required")
  if (stateDir === undefined) {
    return usageError("--state-dir (or BUILDOMAT_AGENT_STATE) is required when not running as root")
  }
  const number = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0) return usageError(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`)
    return n
  }
  const killGraceMillis = number("--kill-grace-ms", nonEmpty(values["kill-grace-ms"]) ?? nonEmpty(env["BUILDOMAT_AGENT_KILL_GRACE_MS"]))
  const memoryBytes = number("BUILDOMAT_AGENT_EVENT_MEMORY", nonEmpty(env["BUILDOMAT_AGENT_EVENT_MEMORY"]))
  return {
    url,
    bootstrap,
    stateDir,
    root,
    killGraceMillis,
    ...(memoryBytes === undefined ? {} : { events: { memoryBytes } })
  }
}

const argv = process.argv.slice(2)
if (path.basename(process.argv[1] ?? "") === "bmat" || argv[0] === "bmat") {
  Bmat.run(argv[0] === "bmat" ? argv.slice(1) : argv)
} else if (argv[0] === "host" && argv.length === 1) {
  Main.runHost()
} else {
  Main.runAgent(parse(argv, Main.DEFAULT_STATE_DIR))
}
