import type { Workers } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { readFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as EventLog from "../src/internal/events.js"
import type { Event } from "../src/internal/events.js"
import * as Processes from "../src/internal/processes.js"
import * as Task from "../src/internal/task.js"

const JOB = "01JCZ0000000000000000000AB"

const makeTask = (script: string, overrides: Partial<Workers.WorkerPingTask> = {}): Workers.WorkerPingTask => ({
  id: 0,
  name: "test task",
  script,
  env_clear: false,
  env: {},
  uid: 0,
  gid: 0,
  workdir: "/",
  ...overrides
})

/** A fresh root directory (world-readable, so that tasks run as another user can enter it). */
const tempRoot = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "agent-task-"))
    await fs.chmod(dir, 0o755)
    return dir
  }),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const run = (task: Workers.WorkerPingTask, root: string, identity?: Task.Identity) =>
  Effect.scoped(Effect.gen(function*() {
    const events: Array<Event> = []
    const log = yield* EventLog.make((batch) =>
      Effect.sync(() => {
        for (const r of batch.runs) {
          for (const payload of r.payloads) {
            events.push({ stream: r.stream, payload, time: r.time, ...(r.task === undefined ? {} : { task: r.task }) })
          }
        }
        return "sent" as const
      })
    )
    const processes = yield* Processes.make(500)
    const result = yield* Task.runTask(task, { jobId: JOB, root, log, processes, identity })
    yield* log.flush
    const on = (stream: string) => events.filter((e) => e.stream === stream).map((e) => e.payload)
    const envOf = () =>
      Object.fromEntries(on("stdout").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]))
    return { result, events, on, envOf }
  }))

