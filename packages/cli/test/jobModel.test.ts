/**
 * The job model from the CLI, in process, against the real core server (`Testing.serve`: SQLite
 * in a temp dir, loopback HTTP), with the test playing the agent over the worker protocol:
 * `job run -i/-d`, `job store`, `job publish`, `job sign`, `job timings`, `job join`.
 */
import { Ids, WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { runCli } from "./support/run.js"

const ADMIN = "jobmodel-admin-token-0123456789"
const MiB = 1024 * 1024

const start = Effect.gen(function*() {
  const dir = yield* Testing.tempDirectory("buildomat-cli-jobmodel-")
  const { layer: providers, requests } = yield* Testing.manualProvider()
  const url = yield* Testing.serve(
    { dataDir: path.join(dir, "data"), adminToken: ADMIN, maxBytesPerFile: 8 * MiB },
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
    const { c, token } = yield* Testing.bootstrapAgent(url, yield* Queue.take(requests))
    const job = yield* Testing.awaitJob(c)
    return { c, job, token }
  })

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

describe("buildomat job model commands against the real server", () => {
  it.scopedLive("run with inputs and dependencies, store, publish, sign, timings, join", () =>
    Effect.gen(function*() {
      const { url, dir, requests, cli, writeProfile } = yield* start
      const created = yield* cli("admin", "user", "create", "alice")
      assert.strictEqual(created.code, 0, created.stderr)
      const token = created.stdout.trim()
      writeProfile(token)
      const user = yield* Testing.client(url, token)

      const big = randomBytes(6 * MiB + 123) // two chunks
      const small = Buffer.from("hello input\n")
      const bigFile = path.join(dir, "big.bin")
      const smallFile = path.join(dir, "notes.txt")
      fs.writeFileSync(bigFile, big)
      fs.writeFileSync(smallFile, small)

      // Checked before anything is submitted.
      const tooBig = path.join(dir, "huge.bin")
      fs.writeFileSync(tooBig, Buffer.alloc(8 * MiB + 1))
      for (
        const [args, msg] of [
          [["-i", tooBig], /maximum input file size is 8388608 bytes/],
          [["-i", path.join(dir, "absent")], /input file .*absent/],
          [["-i", `a/b=${smallFile}`], /must not contain "\/"/],
          [["-i", `x=${smallFile}`, "-i", `x=${bigFile}`], /two inputs are named "x"/],
          [["-d", "build"], /not well-formed/],
          [["-d", "build=nope"], /not a job id/]
        ] as const
      ) {
        const r = yield* cli("job", "run", "-n", "bad", "-c", "true", ...args, "-W")
        assert.strictEqual(r.code, 1, r.stdout)
        assert.match(r.stderr, msg)
      }
      assert.deepStrictEqual((yield* user.api.jobs.list({ urlParams: {} })).items, [])

      const ran = yield* cli("job", "run", "-n", "with inputs", "-c", "cat input/notes.txt", "-i", `data=${bigFile}`, "-i", smallFile, "-O", "/out/*", "-W")
      assert.strictEqual(ran.code, 0, ran.stderr)
      const id = ran.stdout.trim()
      assert.isTrue(Ids.isUlid(id), ran.stdout)
      assert.match(ran.stderr, /uploading input data \(6\.0MiB\)/)

      // The agent gets both inputs, whole.
      const a1 = yield* agent(url, requests)
      assert.strictEqual(a1.job.id, id)
      assert.deepStrictEqual(a1.job.inputs.map((i) => i.name).sort(), ["data", "notes.txt"])
      for (const [name, data] of [["data", big], ["notes.txt", small]] as const) {
        const got = yield* a1.c.api.workerJob.input({ path: { job: id as never, input: a1.job.inputs.find((i) => i.name === name)!.id as never } })
        assert.strictEqual(sha(got), sha(data), name)
      }

      // The store.
      assert.strictEqual((yield* cli("job", "store", "put", id, "GREETING", "hi there")).code, 0)
      const putSecret = yield* cli("job", "store", "put", "-s", id, "TOKEN", "hunter2")
      assert.strictEqual(putSecret.code, 0, putSecret.stderr)
      const list = yield* cli("job", "store", "list", id)
      assert.strictEqual(list.code, 0, list.stderr)
      const rows = list.stdout.split("\n")
      assert.match(rows[0]!, /^NAME\s+FLAGS\s+AGE\s+VALUE\s+SOURCE$/)
      assert.match(rows[1]!, /^GREETING\s+-\s+\d+s\s+hi there\s+user$/)
      assert.match(rows[2]!, /^TOKEN\s+S\s+\d+s\s+-\s+user$/)
      assert.notInclude(list.stdout, "hunter2")
      const listJson = JSON.parse((yield* cli("job", "store", "ls", "--json", id)).stdout)
      assert.deepStrictEqual(Object.keys(listJson), ["GREETING", "TOKEN"])
      assert.strictEqual(listJson.TOKEN.value, null)
      const get = yield* cli("job", "store", "get", id, "GREETING")
      assert.deepStrictEqual([get.code, get.stdout], [0, "hi there"])
      const getSecret = yield* cli("job", "store", "get", id, "TOKEN")
      assert.strictEqual(getSecret.code, 1)
      assert.match(getSecret.stderr, /secret property; cannot get value outside of job/)
      const getMissing = yield* cli("job", "store", "get", id, "NOPE")
      assert.match(getMissing.stderr, /"NOPE" was not found in the store/)
      const badName = yield* cli("job", "store", "put", id, "bad-name", "x")
      assert.strictEqual(badName.code, 1)
      assert.match(badName.stderr, /\[A-Za-z0-9_\]/)
      const seen = yield* a1.c.api.workerJob.storeGet({ path: { job: id as never, name: "TOKEN" } })
      assert.deepStrictEqual(seen.value, { value: "hunter2", secret: true })

      // The job finishes with an output.
      const report = Buffer.from("the report\n")
      const ch = yield* a1.c.api.worker.chunk({ path: { job: id as never }, payload: report })
      const add = { path: "/out/report.txt", size: report.length, chunks: [ch.id], commit_id: Ids.make() }
      let res = yield* a1.c.api.worker.addOutput({ path: { job: id as never }, payload: add })
      while (!res.complete) res = yield* a1.c.api.worker.addOutput({ path: { job: id as never }, payload: add })
      yield* a1.c.api.worker.taskComplete({ path: { job: id as never, task: 0 }, payload: { failed: false } })
      yield* a1.c.api.worker.jobComplete({ path: { job: id as never }, payload: { failed: false } })

      // A second job depending on it sees its output as an input.
      const dep = yield* cli("job", "run", "-n", "after", "-c", "cat input/build/out/report.txt", "-d", `build=${id}`, "-W")
      assert.strictEqual(dep.code, 0, dep.stderr)
      const depId = dep.stdout.trim()
      const a2 = yield* agent(url, requests)
      assert.strictEqual(a2.job.id, depId)
      assert.deepStrictEqual(a2.job.inputs.map((i) => i.name), ["build/out/report.txt"])
      yield* a2.c.api.worker.jobComplete({ path: { job: depId as never }, payload: { failed: true } })

      // Publish, then fetch it without a token.
      const pub = yield* cli("job", "publish", id, "/out/report.txt", "reports", "1.0", "report.txt")
      assert.strictEqual(pub.code, 0, pub.stderr)
      const publicUrl = `${url}/0/public/file/alice/reports/1.0/report.txt`
      assert.deepStrictEqual(pub.stdout.split("\n"), ["publishing /out/report.txt -> reports/1.0/report.txt (0KB)", publicUrl])
      assert.strictEqual(yield* Effect.promise(() => fetch(publicUrl).then((r) => r.text())), "the report\n")
      const badPub = yield* cli("job", "publish", id, "/out/report.txt", "r", "1.0", "x.txt")
      assert.strictEqual(badPub.code, 1)
      const noSuch = yield* cli("job", "publish", id, "/out/none", "reports", "1.0", "x.txt")
      assert.match(noSuch.stderr, /does not have a file that matches \/out\/none/)

      // Sign.
      const signed = yield* cli("job", "sign", "-x", id, "/out/report.txt")
      assert.strictEqual(signed.code, 0, signed.stderr)
      const [urlLine, sizeLine, availLine] = signed.stdout.split("\n")
      assert.match(urlLine!, /^url: {10}http:\/\/127\.0\.0\.1:\d+\/ext\/0\/jobs\//)
      assert.strictEqual(sizeLine, `size:         ${report.length}`)
      assert.strictEqual(availLine, "available:    true")
      const fetched = yield* Effect.promise(() =>
        fetch(urlLine!.slice("url:".length).trim()).then(async (r) => ({ type: r.headers.get("content-type"), body: await r.text() }))
      )
      assert.deepStrictEqual(fetched, { type: "text/plain", body: "the report\n" })
      const plain = yield* cli("job", "sign", id, "/out/report.txt")
      assert.match(plain.stdout, /^http:\/\/\S+signature=[0-9a-f]{64}$/)

      // Timings.
      const times = yield* cli("job", "timings", id)
      assert.strictEqual(times.code, 0, times.stderr)
      assert.deepStrictEqual(times.stdout.split("\n").map((l) => l.split(" ")[2]), ["submit", "ready", "assigned", "complete"])
      assert.match(times.stdout.split("\n")[0]!, new RegExp(`^${id} \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z submit$`))
      const interval = yield* cli("job", "timings", "-I", "submit,complete", id, depId)
      const [line1, line2] = interval.stdout.split("\n")
      assert.match(line1!, new RegExp(`^${id} \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ \\d+$`))
      assert.match(line2!, new RegExp(`^${depId} \\S+ \\d+$`))
      const badInterval = yield* cli("job", "timings", "-I", "submit", id)
      assert.strictEqual(badInterval.code, 1)

      // Join: completed is fine; a failed job makes it exit 1.
      const joined = yield* cli("job", "join", "-v", id)
      assert.strictEqual(joined.code, 0, joined.stderr)
      assert.include(joined.stderr, "all specified jobs completed successfully")
      const joinFailed = yield* cli("job", "join", id, depId)
      assert.strictEqual(joinFailed.code, 1)
      assert.include(joinFailed.stderr, `ERROR: job ${depId} failed`)
    }))
})
