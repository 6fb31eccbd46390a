/**
 * The job model end to end with real agents: the core server over real HTTP on loopback, the
 * local provider starting real agent processes (the built bundle), real bash tasks. Inputs are
 * downloaded by the agent, store values set by the user are read by the job through the worker
 * route, and a second job uses the first one's outputs through a dependency with `copy_outputs`.
 */
import type { Client } from "@buildomat/core"
import { Ids } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { Cli } from "@buildomat/cli"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Console, Effect, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

const ADMIN = "jobmodel-e2e-admin-token-0123456789"

const start = (dir: string) =>
  Testing.serve(
    { dataDir: NodePath.join(dir, "data"), adminToken: ADMIN },
    LocalProvider.layer({ scratchRoot: NodePath.join(dir, "workers"), limit: 4, killGraceMs: 500 })
  )

const task = (name: string, script: string) => ({ name, script, env_clear: false, env: {} })

const finish = (c: Client.Client, id: string) =>
  Effect.gen(function*() {
    yield* c.watch(id, { minseq: 1 }).pipe(Stream.runDrain, Effect.timeout("60 seconds"))
    return yield* c.api.jobs.get({ path: { job: id as any } })
  })

const lines = (c: Client.Client, id: string) =>
  Effect.map(c.allEvents(id), (es) => es.filter((e) => e.stream === "stdout" || e.stream === "stderr").map((e) => e.payload))

/**
 * Shell functions for a job's script: the job reads the store through the agent's worker route
 * (`GET`/`PUT /0/worker/job/{job}/store/{name}`), with the URL and worker token the local
 * provider's agent keeps next to the job's root (`<root>/../state/agent.json`). (buildomat's
 * jobs do this through `bmat store get`, the agent's control socket.)
 */
const STORE_FUNCTIONS = [
  `state="$BUILDOMAT_ROOT/../state/agent.json"`,
  `url=$(node -p 'require(process.argv[1]).url' "$state")`,
  `tok=$(node -p 'require(process.argv[1]).token' "$state")`,
  `store_get() { curl -sSf -H "authorization: Bearer $tok" "$url/0/worker/job/$BUILDOMAT_JOB_ID/store/$1" | node -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>process.stdout.write(JSON.parse(d).value.value))'; }`,
  `store_put() { curl -sSf -X PUT -H "authorization: Bearer $tok" -H "content-type: application/json" -d "{\\"value\\":\\"$2\\",\\"secret\\":false}" "$url/0/worker/job/$BUILDOMAT_JOB_ID/store/$1"; }`
].join("\n")

/** Uploads `data` as input `name` of job `id` and commits it. */
const upload = (c: Client.Client, id: string, name: string, data: Uint8Array) =>
  Effect.gen(function*() {
    const ch = yield* c.api.jobInputs.chunk({ path: { job: id as any }, payload: data })
    const body = { name, size: data.length, chunks: [ch.id], commit_id: Ids.make() }
    let r = yield* c.api.jobInputs.addInput({ path: { job: id as any }, payload: body })
    while (!r.complete) r = yield* c.api.jobInputs.addInput({ path: { job: id as any }, payload: body })
    assert.strictEqual(r.error ?? null, null)
  })

