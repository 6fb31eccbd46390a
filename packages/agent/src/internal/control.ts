/**
 * The control channel of a running task (buildomat §3.8): the `bmat` command, run by the task,
 * asks the agent over a UNIX socket to read or write the job store, upload a file as an output,
 * start a background process whose output is captured, or tell what the server said about the
 * worker: its factory metadata (§3.9; `bmat address list`, `bmat eng metadata`) and which factory
 * made it (`bmat factory name|id|private`).
 *
 * Each task gets its own socket, in a fresh directory owned by the task's user with mode 0700
 * (the socket 0600), so only that user (and root) can use it, and only while the task runs
 * (buildomat: one socket, mode 0777, for anyone on the machine). Beside it, `bin/bmat` is a tiny
 * script that runs this bundle as `bmat`; the agent puts that directory first on the task's
 * `PATH` and names the socket in `BUILDOMAT_CONTROL`. The first task's channel is made while the
 * agent waits for its job (`makeChannel`), so that the task starts sooner; until the task runs,
 * it refuses every request.
 *
 * The protocol is one JSON object per line each way: a request `{ "id", "op", ... }`, answered by
 * `{ "id", "ok": true, ... }` or `{ "id", "ok": false, "error" }`. `metadata` answers
 * `{ metadata }`: the factory metadata as the server sent it (`null` if none), with
 * `root_password_hash` redacted, since the task's user need not be root; `factory-info` answers
 * `{ factory: { id, name, private } }`, or fails when the server has not said (buildomat:
 * "factory info not available").
 *
 * @internal
 */
import type { Client, Ids, Workers } from "@buildomat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { Effect, Runtime } from "effect"
import type { Scope } from "effect"
import type { EventLog } from "./events.js"
import type { Processes } from "./processes.js"
import { describe, retrying } from "./retry.js"
import * as Root from "./root.js"
import { pump, type Identity } from "./task.js"
import { uploadFile } from "./upload.js"
import { SOCKET_ENV } from "./bmat.js"

/** A request from `bmat`. */
export type Request =
  | { readonly op: "store-get"; readonly name: string }
  | { readonly op: "store-put"; readonly name: string; readonly value: string; readonly secret: boolean }
  | { readonly op: "add-output"; readonly path: string }
  | {
    readonly op: "process-start"
    readonly name: string
    readonly cmd: string
    readonly args: ReadonlyArray<string>
    readonly env: Readonly<Record<string, string>>
    readonly cwd: string
  }
  | { readonly op: "metadata" }
  | { readonly op: "factory-info" }

/**
 * What the agent has learnt about its worker from the server's pings, kept current by the agent
 * as later pings arrive: the factory metadata (JSON, as sent) and which factory made the worker.
 * `undefined` while the server has not said.
 */
export interface WorkerFacts {
  metadata: unknown
  factory: typeof Workers.WorkerPingFactoryInfo.Type | undefined
}

/** The metadata as `bmat` may see it: `root_password_hash` replaced by `"<redacted>"`. */
const visibleMetadata = (m: unknown): unknown => {
  if (typeof m !== "object" || m === null || Array.isArray(m)) return m ?? null
  const copy: Record<string, unknown> = { ...(m as Record<string, unknown>) }
  if (typeof copy["root_password_hash"] === "string") copy["root_password_hash"] = "<redacted>"
  return copy
}

