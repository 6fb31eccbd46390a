/**
 * Running one task (buildomat §3.4): a bash script, in its own process, with a controlled
 * environment and working directory, its output sent line by line as events.
 *
 * @internal
 */
import type { Workers } from "@buildomat/core"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as fsSync from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { Deferred, Effect, Exit, FiberId, Option } from "effect"
import type { EventLog } from "./events.js"
import { LineSplitter } from "./lines.js"
import { groupAlive, type Processes } from "./processes.js"
import * as Root from "./root.js"
import type { SpareFile } from "./spare.js"
import { randomAlphanumeric } from "./state.js"

/** The `PATH` tasks get unless `env_clear`: buildomat's, with `/usr/local` first. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/ooce/bin:/opt/ooce/sbin"

/** The exit code reported for a process killed by a signal (buildomat: `i32::MAX`). */
export const SIGNALLED_EXIT_CODE = 2147483647

/** Who the agent runs as. */
export interface Identity {
  readonly uid: number
  readonly gid: number
  readonly user: string
  readonly home: string
}

let userInfo: os.UserInfo<string> | undefined

/** The identity of this process (the user database is read once). */
export const currentIdentity = (): Identity => {
  const info = userInfo ??= os.userInfo()
  return {
    uid: process.getuid?.() ?? info.uid,
    gid: process.getgid?.() ?? info.gid,
    user: info.username,
    home: process.env["HOME"] ?? info.homedir
  }
}

/** What a task needs from the job around it. */
export interface TaskContext {
  readonly jobId: string
  /** The real directory the job's `/` maps to (absolute, normalised). */
  readonly root: string
  /** Where the task's events go. */
  readonly log: EventLog
  /** The registry its process group joins, so that it is killed however the agent ends. */
  readonly processes: Processes
  /** Defaults to this process's identity. */
  readonly identity?: Identity | undefined
  /** Where script files are written; defaults to the OS temporary directory. */
  readonly tmpdir?: string | undefined
  /**
   * Sets up the task's `bmat` control channel (see `control.ts`) once its identity is known, for
   * the scope of the task; returns a directory to put first on the task's `PATH`, and variables
   * to add to its environment.
   */
  readonly control?: ((task: Workers.WorkerPingTask) => Effect.Effect<
    { readonly bin: string; readonly env: Readonly<Record<string, string>> } | undefined,
    never,
    import("effect").Scope.Scope
  >) | undefined
  /** Runs once the task's process has started (while it runs). */
  readonly afterSpawn?: Effect.Effect<void> | undefined
  /** An empty script file made ahead (in `tmpdir`), used if not yet taken. */
  readonly spareScript?: SpareFile | undefined
}

/**
 * How a task ended.
 * - `Exited`: the script ran; it failed if `code` is not 0.
 * - `NotRun`: the agent refused or could not prepare it (reported as a failed task).
 * - `SpawnFailed`: bash could not be started; as in buildomat the task is left unreported and the
 *   job fails.
 */
export type TaskResult =
  | { readonly _tag: "Exited"; readonly code: number }
  | { readonly _tag: "NotRun"; readonly reason: string }
  | { readonly _tag: "SpawnFailed"; readonly reason: string }

/** Whether the task counts as failed. */
export const failed = (result: TaskResult): boolean => result._tag !== "Exited" || result.code !== 0

/**
 * The task's environment: empty, then (unless `env_clear`) buildomat's defaults, then the task's
 * own `env`, which wins. When the job's `/` is mapped, `HOME` is `<root>/home` and
 * `BUILDOMAT_ROOT` names the real root.
 */
export const environment = (
  task: Workers.WorkerPingTask,
  jobId: string,
  root: string,
  identity: Identity
): Record<string, string> => {
  const env: Record<string, string> = {}
  if (!task.env_clear) {
    const mapped = Root.isMapped(root)
    const isRoot = identity.uid === 0
    env["HOME"] = mapped ? path.join(root, "home") : isRoot ? "/root" : identity.home
    env["USER"] = isRoot ? "root" : identity.user
    env["LOGNAME"] = env["USER"]
    env["TZ"] = "UTC"
    env["PATH"] = DEFAULT_PATH
    // buildomat sets en_US.UTF-8 (always present on its illumos images); C.UTF-8 is the UTF-8
    // locale every glibc and musl system has, so bash never warns that it cannot set it.
    env["LANG"] = "C.UTF-8"
    env["LC_ALL"] = "C.UTF-8"
    env["BUILDOMAT_JOB_ID"] = jobId
    env["BUILDOMAT_TASK_ID"] = String(task.id)
    if (mapped) env["BUILDOMAT_ROOT"] = root
  }
  return Object.assign(env, task.env)
}

