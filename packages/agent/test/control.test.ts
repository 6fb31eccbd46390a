/**
 * A task's control channel (`Control.open`) with the real `bmat` bundle run against it, for what
 * the real server never sends: a worker whose factory the agent does not know, and factory info
 * without a private id. (`Agent.test.ts` covers `bmat` against the real server.)
 */
import type { Client, Workers } from "@buildomat/core"
import type { HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { defaultBmatCommand } from "../src/Agent.js"
import * as Control from "../src/internal/control.js"
import * as EventLog from "../src/internal/events.js"
import * as Processes from "../src/internal/processes.js"
import * as Task from "../src/internal/task.js"

const task: Workers.WorkerPingTask = { id: 0, name: "t", script: "", env_clear: false, env: {}, uid: 0, gid: 0, workdir: "/" }

/** Opens a control channel with these facts; runs `bmat ARGS` against it. */
const channel = (worker: Control.WorkerFacts) =>
  Effect.gen(function*() {
    const command = defaultBmatCommand()
    assert.isDefined(command, "bmat needs the agent bundle: npm run build")
    const log = yield* EventLog.make(() => Effect.succeed("sent" as const))
    const processes = yield* Processes.make(500)
    const opened = yield* Control.open({
      // Neither is used by the requests below: they are answered from what the agent knows.
      api: {} as Client.ApiClient,
      http: {} as HttpClient.HttpClient,
      job: "01JCZ0000000000000000000AB" as Control.ControlContext["job"],
      root: "/",
      log,
      processes,
      identity: Task.currentIdentity(),
      tmpdir: os.tmpdir(),
      command,
      worker
    }, task)
    assert.isDefined(opened)
    return (...args: ReadonlyArray<string>) =>
      Effect.promise(() =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          execFile(path.join(opened!.bin, "bmat"), args, { env: { ...process.env, ...opened!.env } }, (e, stdout, stderr) =>
            resolve({ code: e === null ? 0 : Number(e.code), stdout, stderr }))
        })
      )
  })

describe("bmat against a task's control channel", () => {
  it.scopedLive("before the server has said anything: no factory, no metadata", () =>
    Effect.gen(function*() {
      const bmat = yield* channel({ metadata: undefined, factory: undefined })
      for (const what of ["name", "id", "private"]) {
        const r = yield* bmat("factory", what)
        assert.deepStrictEqual(r, {
          code: 1,
          stdout: "",
          stderr: "bmat: factory info not available: the server has not said which factory made this worker\n"
        })
      }
      assert.deepStrictEqual(yield* bmat("address", "ls"), {
        code: 0,
        stdout: "NAME  CIDR  FIRST  LAST  COUNT  ROUTED  GATEWAY\n",
        stderr: ""
      })
      assert.deepStrictEqual(yield* bmat("address", "ls", "-f", "lab"), {
        code: 1,
        stdout: "",
        stderr: "bmat: no IP address range named \"lab\" (this worker has none)\n"
      })
      assert.deepStrictEqual(yield* bmat("eng", "metadata"), { code: 0, stdout: "null\n", stderr: "" })
    }))

  it.scopedLive("factory info without a private id; usage errors", () =>
    Effect.gen(function*() {
      const bmat = yield* channel({
        metadata: { v: "1", addresses: "10.0.0.0/8" },
        factory: { id: "01JCZ00000000000000000FACT", name: "aws", private: null }
      })
      assert.deepStrictEqual(yield* bmat("factory", "name"), { code: 0, stdout: "aws\n", stderr: "" })
      assert.deepStrictEqual(yield* bmat("factory", "id"), { code: 0, stdout: "01JCZ00000000000000000FACT\n", stderr: "" })
      assert.deepStrictEqual(yield* bmat("factory", "private"), {
        code: 1,
        stdout: "",
        stderr: "bmat: the factory's private id for this worker is not known\n"
      })
      assert.deepStrictEqual(yield* bmat("address", "ls", "-H"), {
        code: 0,
        stdout: "",
        stderr: "bmat: WARNING: ignoring IP address range: addresses is not a list\n"
      })
      const extra = yield* bmat("factory", "name", "now")
      assert.strictEqual(extra.code, 2)
      assert.match(extra.stderr, /^bmat: factory name takes no operands\nUsage:/)
      const missing = yield* bmat("address", "ls", "-f")
      assert.strictEqual(missing.code, 2)
      assert.match(missing.stderr, /^bmat: option -f needs a value\n/)
      const unknown = yield* bmat("address", "ls", "-x")
      assert.strictEqual(unknown.code, 2)
      assert.match(unknown.stderr, /^bmat: unknown option -x\n/)
      // `eng` is hidden: not in the usage text.
      assert.notMatch((yield* bmat("--help")).stdout, /eng/)
    }))
})
