/**
 * `Agent.run` in-process against the real core server (SQLite, HTTP on loopback, its scheduler
 * and provisioning loops), with real bash tasks. The test's worker provider starts an agent for
 * each worker the server asks for; what is asserted is what a user sees through the API.
 */
import type { WorkerProvider } from "@buildomat/core"
import { Database, Testing } from "@buildomat/core/server"
import { SqlClient } from "@effect/sql"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, LogLevel, Queue, Schedule } from "effect"
import * as Crypto from "node:crypto"
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Agent from "../src/Agent.js"
import type { Machine, Proxy } from "./fixtures/server.js"
import {
  ADMIN,
  allEvents,
  destroyedCount,
  finish,
  jobId,
  jobSubmit,
  startProxy,
  startServer,
  statuses,
  waitUntil
} from "./fixtures/server.js"

interface InProcessAgent extends Machine {
  readonly request: WorkerProvider.CreateWorkerRequest
  readonly stateDir: string
  readonly root: string
  readonly fiber: Fiber.RuntimeFiber<void, Agent.AgentError>
}

/** Launches `Agent.run` for a worker, talking to `url()` (a proxy) or else the server itself. */
const inProcess = (url: () => string | undefined = () => undefined) =>
(request: WorkerProvider.CreateWorkerRequest) =>
  Effect.gen(function*() {
    const stateDir = yield* Testing.tempDirectory("agent-state-")
    const root = yield* Testing.tempDirectory("agent-root-")
    const fiber = yield* Agent.run({
      url: url() ?? request.url,
      bootstrap: request.bootstrap,
      stateDir,
      root,
      waitMillis: 5_000
    }).pipe(
      Effect.provide(NodeHttpClient.layerUndici),
      Logger.withMinimumLogLevel(LogLevel.None),
      Effect.forkScoped
    )
    return { request, stateDir, root, fiber, exited: Fiber.await(fiber), kill: Fiber.interrupt(fiber) } satisfies InProcessAgent
  })

/** The agent's own end: it must power off by itself, not be killed. */
const agentEnd = (agent: InProcessAgent) =>
  Fiber.await(agent.fiber).pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the agent did not power off") }),
    Effect.orDie
  )

const sha256 = (data: Buffer | string) => Crypto.createHash("sha256").update(data).digest("hex")

/** [task, stream, payload] of events, with durations blanked. */
const shape = (events: ReadonlyArray<{ task?: number | null | undefined; stream: string; payload: string }>) =>
  events.map((e) => [e.task ?? null, e.stream, e.payload.replace(/duration \d+ ms/, "duration N ms")])