/**
 * Whether the agent can run the task as the uid/gid it asks for. As root it can be anyone. As
 * another user, 0 (the wire default) means "whoever the agent is"; anything else must be the
 * agent's own id.
 */
const checkIdentity = (task: Workers.WorkerPingTask, identity: Identity): string | undefined => {
  if (identity.uid === 0) return undefined
  if (task.uid !== 0 && task.uid !== identity.uid) {
    return `task ${task.id} asks for uid ${task.uid}, but the agent runs as uid ${identity.uid}, not root`
  }
  if (task.gid !== 0 && task.gid !== identity.gid) {
    return `task ${task.id} asks for gid ${task.gid}, but the agent runs as gid ${identity.gid}, not root`
  }
  return undefined
}

type ProcessEnd =
  | { readonly _tag: "Exit"; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly _tag: "Error"; readonly error: Error }

/**
 * Reads `readable` line by line into the log as runs, one run per chunk read (the lines of one
 * read share its time). Pauses while the log's spool is over its limit. Resolves at end of file.
 */
export const pump = (readable: Readable, stream: string, task: number | undefined, log: EventLog): Promise<void> =>
  new Promise<void>((resolve) => {
    const splitter = new LineSplitter()
    const onData = (chunk: Buffer) => {
      const lines = splitter.push(chunk)
      if (lines.length > 0) log.append(task, stream, lines)
      if (log.overloaded()) {
        readable.pause()
        Effect.runPromise(log.waitRoom).then(() => readable.resume(), () => readable.resume())
      }
    }
    const finish = () => {
      readable.off("data", onData)
      const rest = splitter.end()
      if (rest.length > 0) log.append(task, stream, rest)
      resolve()
    }
    readable.on("data", onData)
    readable.once("end", finish)
    readable.once("error", (e) => {
      log.append(undefined, "worker", [`error reading ${stream} of task ${task ?? "-"}: ${String(e)}`])
      finish()
    })
    readable.once("close", finish)
  })

/** Waits for a promise, giving up (`None`) after `ms`. */
const within = <A>(p: Promise<A>, ms: number) =>
  Effect.promise(() => p).pipe(Effect.timeoutOption(ms))

/**
 * Runs one task to completion, as buildomat §3.4: the script in a file of its own, run by
 * `/bin/bash` in a new process group (so that it can be killed whole), with stdin from
 * `/dev/null`, in its working directory under the root, as its uid/gid when the agent is root.
 * Never fails: every problem is reported as events. Interrupting it kills the task's whole
 * process group (SIGTERM, the grace period, SIGKILL). Background processes the script leaves
 * running are left to the job (which kills them once its tasks end).
 */
