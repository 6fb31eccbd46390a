/**
 * Factory metadata and diagnostics (buildomat §3.9). The metadata arrives in the ping and is
 * applied once: root's SSH keys (`root_authorized_keys`, to `/root/.ssh/authorized_keys` under the
 * root) and password hash (`root_password_hash`, into `/etc/shadow` under the root, if present);
 * the illumos items (`dump_to_rpool`, `rpool_disable_sync`) are ignored; `addresses` are only
 * shown to tasks (`bmat address list`). A pre-job
 * diagnostic script runs before the job is taken (a non-zero exit, or failing to start, fails the
 * worker); a post-job one is announced at once (`POST /0/worker/diagnostics/enable`, so that the
 * server keeps the worker), runs after the job, and is reported with
 * `POST /0/worker/diagnostics/complete {hold}` (hold when it exits non-zero). Scripts run as the
 * agent's user with buildomat's default environment, in the root directory; their output goes to
 * the worker events `diag.pre` and `diag.post`. Other failures are only logged.
 *
 * @internal
 */
import type { Client, Workers } from "@buildomat/core"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Deferred, Effect, Exit, FiberId } from "effect"
import type { EventLog } from "./events.js"
import type { Processes } from "./processes.js"
import { describe, retrying } from "./retry.js"
import * as Root from "./root.js"
import { randomAlphanumeric } from "./state.js"
import { currentIdentity, DEFAULT_PATH, pump } from "./task.js"

/** What diagnostics need from the agent. */
export interface DiagnosticsContext {
  readonly api: Client.ApiClient
  readonly root: string
  readonly processes: Processes
  /** The worker's event log (`POST /0/worker/append`). */
  readonly log: EventLog
}

/** Runs a diagnostic script; resolves to its exit code (-1 if it could not start). */
const runScript = (ctx: DiagnosticsContext, script: string, stream: string) =>
  Effect.gen(function*() {
    const identity = currentIdentity()
    const file = path.join(os.tmpdir(), `${randomAlphanumeric(16)}.sh`)
    fs.writeFileSync(file, script.endsWith("\n") ? script : `${script}\n`, { flag: "wx", mode: 0o700 })
    const mapped = Root.isMapped(ctx.root)
    const env: Record<string, string> = {
      HOME: mapped ? path.join(ctx.root, "home") : identity.uid === 0 ? "/root" : identity.home,
      USER: identity.uid === 0 ? "root" : identity.user,
      LOGNAME: identity.uid === 0 ? "root" : identity.user,
      TZ: "UTC",
      PATH: DEFAULT_PATH,
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
      ...(mapped ? { BUILDOMAT_ROOT: ctx.root } : {})
    }
    const ended = Deferred.unsafeMake<number>(FiberId.none)
    return yield* Effect.acquireUseRelease(
      Effect.sync(() => {
        const c = spawn("/bin/bash", [file], { cwd: ctx.root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
        c.once("error", (e) => {
          ctx.log.append(undefined, stream, [`ERROR: could not start the diagnostic script: ${e.message}`])
          Deferred.unsafeDone(ended, Exit.succeed(-1))
        })
        c.once("exit", (code) => Deferred.unsafeDone(ended, Exit.succeed(code ?? -1)))
        if (c.pid !== undefined) ctx.processes.add(c.pid)
        return c
      }),
      (c) =>
        Effect.gen(function*() {
          const readers: Promise<unknown> = c.stdout === null || c.stderr === null ? Promise.resolve() : Promise.all([
            pump(c.stdout, stream, undefined, ctx.log),
            pump(c.stderr, stream, undefined, ctx.log)
          ])
          const code = yield* Deferred.await(ended)
          yield* Effect.promise(() => readers).pipe(Effect.timeoutOption("5 seconds"))
          return code
        }),
      (c) =>
        Effect.gen(function*() {
          if (c.pid !== undefined) yield* ctx.processes.kill(c.pid)
          fs.rmSync(file, { force: true })
        })
    )
  })

/** Writes root's SSH keys and password hash under the root; failures are only logged. */
const applyAccount = (root: string, m: Workers.FactoryMetadata) =>
  Effect.gen(function*() {
    if (m.root_authorized_keys !== undefined && m.root_authorized_keys !== null) {
      const keys = m.root_authorized_keys
      yield* Effect.try(() => {
        const dir = Root.toReal(root, "/root/.ssh")
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
        fs.chmodSync(dir, 0o700)
        fs.writeFileSync(path.join(dir, "authorized_keys"), keys.endsWith("\n") ? keys : `${keys}\n`, { mode: 0o600 })
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`could not write root's authorized keys: ${String(e.error)}`)))
    }
    if (m.root_password_hash !== undefined && m.root_password_hash !== null) {
      const hash = m.root_password_hash
      yield* Effect.try(() => {
        const shadow = Root.toReal(root, "/etc/shadow")
        if (!fs.existsSync(shadow)) return
        const lines = fs.readFileSync(shadow, "utf8").split("\n").map((l) => {
          const f = l.split(":")
          if (f[0] !== "root" || f.length < 2) return l
          f[1] = hash
          return f.join(":")
        })
        fs.writeFileSync(shadow, lines.join("\n"))
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`could not set root's password hash: ${String(e.error)}`)))
    }
  })

/** Makes the diagnostics state of one agent run. */
export const make = (ctx: DiagnosticsContext) => {
  let applied = false
  let post: string | undefined
  let enabled = false
  let preOk = true

  /** Applies metadata once (later calls answer as the first did): `false` if pre-job diagnostics failed. */
  const apply = (m: Workers.FactoryMetadata): Effect.Effect<boolean> =>
    Effect.gen(function*() {
      if (applied) return preOk
      applied = true
      yield* applyAccount(ctx.root, m)
      if (m.post_job_diagnostic_script !== undefined && m.post_job_diagnostic_script !== null) {
        post = m.post_job_diagnostic_script
        enabled = yield* retrying("diagnostics enable", ctx.api.workerDiagnostics.enable()).pipe(
          Effect.as(true),
          Effect.catchAll((e) => Effect.logError(`enabling diagnostics refused: ${describe(e)}`).pipe(Effect.as(false)))
        )
      }
      const pre = m.pre_job_diagnostic_script
      if (pre !== undefined && pre !== null) {
        yield* Effect.logInfo("running the pre-job diagnostic script")
        const code = yield* runScript(ctx, pre, "diag.pre")
        yield* ctx.log.flush
        preOk = code === 0
      }
      return preOk
    })

  /** Runs the post-job diagnostic script, if one was announced, and reports it. */
  const afterJob = (_jobFailed: boolean): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (post === undefined || !enabled) return
      yield* Effect.logInfo("running the post-job diagnostic script")
      const code = yield* runScript(ctx, post, "diag.post")
      yield* ctx.log.flush
      yield* retrying("diagnostics complete", ctx.api.workerDiagnostics.complete({ payload: { hold: code !== 0 } })).pipe(
        Effect.catchAll((e) => Effect.logError(`reporting diagnostics refused: ${describe(e)}`))
      )
    })

  return { apply, afterJob }
}