describe("runTask", () => {
  it.scopedLive("sends each line on its own stream, trimmed, attributed to the task", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { events, on, result } = yield* run(
        makeTask("echo out one\necho 'err one   ' >&2\necho\nprintf 'out two\\t\\r\\n'\nprintf 'no newline'", {
          id: 4,
          name: "build \"it\"",
          env: {}
        }),
        root
      )
      assert.deepStrictEqual(result, { _tag: "Exited", code: 0 })
      assert.deepStrictEqual(on("stdout"), ["out one", "", "out two", "no newline"])
      assert.deepStrictEqual(on("stderr"), ["err one"])
      assert.isTrue(events.every((e) => e.task === 4))
      assert.strictEqual(events[0]!.stream, "task")
      assert.strictEqual(events[0]!.payload, "starting task 4: \"build \\\"it\\\"\"")
      const last = events[events.length - 1]!
      assert.strictEqual(last.stream, "task")
      assert.match(last.payload, /^process exited: duration \d+ ms, exit code 0$/)
    }))

  it.scopedLive("gives buildomat's default environment, overlaid by the task's, with the root mapped", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { envOf } = yield* run(makeTask("env", { id: 2, env: { TZ: "Europe/Paris", FOO: "bar baz" } }), root)
      const env = envOf()
      assert.strictEqual(env["PATH"], Task.DEFAULT_PATH)
      assert.strictEqual(env["TZ"], "Europe/Paris", "the task's env wins")
      assert.strictEqual(env["FOO"], "bar baz")
      assert.strictEqual(env["LANG"], "C.UTF-8")
      assert.strictEqual(env["LC_ALL"], "C.UTF-8")
      assert.strictEqual(env["BUILDOMAT_JOB_ID"], JOB)
      assert.strictEqual(env["BUILDOMAT_TASK_ID"], "2")
      assert.strictEqual(env["BUILDOMAT_ROOT"], root)
      assert.strictEqual(env["HOME"], path.join(root, "home"))
      assert.isTrue((yield* Effect.promise(() => fs.stat(path.join(root, "home")))).isDirectory())
      assert.strictEqual(env["USER"], os.userInfo().username)
      assert.strictEqual(env["LOGNAME"], os.userInfo().username)
      assert.isUndefined(env["npm_lifecycle_event"], "nothing leaks from the agent's own environment")
    }))

  it.scopedLive("with env_clear, only the task's own variables (and what bash sets itself)", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { envOf } = yield* run(makeTask("env", { env_clear: true, env: { ONLY: "me" } }), root)
      const env = envOf()
      assert.strictEqual(env["ONLY"], "me")
      for (const name of ["PATH", "HOME", "USER", "TZ", "BUILDOMAT_JOB_ID", "BUILDOMAT_TASK_ID", "BUILDOMAT_ROOT"]) {
        assert.isUndefined(env[name], `${name} should not be set`)
      }
    }))

  it.scopedLive("runs in the task's workdir under the root, creating it; the default is the root itself", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const nested = yield* run(makeTask("pwd; touch made-here", { workdir: "/work/deep/dir" }), root)
      assert.deepStrictEqual(nested.on("stdout"), [path.join(root, "work/deep/dir")])
      yield* Effect.promise(() => fs.access(path.join(root, "work/deep/dir/made-here")))
      const dflt = yield* run(makeTask("pwd"), root)
      assert.deepStrictEqual(dflt.on("stdout"), [root])
      const escape = yield* run(makeTask("pwd", { workdir: "/../../.." }), root)
      assert.deepStrictEqual(escape.on("stdout"), [root], "\"..\" cannot climb out of the root")
    }))

  it.scopedLive("reports the exit code of a failing script, which stops where it failed", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { events, on, result } = yield* run(makeTask("set -e\necho before\nfalse\necho never"), root)
      assert.deepStrictEqual(result, { _tag: "Exited", code: 1 })
      assert.isTrue(Task.failed(result))
      assert.deepStrictEqual(on("stdout"), ["before"])
      assert.match(events[events.length - 1]!.payload, /^process exited: duration \d+ ms, exit code 1$/)
      const exit7 = yield* run(makeTask("exit 7"), root)
      assert.deepStrictEqual(exit7.result, { _tag: "Exited", code: 7 })
    }))

  it.scopedLive("a script killed by a signal gets code 2147483647 and a worker warning", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { on, result } = yield* run(makeTask("echo dying\nkill -KILL $$"), root)
      assert.deepStrictEqual(result, { _tag: "Exited", code: Task.SIGNALLED_EXIT_CODE })
      assert.deepStrictEqual(on("stdout"), ["dying"])
      assert.match(on("worker").join("\n"), /killed by signal SIGKILL/)
      assert.match(on("task").at(-1)!, /exit code 2147483647$/)
    }))

  it.scopedLive("when not root: uid/gid 0 is ignored, another uid is refused with a worker error", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const me = { uid: 1234, gid: 1234, user: "builder", home: "/home/builder" }
      const ok = yield* run(makeTask("echo ran"), root, me)
      assert.deepStrictEqual(ok.on("stdout"), ["ran"])
      const refused = yield* run(makeTask("echo ran", { uid: 999 }), root, me)
      assert.strictEqual(refused.result._tag, "NotRun")
      assert.isTrue(Task.failed(refused.result))
      assert.deepStrictEqual(refused.on("stdout"), [])
      assert.match(refused.on("worker").join("\n"), /^ERROR: task 0 asks for uid 999/)
      const own = yield* run(makeTask("echo ran", { uid: 1234, gid: 1234 }), root, me)
      assert.strictEqual(own.result._tag, "Exited")
    }))

  it.scopedLive.skipIf(process.getuid?.() !== 0)("when root, runs the task as its uid/gid", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { on, result } = yield* run(makeTask("id -u; id -g", { uid: 65534, gid: 65534, workdir: "/w" }), root)
      assert.deepStrictEqual(result, { _tag: "Exited", code: 0 })
      assert.deepStrictEqual(on("stdout"), ["65534", "65534"])
    }))

  it.scopedLive("sends output written by a background process that outlives bash", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const { on, result } = yield* run(makeTask("(sleep 0.5; echo late) &\necho early"), root)
      assert.deepStrictEqual(result, { _tag: "Exited", code: 0 })
      assert.deepStrictEqual(on("stdout"), ["early", "late"])
    }))

  it.scopedLive("interrupted, it kills the task's whole process group: SIGTERM, then SIGKILL after the grace period", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const script = [
        "trap '' TERM",
        "(trap '' TERM; exec sleep 300) &",
        "echo $! > bg",
        "sleep 300 &",
        "echo $! > bg2",
        "echo $$ > pid",
        "wait"
      ].join("\n")
      const fiber = yield* Effect.fork(run(makeTask(script), root))
      const file = (f: string) => path.join(root, f)
      for (let i = 0; i < 500; i++) {
        if ((yield* Effect.promise(() => fs.readFile(file("pid"), "utf8").catch(() => ""))).trim() !== "") break
        yield* Effect.sleep("10 millis")
      }
      const pids = yield* Effect.promise(() =>
        Promise.all(["pid", "bg", "bg2"].map(async (f) => Number((await fs.readFile(file(f), "utf8")).trim())))
      )
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0)
          return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
        } catch {
          return false
        }
      }
      assert.deepStrictEqual(pids.map(alive), [true, true, true])
      const t0 = Date.now()
      yield* Fiber.interrupt(fiber)
      const took = Date.now() - t0
      assert.deepStrictEqual(pids.map(alive), [false, false, false])
      assert.isAtLeast(took, 450, "processes that ignore SIGTERM get the grace period, then SIGKILL")
      assert.isBelow(took, 5000)
    }))
})
