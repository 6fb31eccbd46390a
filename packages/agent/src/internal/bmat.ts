/**
 * `bmat`: the control command a task runs to talk to its agent (buildomat §3.8), over the task's
 * control socket (see `control.ts`):
 *
 * ```text
 * bmat store get [-W] NAME        print a job store value; waits (polling every 2 s) until it
 *                                 exists, unless -W
 * bmat store put [-s] NAME [VALUE]
 *                                 set a value (-s: secret); without VALUE, read it from stdin
 *                                 (one trailing newline dropped)
 * bmat add output FILE            upload FILE as an output of the job now, whatever the rules
 * bmat process start NAME CMD [ARG...]
 *                                 start CMD in the background; its output goes to the job's
 *                                 events on bg.NAME.stdout / bg.NAME.stderr; it is stopped when
 *                                 the task ends
 * ```
 *
 * Exits 0 on success, 1 on failure (with a message on stderr), 2 on a usage error.
 *
 * @internal
 */
import * as net from "node:net"
import * as path from "node:path"

/**
 * The environment variable that names the control socket. Defined here, not in `control.ts`, so
 * that `bmat` loads without Effect.
 */
export const SOCKET_ENV = "BUILDOMAT_CONTROL"

const USAGE = `Usage:
  bmat store get [-W] NAME
  bmat store put [-s] NAME [VALUE]
  bmat add output FILE
  bmat process start NAME CMD [ARG...]
`

const usage = (message: string): never => {
  process.stderr.write(`bmat: ${message}\n${USAGE}`)
  process.exit(2)
}

const fail = (message: string): never => {
  process.stderr.write(`bmat: ${message}\n`)
  process.exit(1)
}

/** Sends one request, resolves with the answer; retries a socket not yet listening for 2 s. */
const ask = async (socket: string, req: Record<string, unknown>): Promise<Record<string, any>> => {
  const deadline = Date.now() + 2000
  for (;;) {
    try {
      return await askOnce(socket, req)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if ((code !== "ENOENT" && code !== "ECONNREFUSED" && code !== "EACCES") || Date.now() > deadline) throw e
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}

const askOnce = (socket: string, req: Record<string, unknown>): Promise<Record<string, any>> =>
  new Promise((resolve, reject) => {
    const conn = net.createConnection(socket)
    let buffered = ""
    conn.setEncoding("utf8")
    conn.on("connect", () => conn.write(`${JSON.stringify({ id: 1, ...req })}\n`))
    conn.on("data", (d: string) => {
      buffered += d
      const nl = buffered.indexOf("\n")
      if (nl === -1) return
      conn.end()
      try {
        resolve(JSON.parse(buffered.slice(0, nl)))
      } catch (e) {
        reject(e)
      }
    })
    conn.on("error", reject)
    conn.on("close", () => reject(new Error("the agent closed the connection")))
  })

const readStdin = (): Promise<string> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    process.stdin.on("data", (d: Buffer) => parts.push(d))
    process.stdin.on("end", () => resolve(Buffer.concat(parts).toString("utf8")))
    process.stdin.on("error", reject)
  })

/** Runs `bmat` with its arguments (after `bmat`). */
export const main = async (argv: ReadonlyArray<string>): Promise<void> => {
  const args = [...argv]
  let socket = process.env[SOCKET_ENV]
  if (args[0] === "--socket") {
    socket = args[1]
    args.splice(0, 2)
  }
  if (args[0] === "-h" || args[0] === "--help" || args.length === 0) {
    process.stdout.write(USAGE)
    process.exit(args.length === 0 ? 2 : 0)
  }
  if (socket === undefined || socket === "") return fail(`no control socket (${SOCKET_ENV} is not set): run bmat from a buildomat task`)
  const call = async (req: Record<string, unknown>) => {
    let res: Record<string, any>
    try {
      res = await ask(socket!, req)
    } catch (e) {
      return fail(`cannot reach the agent: ${e instanceof Error ? e.message : String(e)}`)
    }
    if (res["ok"] !== true) return fail(String(res["error"] ?? "the agent refused"))
    return res
  }
  const [group, verb, ...rest] = args
  const flags = (allowed: string) => {
    const set = new Set<string>()
    while (rest[0] !== undefined && /^-[A-Za-z]$/.test(rest[0])) {
      const f = rest.shift()!.slice(1)
      if (!allowed.includes(f)) usage(`unknown option -${f}`)
      set.add(f)
    }
    return set
  }
  if (group === "store" && verb === "get") {
    const f = flags("W")
    if (rest.length !== 1) return usage("store get takes one NAME")
    for (;;) {
      const res = await call({ op: "store-get", name: rest[0] })
      const value = res["value"] as { value: string } | null
      if (value !== null) {
        process.stdout.write(value.value.endsWith("\n") ? value.value : `${value.value}\n`)
        return
      }
      if (f.has("W")) return fail(`the job store has no value ${rest[0]}`)
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
  if (group === "store" && verb === "put") {
    const f = flags("s")
    if (rest.length < 1 || rest.length > 2) return usage("store put takes NAME and an optional VALUE")
    let value = rest[1]
    if (value === undefined) {
      value = await readStdin()
      if (value.endsWith("\n") && value.indexOf("\n") === value.length - 1) value = value.slice(0, -1)
    }
    await call({ op: "store-put", name: rest[0], value, secret: f.has("s") })
    return
  }
  if (group === "add" && verb === "output") {
    if (rest.length !== 1) return usage("add output takes one FILE")
    const res = await call({ op: "add-output", path: path.resolve(rest[0]!) })
    process.stdout.write(`${res["path"]} ${res["size"]} ${res["sha256"]}\n`)
    return
  }
  if (group === "process" && verb === "start") {
    if (rest.length < 2) return usage("process start takes NAME and CMD")
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
    await call({ op: "process-start", name: rest[0], cmd: rest[1], args: rest.slice(2), env, cwd: process.cwd() })
    return
  }
  return usage(`unknown command ${JSON.stringify(args.slice(0, 2).join(" "))}`)
}

/**
 * `main`, then exits the process: 0 on success, 1 with the message on stderr on failure.
 *
 * @internal
 */
export const run = (argv: ReadonlyArray<string>): void => {
  void main(argv).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`bmat: ${e instanceof Error ? e.message : String(e)}\n`)
      process.exit(1)
    }
  )
}