/** What the control channel needs from the job. */
export interface ControlContext {
  readonly api: Client.ApiClient
  readonly http: HttpClient.HttpClient
  readonly job: Ids.JobId
  readonly root: string
  readonly log: EventLog
  readonly processes: Processes
  readonly identity: Identity
  readonly tmpdir: string
  /** The argv that runs this agent's bundle (`[node, bundle]`); no `bmat` without it. */
  readonly command: ReadonlyArray<string> | undefined
  /** What the server said about the worker, read at each request. */
  readonly worker: WorkerFacts
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`

const BG_NAME = /^[A-Za-z0-9._-]{1,48}$/

/**
 * A control socket, listening, and its `bin/bmat` script, in a fresh directory (mode 0700, the
 * socket 0600), made before the task that will use it: the agent makes one while it waits for
 * its job, so that the first task starts without it. Until `serve`, requests are refused.
 */
export interface Channel {
  readonly dir: string
  readonly bin: string
  readonly socket: string
  /**
   * Sets who answers requests (one JSON object per line each way) and who hears of the socket
   * failing (a failure before `serve` is reported at once).
   */
  readonly serve: (
    handler: (req: Request) => Promise<Record<string, unknown>>,
    onError: (e: Error) => void
  ) => void
  /** Marks the channel as used by a task; false if it already was. */
  readonly take: () => boolean
  /** Stops listening and removes the directory. */
  readonly close: Effect.Effect<void>
}

/**
 * Makes a control channel in `tmpdir` whose `bmat` runs `command`. Synchronous (a UNIX socket is
 * bound by the time `listen` returns). Throws if the directory cannot be made.
 */
export const makeChannel = (command: ReadonlyArray<string>, tmpdir: string): Channel => {
  const dir = fs.mkdtempSync(path.join(tmpdir, "bmat-"))
  const bin = path.join(dir, "bin")
  const socket = path.join(dir, "control.sock")
  let handler: ((req: Request) => Promise<Record<string, unknown>>) | undefined
  let onError: ((e: Error) => void) | undefined
  let failed: Error | undefined
  let taken = false
  const server = net.createServer((conn) => {
    let buffered = ""
    conn.setEncoding("utf8")
    conn.on("error", () => {})
    conn.on("data", (data: string) => {
      buffered += data
      for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        let req: Request & { id?: unknown }
        try {
          req = JSON.parse(line)
        } catch {
          conn.write(`${JSON.stringify({ ok: false, error: "not a JSON request" })}\n`)
          continue
        }
        const answer = handler === undefined ? Promise.resolve({ ok: false, error: "no task is running" }) : handler(req)
        void answer.then((res) => {
          if (!conn.destroyed) conn.write(`${JSON.stringify({ id: req.id, ...res })}\n`)
        })
      }
    })
  })
  server.on("error", (e) => (onError !== undefined ? onError(e) : (failed = e)))
  try {
    fs.mkdirSync(bin, { mode: 0o755 })
    fs.writeFileSync(
      path.join(bin, "bmat"),
      `#!/bin/sh\nexec ${command.map(quote).join(" ")} bmat --socket ${quote(socket)} "$@"\n`,
      { mode: 0o755 }
    )
    server.listen(socket)
    fs.chmodSync(socket, 0o600)
    fs.chmodSync(dir, 0o700)
  } catch (e) {
    server.close()
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  return {
    dir,
    bin,
    socket,
    serve: (h, e) => {
      handler = h
      onError = e
      if (failed !== undefined) e(failed)
    },
    take: () => !taken && (taken = true),
    close: Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    }).pipe(Effect.zipRight(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))))
  }
}

/**
 * Opens the control channel of `task` for the scope, on `spare` if given (a channel made ahead,
 * `makeChannel`) and not yet taken, else on a new one; returns the `bin` directory for the task's
 * `PATH` and its environment additions. When the scope closes (the task has ended), the socket
 * goes, and every background process the task started is stopped (SIGTERM, the grace period,
 * SIGKILL), its remaining output sent.
 */
