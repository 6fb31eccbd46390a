/**
 * End to end: the CLI, in process, against the real core server (`Testing.serve`: SQLite in a
 * temp dir, loopback HTTP), with the test playing the agent over the worker protocol.
 */
import { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Queue } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { runCli } from "./support/run.js"

const ADMIN = "e2e-admin-token-0123456789"

const start = Effect.gen(function*() {
  const dir = yield* Testing.tempDirectory("buildomat-cli-e2e-")
  const { layer: providers, requests } = yield* Testing.manualProvider()
  const url = yield* Testing.serve(
    { dataDir: path.join(dir, "data"), adminToken: ADMIN },
    providers
  )
  const config = path.join(dir, "credentials.toml")
  const writeProfile = (secret: string) =>
    fs.writeFileSync(config, `[profile.default]\nurl = "${url}"\nsecret = "${secret}"\nadmin_token = "${ADMIN}"\n`)
  writeProfile("nobody-yet")
  const cli = (...args: Array<string>) => runCli(args, { BUILDOMAT_CONFIG: config, HOME: dir })
  return { url, dir, requests, cli, writeProfile }
})

/** Plays the agent for the next worker: bootstrap, then ping until a job is assigned. */
const agent = (url: string, requests: Queue.Queue<WorkerProvider.CreateWorkerRequest>) =>
  Effect.gen(function*() {
    const { c } = yield* Testing.bootstrapAgent(url, yield* Queue.take(requests))
    const job = yield* Testing.awaitJob(c)
    return { c, job }
  })

describe("buildomat against the real server", () => {
  it.scopedLive("user create, info, job run (tailing), list, show, outputs, copy, cancel", () =>
    Effect.gen(function*() {
      const { url, dir, requests, cli, writeProfile } = yield* start

      const created = yield* cli("admin", "user", "create", "alice")
      assert.strictEqual(created.code, 0, created.stderr)
      writeProfile(created.stdout.trim())
      const info = yield* cli("info")
      assert.strictEqual(info.code, 0, info.stderr)
      assert.include(info.stdout, "name:    alice")
      const users = yield* cli("user", "list", "--json")
      assert.deepStrictEqual(JSON.parse(users.stdout).map((u: { name: string }) => u.name), ["alice"])

      // job run waits and tails while the test plays the agent.
      const running = yield* Effect.fork(cli("job", "run", "-n", "e2e", "-c", "make", "-O", "=/out/*.bin", "-T", "kind=e2e"))
      const { c, job } = yield* agent(url, requests)
      const id = job.id
      const now = new Date().toISOString()
      yield* c.api.worker.append({
        path: { job: id as never },
        payload: [
          { stream: "task", time: now, payload: "starting task 0: \"default\"", task: 0 },
          { stream: "stdout", time: now, payload: "compiling", task: 0 },
          { stream: "stderr", time: now, payload: "warning: x", task: 0 }
        ]
      })
      const data = randomBytes(300_000)
      const chunk = yield* c.api.worker.chunk({ path: { job: id as never }, payload: new Uint8Array(data) })
      const add = { path: "/out/a.bin", size: data.length, chunks: [chunk.id], commit_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }
      let res = yield* c.api.worker.addOutput({ path: { job: id as never }, payload: add })
      while (!res.complete) res = yield* c.api.worker.addOutput({ path: { job: id as never }, payload: add })
      yield* c.api.worker.taskComplete({ path: { job: id as never, task: 0 }, payload: { failed: false } })
      yield* c.api.worker.jobComplete({ path: { job: id as never }, payload: { failed: false } })

      const ran = yield* Fiber.join(running).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(ran.code, 0, ran.stderr)
      const lines = ran.stdout.split("\n")
      assert.strictEqual(lines[0], `job ${id} submitted`)
      const body = lines.filter((l) => !l.startsWith("|=|") && !l.startsWith("STATE CHANGE") && !l.startsWith("job "))
      assert.deepStrictEqual(body, ["|T| starting task 0: \"default\"", "compiling", "warning: x"])
      assert.strictEqual(lines.at(-1), "STATE CHANGE: running -> completed")

      const list = yield* cli("job", "list", "-T", "kind=e2e")
      assert.match(list.stdout.split("\n")[1]!, new RegExp(`^${id}\\s+\\S+\\s+C\\s+e2e\\s+completed$`))
      const show = yield* cli("job", "show", id)
      assert.include(show.stdout, "state:    completed")
      assert.include(show.stdout, "=/out/*.bin")
      const outputs = yield* cli("job", "outputs", "--json", id)
      assert.deepStrictEqual(JSON.parse(outputs.stdout).map((o: { path: string }) => o.path), ["/out/a.bin"])

      const dst = path.join(dir, "a.bin")
      const copy = yield* cli("job", "copy", id, "/out/a.bin", dst)
      assert.strictEqual(copy.code, 0, copy.stderr)
      const sha = createHash("sha256").update(data).digest("hex")
      assert.strictEqual(copy.stdout, `${dst}: ${data.length} bytes, sha256 ${sha} (verified)`)
      assert.isTrue(fs.readFileSync(dst).equals(data))

      // A second job, cancelled while queued: tail follows it to `failed` and exits 1.
      const submitted = yield* cli("job", "run", "-n", "doomed", "-c", "sleep 100", "-W")
      const doomed = submitted.stdout.trim()
      const cancel = yield* cli("job", "cancel", doomed)
      assert.strictEqual(cancel.code, 0, cancel.stderr)
      const tail = yield* cli("job", "tail", doomed).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(tail.code, 1, tail.stderr)
      assert.include(tail.stdout, "|=| job cancelled")
      const again = yield* cli("job", "cancel", doomed)
      assert.strictEqual(again.code, 1)
      assert.match(again.stderr, /^ERROR: \S/)
      assert.notInclude(again.stderr, "invalid response")
      const unknown = yield* cli("job", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
      assert.strictEqual(unknown.code, 1)
      assert.match(unknown.stderr, /^ERROR: .*does not exist/)
      const ls = yield* cli("job", "ls", "-F", "cancelled", "--json")
      assert.deepStrictEqual(JSON.parse(ls.stdout).map((j: { id: string }) => j.id), [doomed])
    }))
})
