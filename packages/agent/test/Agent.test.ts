import type { Workers } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Agent from "../src/Agent.js"
import type { FakeServer } from "./fixtures/fakeServer.js"
import { makeState, serve } from "./fixtures/fakeServer.js"

const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

const task = (id: number, name: string, script: string, workdir = "/work"): Workers.WorkerPingTask => ({
  id,
  name,
  script,
  env_clear: false,
  env: {},
  uid: 0,
  gid: 0,
  workdir
})

const rule = (r: string, flags: Partial<Workers.WorkerPingOutputRule> = {}): Workers.WorkerPingOutputRule => ({
  rule: r,
  ignore: false,
  size_change_ok: false,
  require_match: false,
  ...flags
})

const job = (tasks: Array<Workers.WorkerPingTask>, output_rules: Array<Workers.WorkerPingOutputRule>) => ({
  id: Ids.make(),
  name: "test job",
  tasks,
  output_rules,
  inputs: []
})

/** Runs an agent against `server` until it powers off (or 30 s pass). */
const runAgent = (server: FakeServer) =>
  Effect.gen(function*() {
    const url = yield* serve(server)
    const stateDir = yield* tempDir("agent-state-")
    const root = yield* tempDir("agent-root-")
    yield* Agent.run({ url, bootstrap: server.bootstrap, stateDir, root, pingInterval: "20 millis", busyPingInterval: "100 millis" }).pipe(
      Effect.provide(NodeHttpClient.layerUndici),
      Logger.withMinimumLogLevel(LogLevel.Error),
      Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the agent did not power off") })
    )
    return { stateDir, root }
  })

const payloads = (s: FakeServer, stream: string, t?: number) =>
  s.events.filter((e) => e.stream === stream && (t === undefined || e.task === t)).map((e) => e.payload)

describe("Agent.run", () => {
  it.scopedLive("runs the job: tasks until the first failure, every line, outputs in chunks, completion", () =>
    Effect.gen(function*() {
      const big = 6 * 1024 * 1024 + 5 // two chunks
      const server = makeState(job([
        task(0, "make", `mkdir -p out/sub\necho hello > out/a.txt\nhead -c ${big} /dev/zero > out/big.bin\necho nested > out/sub/n.txt\necho "task $BUILDOMAT_TASK_ID in $PWD"\necho oops >&2`),
        task(1, "fail", "echo second\nexit 3"),
        task(2, "never", "echo must not run")
      ], [rule("/work/out/*.txt"), rule("/work/out/*.bin")]))
      server.refuseBootstraps = 2 // not associated yet: the agent keeps trying
      server.failAppends = 1 // the server hiccups: the batch is sent again
      const { root, stateDir } = yield* runAgent(server)

      assert.strictEqual(server.bootstrapAttempts, 3)
      const agentJson = JSON.parse(yield* Effect.promise(() => fs.readFile(path.join(stateDir, "agent.json"), "utf8")))
      assert.strictEqual(agentJson.token, server.token)
      assert.match(agentJson.token, /^[A-Za-z0-9]{64}$/)
      assert.strictEqual((yield* Effect.promise(() => fs.stat(path.join(stateDir, "agent.json")))).mode & 0o777, 0o600)
      yield* Effect.promise(() => fs.access(path.join(stateDir, "job.json")))

      assert.deepStrictEqual(payloads(server, "stdout", 0), [`task 0 in ${path.join(root, "work")}`])
      assert.deepStrictEqual(payloads(server, "stderr", 0), ["oops"])
      assert.deepStrictEqual(payloads(server, "stdout", 1), ["second"])
      assert.deepStrictEqual(payloads(server, "stdout", 2), [])
      const taskEvents = payloads(server, "task")
      assert.deepStrictEqual(taskEvents.filter((p) => p.startsWith("starting")), [
        "starting task 0: \"make\"",
        "starting task 1: \"fail\""
      ])
      assert.match(taskEvents.at(-1)!, /^process exited: duration \d+ ms, exit code 3$/)
      assert.deepStrictEqual(server.taskCompletes, [{ task: 0, failed: false }, { task: 1, failed: true }])
      assert.deepStrictEqual(server.jobComplete, { failed: true })

      // Each task's events precede its completion; event order survives the failed append.
      assert.isTrue(server.appendAttempts.length >= 2)
      const times = server.events.map((e) => Date.parse(e.time))
      assert.deepStrictEqual(times, [...times].sort((a, b) => a - b))

      assert.deepStrictEqual(payloads(server, "worker"), [
        "found 2 output files",
        "uploading: /work/out/a.txt (6 bytes)",
        "uploaded: /work/out/a.txt",
        `uploading: /work/out/big.bin (${big} bytes)`,
        "uploaded: /work/out/big.bin"
      ])
      assert.deepStrictEqual(server.outputs.map((o) => [o.path, o.size]), [
        ["/work/out/a.txt", 6],
        ["/work/out/big.bin", big]
      ])
      assert.strictEqual(server.outputs[0]!.data.toString(), "hello\n")
      assert.isTrue(server.outputs[1]!.data.every((b) => b === 0))
      assert.strictEqual(server.chunks.size, 3)
    }))

  it.scopedLive("a job whose tasks succeed and whose required outputs exist completes", () =>
    Effect.gen(function*() {
      const server = makeState(job([task(0, "only", "echo built > out.txt")], [rule("/work/*.txt", { require_match: true })]))
      yield* runAgent(server)
      assert.deepStrictEqual(server.jobComplete, { failed: false })
      assert.deepStrictEqual(server.outputs.map((o) => o.path), ["/work/out.txt"])
    }))

  it.scopedLive("fails the job when a required rule matches nothing, or an output is over quota", () =>
    Effect.gen(function*() {
      const server = makeState(job([task(0, "only", "echo 1234567890 > big.txt")], [
        rule("/work/*.txt"),
        rule("/work/*.zip", { require_match: true })
      ]))
      server.maxOutput = 5
      yield* runAgent(server)
      assert.deepStrictEqual(server.taskCompletes, [{ task: 0, failed: false }])
      assert.deepStrictEqual(server.jobComplete, { failed: true })
      assert.deepStrictEqual(server.outputs, [])
      assert.deepStrictEqual(payloads(server, "worker"), [
        "found 1 output files",
        "upload error: /work/big.txt is 11 bytes, more than the 5 bytes an output may be",
        "upload error: rule \"/work/*.zip\" required a match, but was not used"
      ])
    }))

  it.scopedLive("after a restart during a job, reports failure and never runs the job again", () =>
    Effect.gen(function*() {
      const server = makeState(job([task(0, "once", "echo ran")], []))
      const url = yield* serve(server)
      const stateDir = yield* tempDir("agent-state-")
      yield* Effect.promise(() => fs.writeFile(path.join(stateDir, "job.json"), "{}"))
      yield* Agent.run({ url, bootstrap: server.bootstrap, stateDir, pingInterval: "20 millis" }).pipe(
        Effect.provide(NodeHttpClient.layerUndici),
        Logger.withMinimumLogLevel(LogLevel.None),
        Effect.timeout("30 seconds")
      )
      assert.deepStrictEqual(server.fails, ["agent restarted during a job"])
      assert.deepStrictEqual(server.events, [])
      assert.deepStrictEqual(server.taskCompletes, [])
      assert.isUndefined(server.jobComplete)
    }))

  it.scopedLive("a power-off while idle ends the agent", () =>
    Effect.gen(function*() {
      const server = makeState()
      server.poweroff = true
      yield* runAgent(server)
      assert.isAtLeast(server.pings, 1)
      assert.isUndefined(server.jobComplete)
    }))
})