export const open = (ctx: ControlContext, task: Workers.WorkerPingTask, spare?: Channel) =>
  Effect.gen(function*() {
    if (ctx.command === undefined) return undefined
    const command = ctx.command
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runPromise(runtime)
    const asRoot = ctx.identity.uid === 0
    const uid = asRoot ? task.uid : ctx.identity.uid
    const gid = asRoot ? task.gid : ctx.identity.gid

    const background = new Map<string, { readonly pgid: number; readonly readers: Promise<unknown> }>()
    const note = (stream: string, payload: string) => ctx.log.append(task.id, stream, [payload])

    const handle = (req: Request): Effect.Effect<Record<string, unknown>> => {
      switch (req.op) {
        case "store-get":
          return retrying("store get", ctx.api.workerJob.storeGet({ path: { job: ctx.job, name: req.name } })).pipe(
            Effect.map((r): Record<string, unknown> => ({ ok: true, value: r.value ?? null })),
            Effect.catchAll((e) => Effect.succeed({ ok: false, error: describe(e) }))
          )
        case "store-put":
          return retrying(
            "store put",
            ctx.api.workerJob.storePut({ path: { job: ctx.job, name: req.name }, payload: { value: req.value, secret: req.secret } })
          ).pipe(
            Effect.as<Record<string, unknown>>({ ok: true }),
            Effect.catchAll((e) => Effect.succeed({ ok: false, error: describe(e) }))
          )
        case "add-output":
          return addOutput(req.path)
        case "process-start":
          return processStart(req)
        case "metadata":
          return Effect.succeed({ ok: true, metadata: visibleMetadata(ctx.worker.metadata) })
        case "factory-info": {
          const f = ctx.worker.factory
          return Effect.succeed(
            f === undefined
              ? { ok: false, error: "factory info not available: the server has not said which factory made this worker" }
              : { ok: true, factory: { id: f.id, name: f.name, private: f.private ?? null } }
          )
        }
        default:
          return Effect.succeed({ ok: false, error: `unknown request ${JSON.stringify((req as { op?: unknown }).op)}` })
      }
    }

    /** Uploads a file the task names, if the task's user may read it. */
    const addOutput = (real: string) =>
      Effect.gen(function*() {
        if (!path.isAbsolute(real)) return { ok: false, error: `${real} is not an absolute path` }
        const normal = path.resolve(real)
        let jobPath = normal
        if (Root.isMapped(ctx.root)) {
          const rel = path.relative(ctx.root, normal)
          if (rel.startsWith("..") || path.isAbsolute(rel)) {
            return { ok: false, error: `${real} is outside the job's root ${ctx.root}` }
          }
          jobPath = `/${rel.split(path.sep).join("/")}`
        }
        // Root reads anything: check that the task's user may read this file. The kernel checks
        // the path (as the user); the opened file's owner and mode are checked after opening, so
        // that swapping the file in between gains nothing.
        const admit = !asRoot || uid === 0 ? undefined : (fh: fs.promises.FileHandle) =>
          Effect.gen(function*() {
            const ok = yield* Effect.async<boolean>((resume) => {
              const c = spawn("/bin/bash", ["-c", "test -f \"$1\" && test -r \"$1\"", "bmat", normal], {
                uid,
                gid,
                stdio: "ignore",
                env: {}
              })
              c.once("error", () => resume(Effect.succeed(false)))
              c.once("exit", (code) => resume(Effect.succeed(code === 0)))
            })
            const st = yield* Effect.promise(() => fh.stat())
            const readable = (st.uid === uid && (st.mode & 0o400) !== 0) ||
              (st.gid === gid && (st.mode & 0o040) !== 0) || (st.mode & 0o004) !== 0
            return ok && readable ? undefined : `${real}: the task's user (uid ${uid}) may not read it`
          })
        const r = yield* uploadFile({ api: ctx.api, http: ctx.http, job: ctx.job, log: ctx.log, admit }, {
          path: jobPath,
          real: normal,
          relaxed: false
        })
        return r.result === "Uploaded"
          ? { ok: true, path: jobPath, size: r.size, sha256: r.sha256 }
          : { ok: false, error: `uploading ${real} failed (see the job's worker events)` }
      })

    /** Starts a background process in a group of its own, its output on `bg.<name>.*`. */
    const processStart = (req: Extract<Request, { op: "process-start" }>) =>
      Effect.sync(() => {
        if (!BG_NAME.test(req.name)) return { ok: false, error: `process name ${JSON.stringify(req.name)} must be 1-48 of [A-Za-z0-9._-]` }
        if (background.has(req.name)) return { ok: false, error: `this task already started a process named ${req.name}` }
        const child = spawn(req.cmd, [...req.args], {
          cwd: req.cwd,
          env: { ...req.env },
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
          ...(asRoot ? { uid, gid } : {})
        })
        return new Promise<Record<string, unknown>>((resolve) => {
          child.once("error", (e) => resolve({ ok: false, error: `starting ${req.cmd}: ${e.message}` }))
          child.once("spawn", () => {
            const pgid = child.pid!
            ctx.processes.add(pgid)
            const started = Date.now()
            const readers = Promise.all([
              pump(child.stdout!, `bg.${req.name}.stdout`, task.id, ctx.log),
              pump(child.stderr!, `bg.${req.name}.stderr`, task.id, ctx.log)
            ])
            child.once("exit", (code, signal) => {
              void readers.then(() =>
                note(
                  `bg.${req.name}`,
                  `process exited: duration ${Date.now() - started} ms, ${signal === null ? `exit code ${code}` : `signal ${signal}`}`
                )
              )
            })
            background.set(req.name, { pgid, readers })
            note(`bg.${req.name}`, `started process ${req.name} (pid ${pgid}): ${[req.cmd, ...req.args].join(" ")}`)
            resolve({ ok: true, pid: pgid })
          })
        })
      }).pipe(Effect.flatMap((r) => (r instanceof Promise ? Effect.promise(() => r) : Effect.succeed(r))))

    const channel = yield* Effect.acquireRelease(
      Effect.sync(() => (spare !== undefined && spare.take() ? spare : makeChannel(command, ctx.tmpdir))),
      (c) =>
        // Background processes end with their task (buildomat: SIGTERM, then SIGKILL).
        Effect.forEach(background.values(), (b) =>
          ctx.processes.kill(b.pgid).pipe(
            Effect.zipRight(Effect.promise(() => Promise.race([b.readers, new Promise((r) => setTimeout(r, 2000))])))
          ), { concurrency: "unbounded", discard: true }).pipe(Effect.zipRight(c.close))
    )
    channel.serve((req) =>
      run(
        handle(req).pipe(
          Effect.catchAllCause((cause) => Effect.succeed({ ok: false, error: describe(cause) })),
          Effect.catchAllDefect((d) => Effect.succeed({ ok: false, error: String(d) }))
        )
      ), (e) => ctx.log.append(task.id, "worker", [`WARNING: bmat's control socket failed: ${e.message}`]))
    if (asRoot) {
      for (const p of [channel.dir, channel.bin, path.join(channel.bin, "bmat"), channel.socket]) fs.chownSync(p, uid, gid)
    }
    return { bin: channel.bin, env: { [SOCKET_ENV]: channel.socket } }
  }).pipe(
    Effect.catchAllDefect((d) =>
      Effect.sync(() => {
        ctx.log.append(task.id, "worker", [`WARNING: bmat is not available to this task: ${String(d)}`])
        return undefined
      })
    )
  ) satisfies Effect.Effect<unknown, never, Scope.Scope>
