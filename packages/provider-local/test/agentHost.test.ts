/**
 * `agentHost` mode end to end: the real server, the built agent bundle (`npm run build`) as an
 * agent host process, real jobs in bash.
 */
import { Testing } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FiberRef, LogLevel, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

const ADMIN = "agent-host-admin-token-0123456789"

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const task = (name: string, script: string) => ({ name, script, env_clear: false, env: {} })

const start = (dir: string) =>
  Effect.gen(function*() {
    yield* Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Warning)
    return yield* Testing.serve(
      { dataDir: path.join(dir, "data"), adminToken: ADMIN },
      LocalProvider.layer({ scratchRoot: path.join(dir, "workers"), limit: 3, killGraceMs: 500, agentHost: true })
    )
  })

type UserClient = Effect.Effect.Success<ReturnType<typeof Testing.userClient>>["c"]

const finish = (c: UserClient, id: string) =>
  Testing.eventually(
    `job ${id} to finish`,
    Effect.map(c.api.jobs.get({ path: { job: id as any } }), (j) => (j.state === "completed" || j.state === "failed" ? Option.some(j) : Option.none())),
    60_000
  )

/** The agent host processes (`... host`) running in directory `cwd`. */
const hostsIn = (cwd: string) =>
  fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").filter((a) => a !== "")
      return argv[argv.length - 1] === "host" && fs.readlinkSync(`/proc/${p}/cwd`) === cwd
    } catch {
      return false
    }
  }).map(Number)

/** Waits until `task`'s file `name` in the job's root exists, and returns its number. */
const readPid = (dir: string, name: string) =>
  Testing.eventually(`${name} to be written`, Effect.sync(() => {
    const workers = path.join(dir, "workers")
    for (const w of fs.readdirSync(workers).filter((e) => e !== LocalProvider.PROVIDER_DIR)) {
      const file = path.join(workers, w, "root", name)
      if (fs.existsSync(file) && fs.readFileSync(file, "utf8").endsWith("\n")) return Option.some(Number(fs.readFileSync(file, "utf8")))
    }
    return Option.none<number>()
  }), 30_000)

describe("the local provider with agentHost", () => {
  it.scopedLive("runs each job on a fresh worker, every agent in one host process", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { c } = yield* Testing.userClient(url, ADMIN, "hosted")
      const ids = yield* Effect.forEach([1, 2, 3, 4], (n) =>
        Effect.map(
          c.api.jobs.submit({
            payload: { name: `job ${n}`, target: "default", output_rules: [], tasks: [task("hello", `echo "hello ${n} from $HOME"; touch was-here`)] }
          }),
          (r) => r.id
        ))
      const workers = new Set<string>()
      for (const [i, id] of ids.entries()) {
        const job = yield* finish(c, id)
        assert.strictEqual(job.state, "completed")
        const events = yield* c.allEvents(id)
        assert.isTrue(events.some((e) => e.stream === "stdout" && e.payload.startsWith(`hello ${i + 1} from `)))
        workers.add(/^job assigned to worker (\S+)/.exec(events[0]!.payload)![1]!)
      }
      assert.strictEqual(workers.size, 4)
      // One host for the target, whatever the number of workers it ran.
      assert.strictEqual(hostsIn(fs.realpathSync(path.join(dir, "workers"))).length, 1)
      const hostLog = path.join(dir, "workers", LocalProvider.PROVIDER_DIR, "host-default.log")
      assert.isTrue(fs.existsSync(hostLog))
    }))

  it.scopedLive("cancelling a job kills its tasks; a host that dies fails its jobs, and the next job gets a new host", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { c } = yield* Testing.userClient(url, ADMIN, "cancels")
      const long = (name: string) =>
        Effect.map(
          c.api.jobs.submit({
            payload: { name, target: "default", output_rules: [], tasks: [task("sleep", `sleep 300 & echo $! > ${name}.pid\nwait`)] }
          }),
          (r) => r.id
        )

      // Cancel: the task is killed and the worker's directory removed.
      const first = yield* long("first")
      const firstPid = yield* readPid(dir, "first.pid")
      assert.isTrue(pidAlive(firstPid))
      yield* c.api.jobs.cancel({ path: { job: first as any } })
      const cancelled = yield* finish(c, first)
      assert.isTrue(cancelled.cancelled)
      yield* Testing.eventually("the cancelled task to be gone", Effect.sync(() => (pidAlive(firstPid) ? Option.none() : Option.some(true))))

      // The host killed outright (SIGKILL to its group): its agent's task is killed by the
      // watchdog, and the job fails, saying why.
      const second = yield* long("second")
      const secondPid = yield* readPid(dir, "second.pid")
      // Every instance record of a host's agent holds the host's process group.
      const hostPid = yield* Testing.eventually("the host's pid", Effect.sync(() => {
        const workers = path.join(dir, "workers")
        const record = fs.readdirSync(workers).map((w) => path.join(workers, w, "instance.json")).find((f) => fs.existsSync(f))
        return record === undefined ? Option.none() : Option.some(Number(JSON.parse(fs.readFileSync(record, "utf8")).pgid))
      }))
      process.kill(-hostPid, "SIGKILL")
      const failed = yield* finish(c, second)
      assert.strictEqual(failed.state, "failed")
      const events = yield* c.allEvents(second)
      assert.isTrue(events.some((e) => e.stream === "control" && /gone|vanished|no longer/.test(e.payload)), JSON.stringify(events.map((e) => e.payload)))
      yield* Testing.eventually("the orphaned task to be killed", Effect.sync(() => (pidAlive(secondPid) ? Option.none() : Option.some(true))))

      // A new host for the next job.
      const third = yield* c.api.jobs.submit({
        payload: { name: "after", target: "default", output_rules: [], tasks: [task("ok", "echo fine")] }
      })
      assert.strictEqual((yield* finish(c, third.id)).state, "completed")
    }))
})
