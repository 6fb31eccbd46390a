/**
 * Faults between agent and server, made by real means: the reference server as a process of its
 * own (killed with SIGKILL and started again on the same data directory and port, or stopped with
 * SIGSTOP), a TCP proxy that cuts connections in the middle of requests and answers, and real
 * agent processes (the built bundle) started by the server's local provider. Each job prints
 * 100,000 lines and leaves a 16 MiB artefact together with the SHA-256 its task computed; each
 * test ends with every line stored exactly once and in order, the artefact intact, and the job
 * completed.
 */
import type { Client } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ServerProcess from "./support/serverProcess.js"
import * as TcpProxy from "./support/tcpProxy.js"

const ADMIN = "faults-admin-token-0123456789"
const LINES = 100_000

/** Prints LINES lines (in bursts, with pauses, about 2 s in all unless `fast`), after making the artefact. */
const script = (fast = false) =>
  [
    "mkdir -p out",
    "head -c 16777216 /dev/urandom > out/data.bin",
    "sha256sum out/data.bin | cut -d' ' -f1 > out/data.sha",
    `awk 'BEGIN { for (i = 1; i <= ${LINES}; i++) { printf "line %06d of the output\\n", i; ${
      fast ? "" : "if (i % 5000 == 0) { fflush(); system(\"sleep 0.1\") }"
    } } }'`
  ].join("\n")

const submit = (c: Client.Client, fast = false) =>
  c.api.jobs.submit({
    payload: {
      name: "faults",
      target: "default",
      output_rules: ["=/out/data.bin", "=/out/data.sha"],
      tasks: [{ name: "print", script: script(fast), env_clear: false, env: {} }]
    }
  })

/** The number of events stored so far (0 when the server is away). */
const stored = (c: Client.Client, id: string) =>
  Effect.gen(function*() {
    let lo = 0
    let hi = 1
    // Exponential then binary search for the last seq: each probe is one small page.
    const has = (seq: number) =>
      c.api.jobs.events({ path: { job: id as any }, urlParams: { minseq: seq } }).pipe(Effect.map((p) => p.length > 0))
    while (yield* has(hi)) {
      lo = hi
      hi *= 2
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (yield* has(mid)) lo = mid
      else hi = mid
    }
    return lo
  }).pipe(Effect.orElseSucceed(() => 0))

const until = (what: string, cond: Effect.Effect<boolean>, seconds = 60) =>
  Effect.gen(function*() {
    const deadline = Date.now() + seconds * 1000
    while (!(yield* cond)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("50 millis")
    }
  })

/**
 * Waits for the job to end (up to `seconds`); then checks every line, the artefact and the state.
 */
const verify = (c: Client.Client, id: string, seconds = 120) =>
  Effect.gen(function*() {
    let state = ""
    yield* until("the job to end", Effect.gen(function*() {
      state = (yield* c.api.jobs.get({ path: { job: id as any } }).pipe(Effect.orDie)).state
      return state === "completed" || state === "failed"
    }), seconds)
    const events = yield* c.allEvents(id).pipe(Effect.orDie)
    assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), "sequence numbers are gap-free")
    const lines = events.filter((e) => e.stream === "stdout").map((e) => e.payload)
    assert.strictEqual(lines.length, LINES, "every line stored exactly once")
    for (let i = 0; i < LINES; i++) {
      if (lines[i] !== `line ${String(i + 1).padStart(6, "0")} of the output`) {
        assert.fail(`line ${i + 1} is ${JSON.stringify(lines[i])}`)
      }
    }
    const job = yield* c.api.jobs.get({ path: { job: id as any } }).pipe(Effect.orDie)
    const problems = events.filter((e) => e.stream === "worker" || e.stream === "control").map((e) => e.payload)
    assert.strictEqual(job.state, "completed", problems.join("\n"))
    const digests = yield* c.api.jobs.outputDigests({ path: { job: id as any } }).pipe(Effect.orDie)
    const data = digests.find((d) => d.path === "/out/data.bin")!
    const sha = digests.find((d) => d.path === "/out/data.sha")!
    assert.strictEqual(data.size, 16 * 1024 * 1024)
    const res = yield* c.download(id, sha.id).pipe(Effect.orDie)
    const text = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(res.stream).pipe(Effect.orDie))).toString("utf8")
    assert.strictEqual(data.sha256, text.trim(), "the artefact is intact: the SHA-256 the task computed")
    return events
  })

const userClient = (url: string) =>
  Testing.userClient(url, ADMIN, "faulty").pipe(Effect.orDie)

