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
 * bmat address list|ls [-H] [-o COL,...] [-f NAME]
 *                                 the worker's IPv4 ranges from its factory metadata, as a table
 *                                 (-H: no header; -o: these columns); -f: exactly the range
 *                                 named NAME, or fail
 * bmat factory name|id|private    which factory made this worker, and its own id for the machine
 * bmat eng metadata               (hidden) the factory metadata as JSON, root_password_hash
 *                                 redacted; null if there is none
 * ```
 *
 * `address list` checks each range (see `addresses.ts`): one that is not usable is left out, with
 * a warning on stderr saying why. Its columns are name, cidr, first, last, count, routed and
 * gateway by default; family, network and mask on request.
 *
 * Exits 0 on success, 1 on failure (with a message on stderr), 2 on a usage error.
 *
 * @internal
 */
import * as net from "node:net"
import * as path from "node:path"
import * as Addresses from "./addresses.js"

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
  bmat address list|ls [-H] [-o COL,...] [-f NAME]
  bmat factory name|id|private
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
  /**
   * Takes the options before the first operand: flags in `flags`, options with a value in
   * `values` (`-f NAME` or `-fNAME`); letters may be grouped (`-Ho name`); `--` ends them.
   */
  const options = (flags: string, values = "") => {
    const set = new Set<string>()
    const given = new Map<string, string>()
    while (rest[0] !== undefined && /^-./.test(rest[0])) {
      const arg = rest.shift()!
      if (arg === "--") break
      for (let i = 1; i < arg.length; i++) {
        const f = arg[i]!
        if (values.includes(f)) {
          const value = i + 1 < arg.length ? arg.slice(i + 1) : rest.shift()
          if (value === undefined) usage(`option -${f} needs a value`)
          given.set(f, value!)
          break
        }
        if (!flags.includes(f)) usage(`unknown option -${f}`)
        set.add(f)
      }
    }
    return { has: (f: string) => set.has(f), get: (f: string) => given.get(f) }
  }
  if (group === "store" && verb === "get") {
    const f = options("W")
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
    const f = options("s")
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
  if (group === "address" && (verb === "list" || verb === "ls")) {
    const o = options("H", "of")
    if (rest.length !== 0) return usage("address list takes no operands")
    const columns = columnsOf(o.get("o"))
    const name = o.get("f")
    const res = await call({ op: "metadata" })
    const metadata = res["metadata"] as Record<string, unknown> | null
    const { ranges, problems } = Addresses.parse(metadata?.["addresses"])
    let shown = ranges
    if (name !== undefined) {
      shown = ranges.filter((r) => r.name === name)
      if (shown.length > 1) return fail(`${shown.length} IP address ranges are named ${JSON.stringify(name)}`)
      if (shown.length === 0) {
        const bad = problems.filter((p) => p.name === name)
        if (bad.length > 0) return fail(`IP address range ${JSON.stringify(name)} is not usable: ${bad.map((p) => p.reason).join("; ")}`)
        const names = ranges.map((r) => r.name)
        return fail(
          `no IP address range named ${JSON.stringify(name)} (${names.length === 0 ? "this worker has none" : `there are: ${names.join(", ")}`})`
        )
      }
    } else {
      for (const p of problems) {
        process.stderr.write(`bmat: WARNING: ignoring IP address range${p.name === undefined ? "" : ` ${JSON.stringify(p.name)}`}: ${p.reason}\n`)
      }
    }
    process.stdout.write(Addresses.table(shown, columns, !o.has("H")))
    return
  }
  if (group === "factory" && (verb === "name" || verb === "id" || verb === "private")) {
    if (rest.length !== 0) return usage(`factory ${verb} takes no operands`)
    const res = await call({ op: "factory-info" })
    const info = res["factory"] as { id: string; name: string; private?: string | null }
    const value = verb === "private" ? info.private : info[verb]
    if (value === undefined || value === null) return fail("the factory's private id for this worker is not known")
    process.stdout.write(`${value}\n`)
    return
  }
  if (group === "eng" && verb === "metadata") {
    if (rest.length !== 0) return usage("eng metadata takes no operands")
    const res = await call({ op: "metadata" })
    process.stdout.write(`${JSON.stringify(res["metadata"] ?? null, null, 2)}\n`)
    return
  }
  return usage(`unknown command ${JSON.stringify(args.slice(0, 2).join(" "))}`)
}

/** The columns `-o` asks for (comma-separated), or the default ones. */
const columnsOf = (spec: string | undefined): ReadonlyArray<Addresses.Column> => {
  if (spec === undefined) return Addresses.DEFAULT_COLUMNS
  const asked = spec.split(",").map((c) => c.trim().toLowerCase())
  for (const c of asked) {
    if (!(Addresses.COLUMNS as ReadonlyArray<string>).includes(c)) {
      usage(`unknown column ${JSON.stringify(c)} (columns: ${Addresses.COLUMNS.join(", ")})`)
    }
  }
  return asked as Array<Addresses.Column>
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
