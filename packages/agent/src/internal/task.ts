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
import * as os from "node:os"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { Deferred, Effect, Exit, Fiber, Option, Stream } from "effect"
import type { Emit } from "./events.js"
import { splitLines } from "./lines.js"
import * as Root from "./root.js"
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

/** The identity of this process. */
export const currentIdentity = (): Identity => {
  const info = os.userInfo()
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
  readonly emit: Emit
  /** Defaults to this process's identity. */
  readonly identity?: Identity | undefined
  /** Where script files are written; defaults to the OS temporary directory. */
  readonly tmpdir?: string | undefined
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

/** Sends every line of `readable` as an event on `stream`; back-pressure comes from `emit`. */
const pump = (readable: Readable, stream: "stdout" | "stderr", task: number, emit: Emit) =>
  splitLines(Stream.fromAsyncIterable(readable as AsyncIterable<Uint8Array>, (e) => e)).pipe(
    Stream.runForEach((line) => emit(stream, line, task)),
    Effect.catchAll((e) => emit("worker", `error reading ${stream} of task ${task}: ${String(e)}`))
  )

/** Runs one task to completion. Never fails: every problem is reported as events. */
export const runTask = (task: Workers.WorkerPingTask, ctx: TaskContext): Effect.Effect<TaskResult> =>
  Effect.scoped(Effect.gen(function*() {
    const { emit, root } = ctx
    const identity = ctx.identity ?? currentIdentity()
    yield* emit("task", `starting task ${task.id}: ${JSON.stringify(task.name)}`, task.id)

    const refusal = checkIdentity(task, identity)
    if (refusal !== undefined) {
      yield* emit("worker", `ERROR: ${refusal}`, task.id)
      return { _tag: "NotRun", reason: refusal } as const
    }

    const isRoot = identity.uid === 0
    const env = environment(task, ctx.jobId, root, identity)
    const cwd = Root.toReal(root, task.workdir === "" ? "/" : task.workdir)
    const prepared = yield* Effect.tryPromise(async () => {
      await fs.mkdir(cwd, { recursive: true })
      if (Root.isMapped(root) && !task.env_clear) await fs.mkdir(path.join(root, "home"), { recursive: true })
    }).pipe(Effect.either)
    if (prepared._tag === "Left") {
      const reason = `could not create the working directory ${task.workdir}: ${String(prepared.left.error)}`
      yield* emit("worker", `ERROR: ${reason}`, task.id)
      return { _tag: "NotRun", reason } as const
    }

    // The script goes to a new file of its own (create-exclusive), removed when the task ends.
    const script = task.script.endsWith("\n") ? task.script : `${task.script}\n`
    const file = path.join(ctx.tmpdir ?? os.tmpdir(), `${randomAlphanumeric(16)}.sh`)
    const written = yield* Effect.acquireRelease(
      Effect.tryPromise(async () => {
        await fs.writeFile(file, script, { flag: "wx", mode: 0o600 })
        if (isRoot && task.uid !== 0) await fs.chown(file, task.uid, task.gid)
      }).pipe(Effect.either),
      () => Effect.promise(() => fs.rm(file, { force: true }))
    )
    if (written._tag === "Left") {
      const reason = `could not write the script file ${file}: ${String(written.left.error)}`
      yield* emit("worker", `ERROR: ${reason}`, task.id)
      return { _tag: "NotRun", reason } as const
    }

    // Not detached: the task stays in the agent's process group, so whoever kills the agent's
    // group (the local provider) kills the tasks with it.
    const ended = yield* Deferred.make<ProcessEnd>()
    const start = Date.now()
    const child = yield* Effect.acquireRelease(
      Effect.sync((): ChildProcess => {
        const c = spawn("/bin/bash", [file], {
          cwd,
          env,
          stdio: ["ignore", "pipe", "pipe"],
          ...(isRoot ? { uid: task.uid, gid: task.gid } : {})
        })
        // Listen at once: a spawn error is emitted on the next tick.
        c.once("exit", (code, signal) => Deferred.unsafeDone(ended, Exit.succeed({ _tag: "Exit", code, signal })))
        c.once("error", (error) => Deferred.unsafeDone(ended, Exit.succeed({ _tag: "Error", error })))
        return c
      }),
      (c) => Effect.sync(() => {
        if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
      })
    )

    if (child.pid === undefined || child.stdout === null || child.stderr === null) {
      const end = yield* Deferred.await(ended)
      const reason = end._tag === "Error" ? end.error.message : "the process did not start"
      yield* emit("agent", `ERROR: exec: ${reason}`, task.id)
      return { _tag: "SpawnFailed", reason } as const
    }

    const readers = yield* Effect.fork(Effect.all([
      pump(child.stdout, "stdout", task.id, emit),
      pump(child.stderr, "stderr", task.id, emit)
    ], { concurrency: 2, discard: true }))

    const end = yield* Deferred.await(ended)
    const duration = Date.now() - start
    let code: number
    if (end._tag === "Error") {
      yield* emit("worker", `WARNING: task ${task.id}: ${end.error.message}`, task.id)
      code = SIGNALLED_EXIT_CODE
    } else if (end.code === null) {
      yield* emit("worker", `WARNING: task ${task.id} was killed by signal ${end.signal ?? "unknown"}`, task.id)
      code = SIGNALLED_EXIT_CODE
    } else {
      code = end.code
    }

    // A background process started by the script may hold stdout/stderr open after bash exits;
    // wait a while for the rest of the output, but not forever (buildomat: 5 s, then 60 s).
    if (Option.isNone(yield* Fiber.await(readers).pipe(Effect.timeoutOption("5 seconds")))) {
      yield* emit(
        "worker",
        `WARNING: task ${task.id} exited but its stdout/stderr are still open (a background process?); waiting up to 60 s`,
        task.id
      )
      if (Option.isNone(yield* Fiber.await(readers).pipe(Effect.timeoutOption("60 seconds")))) {
        yield* emit("worker", `WARNING: task ${task.id}: gave up waiting for stdout/stderr to close`, task.id)
        yield* Fiber.interruptFork(readers)
      }
    }

    yield* emit("task", `process exited: duration ${duration} ms, exit code ${code}`, task.id)
    return { _tag: "Exited", code } as const
  }))