describe("the job model with real agents", () => {
  it.scopedLive("inputs downloaded, store values read by the job, outputs copied to a dependent job", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { c } = yield* Testing.userClient(url, ADMIN, "alice")
      const secret = `s3cret-${Crypto.randomBytes(8).toString("hex")}`
      const data = Buffer.from(Array.from({ length: 2000 }, (_, i) => `input line ${i}\n`).join(""))

      const first = yield* c.api.jobs.submit({
        payload: {
          name: "first",
          target: "default",
          output_rules: ["=/out/*.txt", "/out/sub/*"],
          inputs: ["data.txt"],
          tasks: [
            task("use inputs and store", [
              "set -euo pipefail",
              STORE_FUNCTIONS,
              "head -n 2 input/data.txt",
              "wc -l < input/data.txt",
              "echo \"greeting: $(store_get GREETING)\"",
              "echo \"secret sha256: $(printf %s \"$(store_get TOKEN)\" | sha256sum | cut -d' ' -f1)\"",
              "store_put FROM_JOB done",
              "mkdir -p out/sub",
              "cp input/data.txt out/copy.txt",
              "echo made > out/sub/made.bin"
            ].join("\n"))
          ]
        }
      })
      const second = yield* c.api.jobs.submit({
        payload: {
          name: "second",
          target: "default",
          output_rules: [],
          depends: { build: { prior_job: first.id, copy_outputs: true, on_completed: true, on_failed: false } },
          tasks: [task("use the first job's outputs", "set -e\nfind input -type f | sort\nsha256sum < input/build/out/copy.txt | cut -d' ' -f1\ncat input/build/out/sub/made.bin")]
        }
      })
      // Both wait: the first for its input, the second for the first.
      assert.strictEqual((yield* c.api.jobs.get({ path: { job: first.id as any } })).state, "waiting")
      assert.strictEqual((yield* c.api.jobs.get({ path: { job: second.id as any } })).state, "waiting")
      yield* c.api.jobStore.put({ path: { job: first.id as any, name: "GREETING" }, payload: { value: "hello from the user", secret: false } })
      yield* c.api.jobStore.put({ path: { job: first.id as any, name: "TOKEN" }, payload: { value: secret, secret: true } })
      yield* upload(c, first.id, "data.txt", data)

      const j1 = yield* finish(c, first.id)
      assert.strictEqual(j1.state, "completed", JSON.stringify(yield* c.allEvents(first.id)))
      assert.includeMembers(Object.keys(j1.times), ["submit", "ready", "assigned", "complete"])
      const sha = (b: Uint8Array | string) => Crypto.createHash("sha256").update(b).digest("hex")
      assert.deepStrictEqual(yield* lines(c, first.id), [
        "input line 0",
        "input line 1",
        "2000",
        "greeting: hello from the user",
        `secret sha256: ${sha(secret)}`
      ])
      const events = yield* c.allEvents(first.id)
      assert.isTrue(events.some((e) => e.stream === "worker" && e.payload === "downloaded input: /input/data.txt"))
      assert.notInclude(JSON.stringify(events), secret)
      const store = yield* c.api.jobStore.list({ path: { job: first.id as any } })
      assert.deepStrictEqual(store["FROM_JOB"] && [store["FROM_JOB"].value, store["FROM_JOB"].source], ["done", "worker"])
      assert.strictEqual(store["TOKEN"]!.value, null)

      const j2 = yield* finish(c, second.id)
      assert.strictEqual(j2.state, "completed", JSON.stringify(yield* c.allEvents(second.id)))
      assert.deepStrictEqual(yield* lines(c, second.id), [
        "input/build/out/copy.txt",
        "input/build/out/sub/made.bin",
        sha(data),
        "made"
      ])
      const control = (yield* c.allEvents(second.id)).filter((e) => e.stream === "control").map((e) => e.payload)
      assert.match(control[0]!, /^job dependencies complete; ready to run \(waiting for \d+ s\)$/)
    }))

  it.scopedLive("buildomat job run -i uploads an input the real agent downloads; -d waits for a failed job and fails", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* start(dir)
      const { user } = yield* Testing.userClient(url, ADMIN, "bob")
      const config = NodePath.join(dir, "credentials.toml")
      NodeFs.writeFileSync(config, `[profile.default]\nurl = "${url}"\nsecret = "${user.token}"\n`)
      const file = NodePath.join(dir, "notes.txt")
      NodeFs.writeFileSync(file, "notes for the job\n")
      const cli = (...args: Array<string>) =>
        Effect.gen(function*() {
          const stdout: Array<string> = []
          const stderr: Array<string> = []
          // A Console that records log (stdout) and error (stderr) lines and drops the rest.
          const record = (into: Array<string>) => (...a: ReadonlyArray<unknown>) => Effect.sync(() => void into.push(a.join(" ")))
          const console = new Proxy({} as Console.Console, {
            get: (_, key) =>
              key === Console.TypeId
                ? Console.TypeId
                : key === "log"
                ? record(stdout)
                : key === "error"
                ? record(stderr)
                : key === "unsafe"
                ? new Proxy({}, { get: () => () => {} })
                : () => Effect.void
          })
          const code = yield* Cli.run(["node", "buildomat", ...args]).pipe(
            Effect.withConsole(console),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BUILDOMAT_CONFIG", config], ["HOME", dir]]))),
            Effect.provide(Cli.layer)
          )
          return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") }
        })

      const ran = yield* cli("job", "run", "-n", "notes", "-c", "cat input/notes.txt", "-i", file)
      assert.strictEqual(ran.code, 0, ran.stderr)
      assert.include(ran.stdout.split("\n"), "notes for the job")

      const failing = yield* cli("job", "run", "-n", "fails", "-c", "exit 1")
      assert.strictEqual(failing.code, 1)
      const failedId = /^job (\S+) submitted/.exec(failing.stdout)![1]!
      const after = yield* cli("job", "run", "-n", "after", "-c", "echo must not run", "-d", `prior=${failedId}`)
      assert.strictEqual(after.code, 1, after.stdout)
      assert.include(after.stdout, `|=| this job depends on job ${failedId} (prior) completing, but it has failed; failing job`)
      assert.notInclude(after.stdout, "must not run")
    }))
})
