/**
 * The CLI run in process against a loopback server that speaks buildomat's wire protocol
 * (`support/fakeServer.ts`), with a real credentials file in a temp directory.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { apiError, FakeServer, frame, sseEvent } from "./support/fakeServer.js"
import { runCli } from "./support/run.js"

const JOB = "01JCJ0B0000000000000000000"
const OUT = "01JQTPVT000000000000000000"

const setup = Effect.gen(function*() {
  const fake = yield* FakeServer
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "buildomat-cli-"))),
    (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
  )
  const config = path.join(dir, "credentials.toml")
  fs.writeFileSync(
    config,
    [
      `default_profile = "test"`,
      `[profile.test]`,
      `url = "${fake.url}"`,
      `secret = "user-secret"`,
      `admin_token = "admin-secret"`,
      `[profile.noadmin]`,
      `url = "${fake.url}"`,
      `secret = "user-secret"`
    ].join("\n")
  )
  const env = { BUILDOMAT_CONFIG: config, HOME: dir }
  const cli = (...args: Array<string>) => runCli(args, env)
  return { ...fake, dir, env, cli }
})

const jobView = (state: string, extra: Record<string, unknown> = {}) => ({
  id: JOB,
  owner: "01JVSER0000000000000000000",
  name: "build",
  target: "default",
  target_real: "helios-2",
  output_rules: ["=/out/*.txt", "%/var/log/**"],
  tasks: [{ name: "default", script: "echo hi", env_clear: false, env: {}, state: state === "completed" ? "completed" : "pending" }],
  state,
  tags: { branch: "main" },
  cancelled: false,
  times: { submit: "2026-11-21T09:00:00.000Z", assigned: "2026-11-21T09:00:02.500Z" },
  ...extra
})

const listEntry = (id: string, name: string, state: string, cancelled = false) => ({
  id,
  owner: "01JVSER0000000000000000000",
  name,
  state,
  cancelled,
  target: "default",
  target_id: "01JTARGET00000000000000000"
})

describe("buildomat (in process, loopback server)", () => {
  it.scopedLive("info: whoami with the profile's user token", () =>
    Effect.gen(function*() {
      const { cli, url, state } = yield* setup
      const r = yield* cli("info")
      assert.strictEqual(r.code, 0, r.stderr)
      assert.include(r.stdout, "id:      01JVSER0000000000000000000")
      assert.include(r.stdout, "name:    alice")
      assert.include(r.stdout, `url:     ${url}`)
      assert.strictEqual(state.requests[0]!.headers.authorization, "Bearer user-secret")

      const j = yield* cli("info", "--json")
      assert.deepStrictEqual(JSON.parse(j.stdout), { id: "01JVSER0000000000000000000", name: "alice", url, profile: "test" })
    }))

  it.scopedLive("-D sends X-Buildomat-Delegate; a bad token prints the server's message and exits 1", () =>
    Effect.gen(function*() {
      const { cli, state, env } = yield* setup
      const ok = yield* cli("-D", "bob", "info")
      assert.strictEqual(ok.code, 0)
      assert.strictEqual(state.requests[0]!.headers["x-buildomat-delegate"], "bob")

      const bad = yield* runCli(["info"], { ...env, BUILDOMAT_TOKEN: "wrong" })
      assert.strictEqual(bad.code, 1)
      assert.strictEqual(bad.stderr, "ERROR: not authorised")
    }))

  it.scopedLive("job list: all pages, tag filter, state letters, -F, --json", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      state.pages.set("", {
        items: [listEntry("01JA0000000000000000000000", "alpha", "completed"), listEntry("01JB0000000000000000000000", "beta", "failed", true)],
        next_page: "p2"
      })
      state.pages.set("p2", { items: [listEntry("01JC0000000000000000000000", "gamma", "running")], next_page: null })
      const r = yield* cli("job", "list", "-T", "a=b", "-T", "c=d=e")
      assert.strictEqual(r.code, 0, r.stderr)
      const lines = r.stdout.split("\n")
      assert.match(lines[0]!, /^ID\s+AGE\s+S\s+NAME\s+STATE$/)
      assert.match(lines[1]!, /^01JA0000000000000000000000\s+\S+\s+C\s+alpha\s+completed$/)
      assert.match(lines[2]!, /^01JB0000000000000000000000\s+\S+\s+X\s+beta\s+cancelled$/)
      assert.match(lines[3]!, /^01JC0000000000000000000000\s+\S+\s+r\s+gamma\s+running$/)
      const lists = state.requests.filter((q) => q.url.pathname === "/1/jobs")
      assert.deepStrictEqual(lists.map((q) => q.url.searchParams.get("page_token")), [null, "p2"])
      assert.strictEqual(lists[0]!.url.searchParams.get("tag"), "a=b|c=d=e")

      const f = yield* cli("job", "ls", "-F", "running", "--json")
      assert.deepStrictEqual(JSON.parse(f.stdout).map((j: { name: string }) => j.name), ["gamma"])
    }))

  it.scopedLive("job run -W: submits one task named default, prints only the id", () =>
    Effect.gen(function*() {
      const { cli, state, dir } = yield* setup
      const r = yield* cli("job", "run", "-n", "build", "-c", "echo hi", "-t", "helios", "-e", "A=1", "-e", "B=x=y", "-E",
        "-O", "=/out/*.txt", "-T", "k=v", "-W")
      assert.strictEqual(r.code, 0, r.stderr)
      assert.strictEqual(r.stdout, state.submitId)
      const submit = state.requests.find((q) => q.method === "POST" && q.url.pathname === "/0/jobs")!
      assert.deepStrictEqual(JSON.parse(submit.body), {
        name: "build",
        target: "helios",
        output_rules: ["=/out/*.txt"],
        tasks: [{ name: "default", script: "echo hi", env_clear: true, env: { A: "1", B: "x=y" } }],
        inputs: [],
        tags: { k: "v" },
        depends: {}
      })

      // -C reads the script from a file; the target defaults to "default".
      const file = path.join(dir, "build.sh")
      fs.writeFileSync(file, "#!/bin/bash\nmake all\n")
      const r2 = yield* cli("job", "run", "-n", "x", "-C", file, "--no-wait", "--json")
      assert.deepStrictEqual(JSON.parse(r2.stdout), { id: state.submitId })
      const body = JSON.parse(state.requests.filter((q) => q.url.pathname === "/0/jobs").at(-1)!.body)
      assert.strictEqual(body.tasks[0].script, "#!/bin/bash\nmake all\n")
      assert.strictEqual(body.target, "default")
      assert.strictEqual(body.tasks[0].env_clear, false)
    }))

  it.scopedLive("job run: bad arguments are refused before anything is sent", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      const noScript = yield* cli("job", "run", "-n", "x")
      assert.strictEqual(noScript.code, 1)
      assert.include(noScript.stderr, "must specify one of --script (-c) or --script-file (-C)")
      const badEnv = yield* cli("job", "run", "-n", "x", "-c", "true", "-e", "NOVALUE")
      assert.include(badEnv.stderr, `--env (-e) requires KEY=VALUE, got "NOVALUE"`)
      const badRule = yield* cli("job", "run", "-n", "x", "-c", "true", "-O", "relative/*")
      assert.include(badRule.stderr, "must be an absolute path")
      const both = yield* cli("job", "run", "-n", "x", "-c", "true", "-W", "--wait")
      assert.strictEqual(both.code, 1)
      assert.strictEqual(state.requests.length, 0)
    }))

  it.scopedLive("job run (waiting): streams the output and exits with the job's status", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      state.submitId = JOB
      state.jobs.set(JOB, jobView("failed"))
      const events = [
        { seq: 1, task: null, stream: "control", time: "2026-11-21T09:00:01.000Z", time_remote: null, payload: "job assigned to worker W" },
        { seq: 2, task: 0, stream: "task", time: "2026-11-21T09:00:02.000Z", time_remote: null, payload: "starting task 0: \"default\"" },
        { seq: 3, task: 0, stream: "stdout", time: "2026-11-21T09:00:03.000Z", time_remote: null, payload: "hi" }
      ]
      state.events.set(JOB, events)
      state.watch.push((res) => {
        frame(res, "state", "queued", "seq-0")
        frame(res, "state", "running", "seq-0")
        for (const e of events) sseEvent(res, e)
        frame(res, "state", "failed", "seq-3")
        frame(res, "complete", "-")
        res.end()
      })
      const r = yield* cli("job", "run", "-n", "build", "-c", "echo hi")
      assert.strictEqual(r.code, 1)
      assert.strictEqual(
        r.stdout,
        [
          `job ${JOB} submitted`,
          "STATE CHANGE:  -> queued",
          "STATE CHANGE: queued -> running",
          "|=| job assigned to worker W",
          "|T| starting task 0: \"default\"",
          "hi",
          "STATE CHANGE: running -> failed"
        ].join("\n")
      )
      assert.strictEqual(r.stderr, "polling for job output...")
    }))

  it.scopedLive("job tail -j: one JSON event per line, exit 0 when completed", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      state.jobs.set(JOB, jobView("completed"))
      const e1 = { seq: 1, task: 0, stream: "stdout", time: "2026-11-21T09:00:03.000Z", time_remote: null, payload: "{not json}" }
      state.events.set(JOB, [e1])
      state.watch.push((res) => {
        sseEvent(res, e1)
        frame(res, "complete", "-")
        res.end()
      })
      const r = yield* cli("job", "tail", "-j", JOB.toLowerCase())
      assert.strictEqual(r.code, 0, r.stderr)
      assert.deepStrictEqual(r.stdout.split("\n").map((l) => JSON.parse(l)), [e1])
    }))

  it.scopedLive("job show: the job view; --json", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      state.jobs.set(JOB, jobView("completed", { cancelled: false }))
      const r = yield* cli("job", "show", JOB)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.include(r.stdout, `id:       ${JOB}`)
      assert.include(r.stdout, "state:    completed")
      assert.include(r.stdout, "target:   default (resolved to helios-2)")
      assert.match(r.stdout, /assigned\s+2026-11-21T09:00:02.500Z\s+\(\+2\.5s\)/)
      assert.match(r.stdout, /tasks:\n\s+0\s+default\s+completed/)
      assert.include(r.stdout, "output rules:\n    =/out/*.txt\n    %/var/log/**")
      assert.include(r.stdout, "tags:\n    branch=main")
      const j = yield* cli("job", "show", "--json", JOB)
      assert.strictEqual(JSON.parse(j.stdout).target_real, "helios-2")
    }))

  it.scopedLive("job show: a malformed id and an unknown job are reported clearly", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      const bad = yield* cli("job", "show", "nope")
      assert.strictEqual(bad.code, 1)
      assert.strictEqual(bad.stderr, `ERROR: "nope" is not a job id (a 26-character ULID)`)
      assert.strictEqual(state.requests.length, 0)
      const missing = yield* cli("job", "show", JOB)
      assert.strictEqual(missing.code, 1)
      assert.strictEqual(missing.stderr, `ERROR: job ${JOB} not found`)
    }))

  it.scopedLive("job outputs: table and --json", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      state.outputs.set(JOB, [{ id: OUT, path: "/out/report.txt", size: 1536 }])
      const r = yield* cli("job", "outputs", JOB)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.match(r.stdout, /^PATH\s+SIZE\s+ID\n\/out\/report\.txt\s+1\.5KiB\s+01JQTPVT000000000000000000$/)
      const j = yield* cli("job", "outputs", "--json", JOB)
      assert.deepStrictEqual(JSON.parse(j.stdout), [{ id: OUT, path: "/out/report.txt", size: 1536 }])
    }))

  it.scopedLive("job copy: streams to the file and checks the SHA-256", () =>
    Effect.gen(function*() {
      const { cli, state, dir } = yield* setup
      const bytes = new Uint8Array(100_000).map((_, i) => (i * 7) % 251)
      const sha = createHash("sha256").update(bytes).digest("hex")
      state.outputs.set(JOB, [{ id: OUT, path: "/out/blob.bin", size: bytes.length }])
      state.files.set(OUT, bytes)
      state.digests.set(OUT, sha)
      const dst = path.join(dir, "blob.bin")
      const r = yield* cli("job", "copy", JOB, "/out/blob.bin", dst)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.deepStrictEqual(new Uint8Array(fs.readFileSync(dst)), bytes)
      assert.strictEqual(r.stdout, `${dst}: 100000 bytes, sha256 ${sha} (verified)`)
      assert.include(r.stderr, `downloading /out/blob.bin -> ${dst}`)
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["blob.bin", "credentials.toml"])

      const j = yield* cli("job", "cp", "--json", JOB, "/out/blob.bin", dst)
      assert.deepStrictEqual(JSON.parse(j.stdout), {
        job: JOB,
        path: "/out/blob.bin",
        output: OUT,
        file: dst,
        size: 100000,
        sha256: sha,
        verified: true
      })
    }))

  it.scopedLive("job copy: a digest mismatch fails and leaves no file behind", () =>
    Effect.gen(function*() {
      const { cli, state, dir } = yield* setup
      const bytes = new TextEncoder().encode("hello\n")
      state.outputs.set(JOB, [{ id: OUT, path: "/out/a.txt", size: bytes.length }])
      state.files.set(OUT, bytes)
      state.digests.set(OUT, "0".repeat(64))
      const dst = path.join(dir, "a.txt")
      const r = yield* cli("job", "copy", JOB, "/out/a.txt", dst)
      assert.strictEqual(r.code, 1)
      assert.include(r.stderr, "SHA-256 mismatch")
      assert.isFalse(fs.existsSync(dst))
      assert.deepStrictEqual(fs.readdirSync(dir), ["credentials.toml"])

      const missing = yield* cli("job", "copy", JOB, "/out/b.txt", dst)
      assert.strictEqual(missing.code, 1)
      assert.strictEqual(missing.stderr, `ERROR: job ${JOB} does not have a file that matches /out/b.txt`)
    }))

  it.scopedLive("job cancel: posts; a conflict prints the server's message", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      state.jobs.set(JOB, jobView("running"))
      const r = yield* cli("job", "cancel", JOB)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.isTrue(state.requests.some((q) => q.method === "POST" && q.url.pathname === `/0/jobs/${JOB}/cancel`))
      state.jobs.set(JOB, jobView("completed"))
      const c = yield* cli("job", "cancel", JOB)
      assert.strictEqual(c.code, 1)
      assert.strictEqual(c.stderr, "ERROR: job already complete")
    }))

  it.scopedLive("user create / list use the admin token; also as `admin user`", () =>
    Effect.gen(function*() {
      const { cli, state } = yield* setup
      const c = yield* cli("user", "create", "bob")
      assert.strictEqual(c.code, 0, c.stderr)
      assert.strictEqual(c.stdout, "token-for-bob")
      const post = state.requests.find((q) => q.method === "POST" && q.url.pathname === "/0/users")!
      assert.strictEqual(post.headers.authorization, "Bearer admin-secret")
      assert.deepStrictEqual(JSON.parse(post.body), { name: "bob" })

      state.users.push(
        { id: "01JV1000000000000000000000", name: "alice", time_create: "2026-11-20T09:00:00.123Z", privileges: ["admin.job.read", "delegate"] },
        { id: "01JV2000000000000000000000", name: "bob", time_create: "2026-11-21T08:00:00.000Z", privileges: [] }
      )
      const l = yield* cli("admin", "user", "ls")
      assert.strictEqual(l.code, 0, l.stderr)
      const lines = l.stdout.split("\n")
      assert.match(lines[0]!, /^ID\s+NAME\s+AGE\s+CREATED\s+PRIVILEGES$/)
      assert.match(lines[1]!, /^01JV1000000000000000000000\s+alice\s+\S+\s+2026-11-20T09:00:00Z\s+admin\.job\.read,delegate$/)
      assert.match(lines[2]!, /^01JV2000000000000000000000\s+bob\s+\S+\s+2026-11-21T08:00:00Z\s+-$/)
      const j = yield* cli("user", "list", "--json")
      assert.strictEqual(JSON.parse(j.stdout).length, 2)

      // A profile without admin_token uses the user token (refused by this server).
      const n = yield* cli("-p", "noadmin", "user", "list")
      assert.strictEqual(n.code, 1)
      assert.strictEqual(n.stderr, "ERROR: not authorised")
      assert.strictEqual(state.requests.at(-1)!.headers.authorization, "Bearer user-secret")
    }))

  it.scopedLive("a server that is not answering JSON, or not there, is reported as offline", () =>
    Effect.gen(function*() {
      const { cli, state, env } = yield* setup
      state.overrides.push((_req, res) => {
        res.writeHead(502, { "content-type": "text/html" })
        res.end("<html><body>502 Bad Gateway</body></html>")
        return true
      })
      const html = yield* cli("info")
      assert.strictEqual(html.code, 1)
      assert.include(html.stderr, "ERROR: invalid response: server may be offline!")

      state.overrides.length = 0
      state.overrides.push((_req, res) => {
        res.writeHead(200, { "content-type": "text/html" })
        res.end("<html>maintenance</html>")
        return true
      })
      const html200 = yield* cli("info")
      assert.strictEqual(html200.stderr, "ERROR: invalid response: server may be offline!")

      state.overrides.length = 0
      state.overrides.push((_req, res) => {
        apiError(res, 500, "InternalServerError", "database is locked")
        return true
      })
      const e500 = yield* cli("info")
      assert.strictEqual(e500.stderr, "ERROR: database is locked")

      const refused = yield* runCli(["info"], { ...env, BUILDOMAT_URL: "http://127.0.0.1:9" })
      assert.strictEqual(refused.code, 1)
      assert.include(refused.stderr, "ERROR: invalid response: server may be offline!")
    }))

  it.scopedLive("usage errors exit 1; --help exits 0", () =>
    Effect.gen(function*() {
      const { cli } = yield* setup
      const r = yield* cli("job", "frobnicate")
      assert.strictEqual(r.code, 1)
      const h = yield* cli("job", "run", "--help")
      assert.strictEqual(h.code, 0)
    }))
})
