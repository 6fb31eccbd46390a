/**
 * The agent as a real process (`src/bin.ts` under tsx, as the bundle runs it), the way a
 * provider starts it: in its own process group, killed as a group.
 */
import type { Workers } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { FakeServer } from "./fixtures/fakeServer.js"
import { makeState, serve } from "./fixtures/fakeServer.js"

const BIN = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

/** Starts the agent; the effect resolves with its exit code. Killed with its group on scope exit. */
const startAgent = (args: Array<string>) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--conditions=@buildomat/source", "--import", "tsx", BIN, ...args], {
          detached: true,
          stdio: ["ignore", "ignore", "pipe"]
        })
      ),
      (c) => Effect.sync(() => {
        if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL")
      })
    )
    let stderr = ""
    child.stderr!.on("data", (d) => (stderr += String(d)))
    const exited = Effect.async<{ code: number | null; stderr: string }>((resume) => {
      child.once("exit", (code) => resume(Effect.succeed({ code, stderr })))
    })
    return { child, exited }
  })

const waitFor = (what: string, condition: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 300 && !condition(); i++) yield* Effect.sleep("100 millis")
    if (!condition()) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

const oneTaskJob = (script: string): Workers.WorkerPingJob => ({
  id: Ids.make(),
  name: "process test",
  tasks: [{ id: 0, name: "t", script, env_clear: false, env: {}, uid: 0, gid: 0, workdir: "/" }],
  output_rules: [],
  inputs: []
})

const started = (s: FakeServer) => s.events.some((e) => e.payload === "starting task 0: \"t\"")

describe("buildomat-agent (process)", () => {
  it.scopedLive("runs a job and exits 0 on power-off; usage errors exit 2", () =>
    Effect.gen(function*() {
      const server = makeState(oneTaskJob("echo from a real agent"))
      const url = yield* serve(server)
      const state = yield* tempDir("agent-state-")
      const root = yield* tempDir("agent-root-")
      const agent = yield* startAgent(["run", "--url", url, "--bootstrap", server.bootstrap, "--state-dir", state, "--root", root])
      const { code } = yield* agent.exited
      assert.strictEqual(code, 0)
      assert.deepStrictEqual(server.jobComplete, { failed: false })
      assert.isTrue(server.events.some((e) => e.stream === "stdout" && e.payload === "from a real agent"))

      const bad = yield* startAgent(["run", "--bootstrap", "x"])
      const usage = yield* bad.exited
      assert.strictEqual(usage.code, 2)
      assert.match(usage.stderr, /--url \(or BUILDOMAT_URL\) is required/)
    }))

  it.scopedLive("killed mid-job and restarted, it reports failure instead of running the job again", () =>
    Effect.gen(function*() {
      const server = makeState(oneTaskJob("echo started; sleep 60"))
      const url = yield* serve(server)
      const state = yield* tempDir("agent-state-")
      const root = yield* tempDir("agent-root-")
      const args = ["run", "--url", url, "--bootstrap", server.bootstrap, "--state-dir", state, "--root", root]
      const first = yield* startAgent(args)
      yield* waitFor("the task to start", () => started(server))
      // As a provider does: kill the agent's process group, which holds the task too.
      process.kill(-first.child.pid!, "SIGKILL")
      yield* first.exited

      const second = yield* startAgent(args)
      const { code } = yield* second.exited
      assert.strictEqual(code, 0)
      assert.deepStrictEqual(server.fails, ["agent restarted during a job"])
      assert.strictEqual(server.events.filter((e) => e.payload === "starting task 0: \"t\"").length, 1)
      assert.isUndefined(server.jobComplete)
    }))
})