describe("Agent.run against the real server", () => {
  it.scopedLive("runs the job: tasks until the first failure, every line, outputs in parts, completion", () =>
    Effect.gen(function*() {
      let proxy: Proxy | undefined
      const server = yield* startServer({
        launch: inProcess(() => proxy?.url),
        // The machine is up before the server has recorded it: the agent's first bootstraps
        // are refused, and it must keep trying.
        beforeAssociate: waitUntil(
          "a refused bootstrap",
          () => statuses(proxy!, /^\/0\/worker\/bootstrap$/).includes(401)
        )
      })
      // The server hiccups on appends: a 500, a cut connection, a 503, and an answer lost after
      // the server stored the batch. Each batch is sent again; the server stores it once.
      proxy = yield* startProxy(server.url, { appendFaults: [500, "drop", 503, "lose-answer"] })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "alice")

      const big = 6 * 1024 * 1024 + 5 // one part
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([
          {
            name: "make",
            script: [
              "mkdir -p out/sub",
              "echo hello > out/a.txt",
              `head -c ${big} /dev/zero > out/big.bin`,
              "echo nested > out/sub/n.txt",
              "echo \"task $BUILDOMAT_TASK_ID in $PWD\"",
              "sleep 0.2",
              "echo oops >&2",
              "sleep 0.2",
              "seq 1 350"
            ].join("\n"),
            workdir: "/work"
          },
          { name: "fail", script: "echo second\nexit 3", workdir: "/work" },
          { name: "never", script: "echo must not run", workdir: "/work" }
        ], ["/work/out/*.txt", "/work/out/*.bin"])
      })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)

      assert.strictEqual(job.state, "failed")
      assert.deepStrictEqual(job.tasks.map((t) => t.state), ["completed", "failed", "failed"])

      // Bootstrap: refused until the worker was associated, then accepted once, with the token
      // the agent keeps in its state directory (mode 0600).
      const boots = proxy.log.filter((e) => e.path === "/0/worker/bootstrap")
      assert.isAtLeast(boots.length, 2)
      assert.deepStrictEqual(boots.map((e) => e.status), [...boots.slice(1).map(() => 401), 201])
      const agentJson = JSON.parse(yield* Effect.promise(() => fs.readFile(path.join(agent.stateDir, "agent.json"), "utf8")))
      assert.match(agentJson.token, /^[A-Za-z0-9]{64}$/)
      for (const b of boots) {
        assert.deepStrictEqual(JSON.parse(b.body!), { bootstrap: agent.request.bootstrap, token: agentJson.token })
      }
      assert.strictEqual((yield* Effect.promise(() => fs.stat(path.join(agent.stateDir, "agent.json")))).mode & 0o777, 0o600)
      // The restart guard: the job as the ping gave it, mode 0600, and no second name left.
      const guard = path.join(agent.stateDir, "job.json")
      assert.strictEqual(JSON.parse(yield* Effect.promise(() => fs.readFile(guard, "utf8"))).job.id, id)
      assert.strictEqual((yield* Effect.promise(() => fs.stat(guard))).mode & 0o777, 0o600)
      assert.deepStrictEqual(fsSync.readdirSync(agent.stateDir).filter((f) => f.startsWith("job.json")), ["job.json"])

      // Every event once, in order, despite the failed appends.
      const appends = statuses(proxy, /^\/ext\/0\/worker\/job\/[^/]+\/append$/)
      assert.deepStrictEqual(appends.slice(0, 4), [500, "dropped", 503, "lost"])
      assert.isTrue(appends.slice(4).every((s) => s === 200), JSON.stringify(appends))
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
      assert.match(events[0]!.payload, new RegExp(`^job assigned to worker ${agent.request.worker} \\[factory test, test-`))
      assert.deepStrictEqual(shape(events.slice(1)), [
        [0, "task", "starting task 0: \"make\""],
        [0, "stdout", `task 0 in ${path.join(agent.root, "work")}`],
        [0, "stderr", "oops"],
        ...Array.from({ length: 350 }, (_, i) => [0, "stdout", String(i + 1)]),
        [0, "task", "process exited: duration N ms, exit code 0"],
        [1, "task", "starting task 1: \"fail\""],
        [1, "stdout", "second"],
        [1, "task", "process exited: duration N ms, exit code 3"],
        [null, "worker", "found 2 output files"],
        [null, "worker", "uploading: /work/out/a.txt (6 bytes)"],
        [null, "worker", "uploaded: /work/out/a.txt"],
        [null, "worker", `uploading: /work/out/big.bin (${big} bytes)`],
        [null, "worker", "uploaded: /work/out/big.bin"],
        [null, "control", "task 2 was incomplete, marked failed"]
      ])
      // The agent's clock, as it produced each line, never goes backwards.
      const remote = events.slice(1, -1).map((e) => Date.parse(e.time_remote!))
      assert.deepStrictEqual(remote, [...remote].sort((a, b) => a - b))

      // Outputs: in parts of at most 8 MiB, stored with their size and SHA-256.
      const parts = proxy.log.filter((e) => e.method === "PUT" && /^\/ext\/0\/worker\/job\/[^/]+\/upload\//.test(e.path))
      assert.deepStrictEqual(parts.map((e) => [e.size, e.status]), [[6, 200], [big, 200]])
      const digests = yield* c.api.jobs.outputDigests({ path: { job: jobId(id) } })
      assert.deepStrictEqual(digests.map((o) => [o.path, o.size, o.sha256]), [
        ["/work/out/a.txt", 6, sha256("hello\n")],
        ["/work/out/big.bin", big, sha256(Buffer.alloc(big))]
      ])

      // The worker is recycled: the agent powers off by itself and the machine is destroyed.
      assert.isTrue(Exit.isSuccess(yield* agentEnd(agent)))
      yield* destroyedCount(server)
      assert.deepStrictEqual(server.destroyed, [{ instanceId: `test-${agent.request.worker}`, worker: agent.request.worker, killed: false }])
    }))

  it.scopedLive("a job whose tasks succeed and whose required outputs exist completes", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ launch: inProcess() })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "bob")
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([{ name: "only", script: "echo built > out.txt", workdir: "/work" }], ["=/work/*.txt"])
      })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      assert.deepStrictEqual(job.tasks.map((t) => t.state), ["completed"])
      const digests = yield* c.api.jobs.outputDigests({ path: { job: jobId(id) } })
      assert.deepStrictEqual(digests.map((o) => [o.path, o.size, o.sha256]), [["/work/out.txt", 6, sha256("built\n")]])
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(shape(events.filter((e) => e.stream === "worker")), [
        [null, "worker", "found 1 output files"],
        [null, "worker", "uploading: /work/out.txt (6 bytes)"],
        [null, "worker", "uploaded: /work/out.txt"]
      ])
      assert.isTrue(Exit.isSuccess(yield* agentEnd(agent)))
      yield* destroyedCount(server)
      assert.isFalse(server.destroyed[0]!.killed)
    }))

  it.scopedLive("fails the job when a required rule matches nothing, or an output is over quota", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ launch: inProcess(), maxBytesPerFile: 5 })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "carol")
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([{ name: "only", script: "echo 1234567890 > big.txt", workdir: "/work" }], [
          "/work/*.txt",
          "=/work/*.zip"
        ])
      })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      assert.deepStrictEqual(job.tasks.map((t) => t.state), ["completed"])
      assert.deepStrictEqual(yield* c.api.jobs.outputs({ path: { job: jobId(id) } }), [])
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(shape(events.filter((e) => e.stream === "worker")), [
        [null, "worker", "found 1 output files"],
        [null, "worker", "upload error: /work/big.txt is 11 bytes, more than the 5 bytes an output may be"],
        [null, "worker", "upload error: rule \"/work/*.zip\" required a match, but was not used"]
      ])
      assert.isTrue(Exit.isSuccess(yield* agentEnd(agent)))
    }))

  it.scopedLive("a job cancelled before the agent picks it up: the agent powers off without running it", () =>
    Effect.gen(function*() {
      // The agent's first ping is held on the way (a slow network) while the user cancels.
      const release = yield* Deferred.make<void>()
      let pings = 0
      let proxy: Proxy | undefined
      const server = yield* startServer({ launch: inProcess(() => proxy?.url) })
      proxy = yield* startProxy(server.url, {
        gate: (method, p) =>
          method === "GET" && p.startsWith("/ext/0/worker/ping") && pings++ === 0
            ? Effect.runPromise(Deferred.await(release))
            : undefined
      })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "dave")
      const { id } = yield* c.api.jobs.submit({ payload: jobSubmit([{ name: "t", script: "echo must not run" }]) })
      const agent = yield* Queue.take(server.launched)
      yield* waitUntil("the first ping", () => pings > 0)
      // The scheduler assigns the job to the worker once it has bootstrapped.
      yield* c.api.jobs.get({ path: { job: jobId(id) } }).pipe(
        Effect.repeat({ until: (j) => j.state === "running", schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("10 seconds")
      )
      yield* c.api.jobs.cancel({ path: { job: jobId(id) } })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      yield* Deferred.succeed(release, undefined)

      assert.isTrue(Exit.isSuccess(yield* agentEnd(agent)))
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(events.map((e) => [e.stream, e.payload.replace(/ .*/, "")]), [
        ["control", "job"],
        ["control", "job"]
      ])
      assert.strictEqual(events[1]!.payload, "job cancelled")
      const adopted = yield* Effect.promise(() => fs.access(path.join(agent.stateDir, "job.json")).then(() => true, () => false))
      assert.isFalse(adopted)
      yield* destroyedCount(server)
      assert.isFalse(server.destroyed[0]!.killed)
    }))

  it.scopedLive("an agent with no job at once rehearses one, sending and leaving nothing; the next job starts on it", () =>
    Effect.gen(function*() {
      // The agent's scripts, control channels and rehearsal go to the OS temporary directory:
      // a fresh one, to see what is left there.
      const tmp = yield* Testing.tempDirectory("agent-tmp-")
      const leftovers = () => fsSync.readdirSync(tmp).filter((f) => /^(bmat-|buildomat-rehearsal-)|\.sh$/.test(f))
      const savedTmp = process.env["TMPDIR"]
      process.env["TMPDIR"] = tmp
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (savedTmp === undefined) delete process.env["TMPDIR"]
          else process.env["TMPDIR"] = savedTmp
        })
      )
      const logs: Array<string> = []
      const server = yield* startServer({
        launch: (request) =>
          Effect.gen(function*() {
            const stateDir = yield* Testing.tempDirectory("agent-state-")
            const root = yield* Testing.tempDirectory("agent-root-")
            const fiber = yield* Agent.run({ url: request.url, bootstrap: request.bootstrap, stateDir, root, waitMillis: 5_000 }).pipe(
              Effect.provide(NodeHttpClient.layerUndici),
              Logger.withMinimumLogLevel(LogLevel.Info),
              Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message))))),
              Effect.forkScoped
            )
            return { request, stateDir, root, fiber, exited: Fiber.await(fiber), kill: Fiber.interrupt(fiber) } satisfies InProcessAgent
          })
      })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "rhea")
      // A worker for a job cancelled before its agent asks: the agent finds nothing to do.
      const prime = yield* c.api.jobs.submit({ payload: jobSubmit([{ name: "t", script: "echo must not run" }]) })
      const agent = yield* Queue.take(server.launched)
      yield* c.api.jobs.cancel({ path: { job: jobId(prime.id) } })
      yield* waitUntil("the rehearsal", () => logs.some((l) => /^rehearsed a job in \d+ ms; waiting for work$/.test(l)))
      // Left behind: only the first task's control channel and (empty) script file, made ahead.
      assert.deepStrictEqual(leftovers().map((f) => (f.endsWith(".sh") ? "script" : f.replace(/-.*/, ""))).sort(), [
        "bmat",
        "script"
      ])
      assert.deepStrictEqual(fsSync.readdirSync(agent.stateDir).sort(), ["agent.json", "job.json.pending"])
      assert.deepStrictEqual(fsSync.readdirSync(agent.root), [])

      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([{ name: "real", script: "echo real\nbmat store put K v && bmat store get K", workdir: "/work" }])
      })
      // Assigned by the submit itself: the agent was waiting.
      assert.strictEqual((yield* c.api.jobs.get({ path: { job: jobId(id) } })).state, "running")
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      const events = yield* allEvents(c, id)
      assert.deepStrictEqual(events.filter((e) => e.stream === "stdout").map((e) => e.payload), ["real", "v"])
      assert.notInclude(JSON.stringify(events), "rehearsal")
      assert.isTrue(Exit.isSuccess(yield* agentEnd(agent)))
      // Nothing of the rehearsal reached the server: the prime job has only the server's own events.
      const primeEvents = yield* allEvents(c, prime.id)
      assert.deepStrictEqual([...new Set(primeEvents.map((e) => e.stream))], ["control"])
      assert.deepStrictEqual(leftovers(), [], "no script, channel or rehearsal directory left")
    }))

  it.scopedLive("cancelled mid-task: the agent kills the task's whole process group itself and powers off", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ launch: inProcess() })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "gina")
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([{
          name: "stubborn",
          // Ignores SIGTERM, and so does its background child: only SIGKILL ends them.
          script: "trap '' TERM\n(trap '' TERM; exec sleep 300) &\necho $! > bg\necho $$ > pid\necho started\nwait",
          workdir: "/work"
        }])
      })
      const agent = yield* Queue.take(server.launched)
      yield* waitUntil("the task to start", () => fsSync.existsSync(path.join(agent.root, "work/pid")))
      yield* Effect.sleep("100 millis")
      const pids = ["pid", "bg"].map((f) => Number(fsSync.readFileSync(path.join(agent.root, "work", f), "utf8")))
      assert.deepStrictEqual(pids.map(alive), [true, true])
      yield* c.api.jobs.cancel({ path: { job: jobId(id) } })
      // The agent hears of the power-off at once (its long-poll), kills the group, and stops.
      assert.isTrue(Exit.isSuccess(yield* agentEnd(agent)))
      assert.deepStrictEqual(pids.map(alive), [false, false], "no process left behind")
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      assert.isTrue(job.cancelled)
      yield* destroyedCount(server)
      assert.isFalse(server.destroyed[0]!.killed, "the agent stopped by itself")
    }))

  it.scopedLive("bmat: the job store, an output outside the rules, a background process with its output", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ launch: inProcess() })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "hana")
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([
          {
            name: "put",
            script: [
              "set -e",
              "bmat store put GREETING hello",
              "printf 's3cret\\n' | bmat store put -s TOKEN",
              "bmat process start ticker bash -c 'echo $$ > ticker.pid; for i in 1 2 3; do echo tick $i; done; echo oops >&2; exec sleep 300'",
              "while [ ! -s ticker.pid ]; do sleep 0.05; done",
              "sleep 0.3",
              "echo extra artefact > extra.txt",
              "bmat add output \"$PWD/extra.txt\"",
              "if bmat add output /etc/hostname 2>err.txt; then echo escaped; else echo refused; fi"
            ].join("\n"),
            workdir: "/work"
          },
          {
            name: "get",
            script: [
              "bmat store get GREETING",
              "bmat store get -W TOKEN",
              "bmat store get -W MISSING 2>/dev/null || echo no MISSING",
              "bmat frobnicate 2>/dev/null; echo usage exit $?"
            ].join("\n"),
            workdir: "/work"
          }
        ])
      })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)
      const events = yield* allEvents(c, id)
      const problems = events.filter((e) => e.stream === "worker").map((e) => e.payload).join("\n")
      assert.strictEqual(job.state, "completed", problems)
      const on = (stream: string, task: number) =>
        events.filter((e) => e.stream === stream && e.task === task).map((e) => e.payload)
      assert.deepStrictEqual(on("stdout", 0).filter((l) => !l.startsWith("/work")), ["refused"])
      assert.match(on("stdout", 0)[0]!, /^\/work\/extra\.txt 15 [0-9a-f]{64}$/)
      assert.deepStrictEqual(on("bg.ticker.stdout", 0), ["tick 1", "tick 2", "tick 3"])
      assert.deepStrictEqual(on("bg.ticker.stderr", 0), ["oops"])
      assert.match(on("bg.ticker", 0).join("\n"), /started process ticker[\s\S]*process exited: .*signal SIGTERM/)
      assert.deepStrictEqual(on("stdout", 1), ["hello", "s3cret", "no MISSING", "usage exit 2"])
      // The background process ended with its task.
      const ticker = Number(fsSync.readFileSync(path.join(agent.root, "work/ticker.pid"), "utf8"))
      assert.isFalse(alive(ticker))
      const digests = yield* c.api.jobs.outputDigests({ path: { job: jobId(id) } })
      assert.deepStrictEqual(digests.map((d) => [d.path, d.size, d.sha256]), [["/work/extra.txt", 15, sha256("extra artefact\n")]])
    }))

  it.scopedLive("bmat: address ranges and factory info from the server, as a task sees them", () =>
    Effect.gen(function*() {
      const metadata = {
        v: "1",
        addresses: [
          { name: "lab", cidr: "10.0.1.0/24", first: "10.0.1.10", count: 5, routed: true, gateway: "10.0.1.1" },
          { name: "p2p", cidr: "192.168.7.4/31", first: "192.168.7.4", count: 2, routed: false },
          { name: "broken", cidr: "10.0.2.0/24", first: "10.0.3.1", count: 1, routed: false },
          { name: "twin", cidr: "172.16.0.0/16", first: "172.16.0.1", count: 1, routed: false },
          { name: "twin", cidr: "172.16.0.0/16", first: "172.16.0.2", count: 1, routed: false }
        ],
        root_password_hash: "$6$salt$not-for-tasks"
      }
      const server = yield* startServer({ launch: inProcess(), metadata })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "kim")
      const { id } = yield* c.api.jobs.submit({
        payload: jobSubmit([
          {
            name: "addresses",
            script: [
              "bmat address ls 2>&1",
              "echo --",
              "bmat address list -f lab",
              "echo --",
              "bmat address ls -Ho first,last,mask -f p2p",
              "for n in broken twin nope; do bmat address ls -f $n 2>&1 || echo \"exit $?\"; done",
              "bmat address ls -o name,colour 2>&1 >/dev/null | head -1; echo \"exit ${PIPESTATUS[0]}\"",
              "bmat factory name",
              "bmat factory id",
              "bmat factory private",
              "bmat factory 2>/dev/null || echo \"exit $?\"",
              "echo --",
              "bmat eng metadata"
            ].join("\n")
          }
        ])
      })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)
      const events = yield* allEvents(c, id)
      assert.strictEqual(job.state, "completed", events.map((e) => `${e.stream}: ${e.payload}`).join("\n"))
      const out = events.filter((e) => e.stream === "stdout").map((e) => e.payload)
      const parts: Array<Array<string>> = [[]]
      for (const line of out) line === "--" ? parts.push([]) : parts.at(-1)!.push(line)
      const [list, one, rest, json] = parts as [Array<string>, Array<string>, Array<string>, Array<string>]
      const cells = (lines: ReadonlyArray<string>) => lines.map((l) => l.split(/ +/))
      // Everything usable, in order; the broken range left out, saying why.
      assert.deepStrictEqual(cells(list), [
        ["bmat:", "WARNING:", "ignoring", "IP", "address", "range", "\"broken\":", "first", "address", "10.0.3.1", "is", "outside", "10.0.2.0/24"],
        ["NAME", "CIDR", "FIRST", "LAST", "COUNT", "ROUTED", "GATEWAY"],
        ["lab", "10.0.1.0/24", "10.0.1.10", "10.0.1.14", "5", "yes", "10.0.1.1"],
        ["p2p", "192.168.7.4/31", "192.168.7.4", "192.168.7.5", "2", "no", "-"],
        ["twin", "172.16.0.0/16", "172.16.0.1", "172.16.0.1", "1", "no", "-"],
        ["twin", "172.16.0.0/16", "172.16.0.2", "172.16.0.2", "1", "no", "-"]
      ])
      // Aligned: each column starts at the same place on every line.
      const starts = (l: string) => [...l.matchAll(/\S+/g)].map((m) => m.index).join(",")
      assert.deepStrictEqual(new Set(list.slice(1).map(starts)).size, 1)
      assert.deepStrictEqual(cells(one), [
        ["NAME", "CIDR", "FIRST", "LAST", "COUNT", "ROUTED", "GATEWAY"],
        ["lab", "10.0.1.0/24", "10.0.1.10", "10.0.1.14", "5", "yes", "10.0.1.1"]
      ])
      const worker = agent.request.worker
      const admin = yield* Testing.client(server.url, ADMIN)
      const [factory] = yield* admin.api.factories.list()
      assert.deepStrictEqual(rest, [
        "192.168.7.4  192.168.7.5  255.255.255.254",
        "bmat: IP address range \"broken\" is not usable: first address 10.0.3.1 is outside 10.0.2.0/24",
        "exit 1",
        "bmat: 2 IP address ranges are named \"twin\"",
        "exit 1",
        "bmat: no IP address range named \"nope\" (there are: lab, p2p, twin, twin)",
        "exit 1",
        "bmat: unknown column \"colour\" (columns: name, cidr, first, last, count, family, network, mask, routed, gateway)",
        "exit 2",
        "test",
        factory!.id,
        `test-${worker}`,
        "exit 2"
      ])
      assert.strictEqual(factory!.name, "test")
      // The metadata as the server sent it, but the root password hash is not the task's business.
      assert.deepStrictEqual(JSON.parse(json.join("\n")), { ...metadata, root_password_hash: "<redacted>" })
    }))

  it.scopedLive("a file that changes while it is uploaded fails the job, unless its rule has %", () =>
    Effect.gen(function*() {
      let proxy: Proxy | undefined
      let grow: (() => void) | undefined
      const server = yield* startServer({ launch: inProcess(() => proxy?.url) })
      proxy = yield* startProxy(server.url, {
        // The first part of each upload waits while the test appends to the file.
        gate: (method, p) => {
          if (method !== "PUT" || !p.includes("/upload/") || !p.includes("offset=0&") || grow === undefined) return undefined
          grow()
          return undefined
        }
      })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "ivan")
      for (const [rule, expected] of [["/work/out.log", "failed"], ["%/work/out.log", "completed"]] as const) {
        const { id } = yield* c.api.jobs.submit({
          payload: jobSubmit([{ name: "log", script: "echo first > out.log", workdir: "/work" }], [rule])
        })
        const agent = yield* Queue.take(server.launched)
        grow = () => fsSync.appendFileSync(path.join(agent.root, "work/out.log"), "more\n")
        const job = yield* finish(c, id)
        const worker = (yield* allEvents(c, id)).filter((e) => e.stream === "worker").map((e) => e.payload)
        assert.strictEqual(job.state, expected, worker.join("\n"))
        assert.isTrue(
          worker.some((l) => /changed while it was uploaded/.test(l) && l.startsWith(expected === "failed" ? "upload error" : "upload warning")),
          worker.join("\n")
        )
        grow = undefined
      }
    }))

  it.scopedLive("factory metadata: pre- and post-job diagnostics run, report as worker events, and hold a faulty worker", () =>
    Effect.gen(function*() {
      const server = yield* startServer({
        launch: inProcess(),
        metadata: {
          v: "1",
          root_authorized_keys: "ssh-ed25519 AAAA test",
          pre_job_diagnostic_script: "echo pre ok",
          post_job_diagnostic_script: "echo checking\necho bad disk >&2\nexit 1"
        }
      })
      const { c } = yield* Testing.userClient(server.url, ADMIN, "jade")
      const { id } = yield* c.api.jobs.submit({ payload: jobSubmit([{ name: "t", script: "echo work" }]) })
      const agent = yield* Queue.take(server.launched)
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      assert.strictEqual(
        fsSync.readFileSync(path.join(agent.root, "root/.ssh/authorized_keys"), "utf8"),
        "ssh-ed25519 AAAA test\n"
      )
      // Read back from the database: the admin API for workers is not part of this package.
      const read = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const events = yield* sql<{ stream: string; payload: string }>`
          SELECT stream, payload FROM worker_event WHERE worker = ${agent.request.worker} ORDER BY seq`
        const [w] = yield* sql<{ hold_reason: string | null; diagnostics: number }>`
          SELECT hold_reason, diagnostics FROM worker WHERE id = ${agent.request.worker}`
        return { events, w }
      }).pipe(Effect.provide(Database.layer(path.join(server.dataDir, "data.sqlite3")).pipe(Layer.provide(NodeContext.layer))), Effect.orDie)
      let got = yield* read
      for (let i = 0; i < 200 && got.w?.hold_reason == null; i++) {
        yield* Effect.sleep("50 millis")
        got = yield* read
      }
      assert.deepStrictEqual(got.events.map((e) => [e.stream, e.payload]), [
        ["diag.pre", "pre ok"],
        ["diag.post", "checking"],
        ["diag.post", "bad disk"]
      ])
      assert.deepStrictEqual(got.w, { hold_reason: "post-job diagnostics reported a fault", diagnostics: 0 })
      // Held: not powered off, not destroyed.
      yield* Effect.sleep("500 millis")
      assert.isNull(agent.fiber.unsafePoll())
      assert.deepStrictEqual(server.destroyed, [])
    }))
})

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return !/^\d+ \(.*\) Z/.test(fsSync.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}