describe("agent and server under faults (separate processes)", () => {
  it.scopedLive("the server is killed with SIGKILL mid-job and started again on the same data and port", () =>
    Effect.gen(function*() {
      const dir = yield* ServerProcess.testDir("faults-kill-")
      yield* ServerProcess.reapUnder(dir)
      const spec = { dir, port: yield* ServerProcess.freePort, adminToken: ADMIN }
      const first = yield* ServerProcess.start(spec)
      const { c, user } = yield* userClient(first.url)
      const { id } = yield* submit(c)
      // Mid-output: some lines are stored, most are still to come.
      yield* until("10,000 events stored", Effect.map(stored(c, id), (n) => n >= 10_000))
      yield* ServerProcess.kill9(first)
      const atKill = Date.now()
      yield* Effect.sleep("1500 millis")
      const second = yield* ServerProcess.start(spec)
      const c2 = yield* Testing.client(second.url, user.token)
      const events = yield* verify(c2, id)
      // The task went on printing while the server was down.
      const produced = events.filter((e) => e.stream === "stdout" && Date.parse(e.time_remote!) > atKill)
      assert.isAbove(produced.length, 0)
    }), { timeout: 180_000 })

  it.scopedLive("a proxy cuts connections in the middle of requests and answers", () =>
    Effect.gen(function*() {
      const dir = yield* ServerProcess.testDir("faults-proxy-")
      yield* ServerProcess.reapUnder(dir)
      const port = yield* ServerProcess.freePort
      // Every connection is cut. One in three the moment the server starts answering (the request
      // was handled, the answer is lost: the agent must resend without anything being stored
      // twice); of the others, most after 0 to 256 KiB, the rest after 16 to 32 MiB (so that an
      // 8 MiB upload part can get through): in the middle of event batches, upload parts and
      // answers, or between requests. Seeded, so that a failure can be replayed.
      const random = TcpProxy.prng(4)
      const MiB = 1024 * 1024
      const proxy = yield* TcpProxy.start({ host: "127.0.0.1", port }, (n) =>
        n % 3 === 1 ? "answer" : random() < 0.8 ? Math.floor(random() * MiB / 4) : 16 * MiB + Math.floor(random() * 16 * MiB))
      const server = yield* ServerProcess.start({ dir, port, adminToken: ADMIN, publicUrl: proxy.url })
      const { c } = yield* userClient(server.url)
      const { id } = yield* submit(c, true)
      // Slow by design: most connections are cut before 256 KiB, so a large event batch is sent
      // again (backing off up to a second) until a connection lets it through; 50 s to 2 min here.
      yield* verify(c, id, 270)
      assert.isAtLeast(proxy.stats.cut, 6, JSON.stringify(proxy.stats))
      assert.isAtLeast(proxy.stats.cutInAnswer, 2, JSON.stringify(proxy.stats))
    }), { timeout: 300_000 })

  it.scopedLive("the server stalls (SIGSTOP): the task is not held up, events spool to disk, then all arrive", () =>
    Effect.gen(function*() {
      const dir = yield* ServerProcess.testDir("faults-stall-")
      yield* ServerProcess.reapUnder(dir)
      const spec = {
        dir,
        port: yield* ServerProcess.freePort,
        adminToken: ADMIN,
        // 64 KiB of events in memory, the rest on disk.
        agentEnv: { BUILDOMAT_AGENT_EVENT_MEMORY: "65536" }
      }
      const server = yield* ServerProcess.start(spec)
      const { c } = yield* userClient(server.url)
      const { id } = yield* submit(c, true)
      yield* until("the task to start", Effect.map(stored(c, id), (n) => n >= 2))
      server.child.kill("SIGSTOP")
      const stopped = Date.now()
      // While the server is stopped, the agent spools what the task prints.
      const workers = path.join(dir, "workers")
      let log = ""
      yield* until("the agent to spool events", Effect.sync(() => {
        log = fs.readdirSync(workers).map((w) => {
          try {
            return fs.readFileSync(path.join(workers, w, "agent.log"), "utf8")
          } catch {
            return ""
          }
        }).join("")
        return log.includes("spooling job events")
      }), 30)
      yield* Effect.sleep("3 seconds")
      server.child.kill("SIGCONT")
      const resumed = Date.now()
      assert.isAtLeast(resumed - stopped, 3000)
      const events = yield* verify(c, id)
      // Every line was produced while the server was stopped: the task never waited for it.
      const lines = events.filter((e) => e.stream === "stdout")
      assert.isBelow(Date.parse(lines[lines.length - 1]!.time_remote!), resumed)
    }), { timeout: 180_000 })
})