export const runTask = (task: Workers.WorkerPingTask, ctx: TaskContext): Effect.Effect<TaskResult> =>
  Effect.scoped(Effect.gen(function*() {
    const { log, root } = ctx
    const note = (stream: string, payload: string) => log.append(task.id, stream, [payload])
    const identity = ctx.identity ?? currentIdentity()
    // Said right before bash starts (or before why it cannot): the event's time is the task's start.
    const starting = () => note("task", `starting task ${task.id}: ${JSON.stringify(task.name)}`)

    const refusal = checkIdentity(task, identity)
    if (refusal !== undefined) {
      starting()
      note("worker", `ERROR: ${refusal}`)
      return { _tag: "NotRun", reason: refusal } as const
    }

    const isRoot = identity.uid === 0
    const env = environment(task, ctx.jobId, root, identity)
    const cwd = Root.toReal(root, task.workdir === "" ? "/" : task.workdir)
    const tmpdir = ctx.tmpdir ?? os.tmpdir()
    const spare = ctx.spareScript?.take()
    const file = spare !== undefined ? ctx.spareScript!.path : path.join(tmpdir, `${randomAlphanumeric(16)}.sh`)
    const script = task.script.endsWith("\n") ? task.script : `${task.script}\n`
    // The working directory and the script file (create-exclusive, or made ahead; removed with
    // the task). Synchronous: nothing else gets to run before the spawn.
    const prepared = yield* Effect.acquireRelease(
      Effect.try(() => {
        fsSync.mkdirSync(cwd, { recursive: true })
        if (Root.isMapped(root) && !task.env_clear) fsSync.mkdirSync(path.join(root, "home"), { recursive: true })
        if (spare !== undefined) {
          try {
            fsSync.writeFileSync(spare, script)
          } finally {
            fsSync.closeSync(spare)
          }
        } else {
          fsSync.writeFileSync(file, script, { flag: "wx", mode: 0o600 })
        }
        if (isRoot && task.uid !== 0) fsSync.chownSync(file, task.uid, task.gid)
      }).pipe(Effect.either),
      () => Effect.promise(() => fs.rm(file, { force: true }))
    )
    if (prepared._tag === "Left") {
      const reason = `could not prepare the task (working directory ${task.workdir}, script ${file}): ${String(prepared.left.error)}`
      starting()
      note("worker", `ERROR: ${reason}`)
      return { _tag: "NotRun", reason } as const
    }
    const control = ctx.control === undefined ? undefined : yield* ctx.control(task)
    if (control !== undefined) {
      Object.assign(env, control.env)
      if (!task.env_clear) env["PATH"] = `${control.bin}:${env["PATH"] ?? DEFAULT_PATH}`
    }

    // Its own process group (detached), so that cancelling it reaches every process it started.
    const ended = Deferred.unsafeMake<ProcessEnd>(FiberId.none)
    const start = Date.now()
    starting()
    const child = yield* Effect.acquireRelease(
      Effect.sync((): ChildProcess => {
        const c = spawn("/bin/bash", [file], {
          cwd,
          env,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
          ...(isRoot ? { uid: task.uid, gid: task.gid } : {})
        })
        // Listen at once: a spawn error is emitted on the next tick.
        c.once("exit", (code, signal) => Deferred.unsafeDone(ended, Exit.succeed({ _tag: "Exit", code, signal })))
        c.once("error", (error) => Deferred.unsafeDone(ended, Exit.succeed({ _tag: "Error", error })))
        if (c.pid !== undefined) ctx.processes.add(c.pid)
        return c
      }),
      (c, exit) =>
        // Interrupted (cancel, power-off, the agent stopping): kill the whole group.
        c.pid !== undefined && Exit.isInterrupted(exit) ? ctx.processes.kill(c.pid) : Effect.void
    )

    if (child.pid === undefined || child.stdout === null || child.stderr === null) {
      const end = yield* Deferred.await(ended)
      const reason = end._tag === "Error" ? end.error.message : "the process did not start"
      note("agent", `ERROR: exec: ${reason}`)
      return { _tag: "SpawnFailed", reason } as const
    }

    const readers = Promise.all([
      pump(child.stdout, "stdout", task.id, log),
      pump(child.stderr, "stderr", task.id, log)
    ])
    if (ctx.afterSpawn !== undefined) yield* ctx.afterSpawn

    const end = yield* Deferred.await(ended)
    const duration = Date.now() - start
    let code: number
    if (end._tag === "Error") {
      note("worker", `WARNING: task ${task.id}: ${end.error.message}`)
      code = SIGNALLED_EXIT_CODE
    } else if (end.code === null) {
      note("worker", `WARNING: task ${task.id} was killed by signal ${end.signal ?? "unknown"}`)
      code = SIGNALLED_EXIT_CODE
    } else {
      code = end.code
    }

    // A background process started by the script may hold stdout/stderr open after bash exits;
    // wait a while for the rest of the output, but not forever (buildomat: 5 s, then 60 s).
    if (Option.isNone(yield* within(readers, 5_000))) {
      note(
        "worker",
        `WARNING: task ${task.id} exited but its stdout/stderr are still open (a background process?); waiting up to 60 s`
      )
      if (Option.isNone(yield* within(readers, 60_000))) {
        note("worker", `WARNING: task ${task.id}: gave up waiting for stdout/stderr to close`)
        child.stdout.destroy()
        child.stderr.destroy()
      }
    }

    note("task", `process exited: duration ${duration} ms, exit code ${code}`)
    // An empty group is forgotten at once, before its number can be reused.
    if (!groupAlive(child.pid)) ctx.processes.remove(child.pid)
    return { _tag: "Exited", code } as const
  }))
