/**
 * The agent as a real process (`src/bin.ts` under tsx, as the bundle runs it) against the real
 * core server, started the way a provider starts it: in its own process group, killed as a group.
 */
import type { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { Machine } from "./fixtures/server.js"
import { ADMIN, allEvents, destroyedCount, finish, jobSubmit, startServer } from "./fixtures/server.js"

const BIN = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

interface AgentProcess {
  readonly child: ChildProcess
  /** Resolves with the exit code (null when killed by a signal) and what it wrote to stderr. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly stderr: string }>
}

/** Starts the agent in its own process group; the group is killed when the scope closes. */
const startAgent = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--conditions=@buildomat/source", "--import", "tsx", BIN, ...args], {
          detached: true,
          stdio: ["ignore", "ignore", "pipe"],
          env
        })
      ),
      (c) =>
        Effect.sync(() => {
          if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL")
        })
    )
    let stderr = ""
    child.stderr!.on("data", (d) => (stderr += String(d)))
    const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
      child.once("exit", (code) => resolve({ code, stderr }))
    )
    return { child, exited: Effect.promise(() => done) } satisfies AgentProcess
  })

interface Launched extends AgentProcess {
  readonly request: WorkerProvider.CreateWorkerRequest
  /** The agent's `HOME`, whose `.bashrc` leaves `bashrc-ran` there if a shell ever reads it. */
  readonly home: string
  readonly args: ReadonlyArray<string>
  readonly kill: Machine["kill"]
}

/** The provider's machine: an agent process with its own state and root directories. */
const launch = (request: WorkerProvider.CreateWorkerRequest) =>
  Effect.gen(function*() {
    const state = yield* Testing.tempDirectory("agent-state-")
    const root = yield* Testing.tempDirectory("agent-root-")
    const home = yield* Testing.tempDirectory("agent-home-")
    fs.writeFileSync(path.join(home, ".bashrc"), `echo "$$" >> "${path.join(home, "bashrc-ran")}"\n`)
    const args = ["run", "--url", request.url, "--bootstrap", request.bootstrap, "--state-dir", state, "--root", root]
    // As a provider starts it: no SHLVL (bash then counts as a top-level shell).
    const { SHLVL: _, ...env } = process.env
    const agent = yield* startAgent(args, { ...env, HOME: home })
    return {
      ...agent,
      request,
      home,
      args,
      kill: Effect.sync(() => process.kill(-agent.child.pid!, "SIGKILL"))
    } satisfies Launched
  })

describe("buildomat-agent (process) against the real server", () => {
  it.scopedLive("runs a job and exits 0 on power-off, its own shells never reading ~/.bashrc; usage errors exit 2", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ launch })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "erin")
      const { id } = yield* c.api.jobs.submit({ payload: jobSubmit([{ name: "t", script: "echo from a real agent" }]) })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(
        events.filter((e) => e.stream === "stdout").map((e) => [e.task, e.payload]),
        [[0, "from a real agent"]]
      )
      const { code } = yield* agent.exited.pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(code, 0)
      // No shell of the agent's own (its watchdog) read the agent user's ~/.bashrc.
      assert.isFalse(fs.existsSync(path.join(agent.home, "bashrc-ran")), "a shell of the agent read ~/.bashrc")
      yield* destroyedCount(server)
      assert.isFalse(server.destroyed[0]!.killed)

      const bad = yield* startAgent(["run", "--bootstrap", "x"])
      const unknown = yield* startAgent(["walk", "--url", server.url, "--bootstrap", "x", "--state-dir", "/tmp"])
      const [noUrl, noCommand] = yield* Effect.all([bad.exited, unknown.exited], { concurrency: 2 })
      assert.strictEqual(noUrl.code, 2)
      assert.match(noUrl.stderr, /--url \(or BUILDOMAT_URL\) is required/)
      assert.strictEqual(noCommand.code, 2)
      assert.match(noCommand.stderr, /unknown command "walk"/)
    }))

  it.scopedLive("killed mid-job and restarted, it reports failure instead of running the job again", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ launch })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "frank")
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([{ name: "t", script: "echo $$ > task.pid; echo started; sleep 60", workdir: "/work" }])
      })
      const first = yield* Queue.take(server.launched)
      let seen: ReadonlyArray<{ stream: string; payload: string }> = []
      yield* Effect.gen(function*() {
        seen = yield* allEvents(c, id)
      }).pipe(
        Effect.repeat({ until: () => seen.some((e) => e.stream === "stdout" && e.payload === "started") }),
        Effect.timeout("30 seconds")
      )
      // As a provider might: SIGKILL the agent's process group. The task runs in a group of its
      // own, but the agent's watchdog sees the agent die and kills it.
      const root = first.args[first.args.indexOf("--root") + 1]!
      const taskPid = Number(fs.readFileSync(path.join(root, "work/task.pid"), "utf8"))
      assert.isTrue(alive(taskPid))
      process.kill(-first.child.pid!, "SIGKILL")
      yield* first.exited
      for (let i = 0; i < 100 && alive(taskPid); i++) yield* Effect.sleep("50 millis")
      assert.isFalse(alive(taskPid), "the task did not outlive its agent")

      const second = yield* startAgent(first.args)
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      assert.deepStrictEqual(job.tasks.map((t) => t.state), ["failed"])
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(events.slice(1).map((e) => [e.task ?? null, e.stream, e.payload]), [
        [0, "task", "starting task 0: \"t\""],
        [0, "stdout", "started"],
        [null, "control", "worker agent experienced a fatal error; aborting job"],
        [null, "control", "task 0 was incomplete, marked failed"]
      ])
      // The worker is held for an operator to look at, so it is not destroyed, and the agent
      // stays up, pinging, without running anything.
      yield* Effect.sleep("500 millis")
      assert.strictEqual((yield* allEvents(c, id)).length, events.length)
      assert.isNull(second.child.exitCode)
      assert.deepStrictEqual(server.destroyed, [])
    }))
})

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}
