/**
 * The administrative commands, in process, against the real core server (`Testing.serve`:
 * SQLite in a temp dir, loopback HTTP), with a provider whose workers the test bootstraps.
 */
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { runCli } from "./support/run.js"

const ADMIN = "admin-cli-token-0123456789"

const start = Effect.gen(function*() {
  const dir = yield* Testing.tempDirectory("buildomat-cli-admin-")
  const { layer: providers, requests, machines: live } = yield* Testing.manualProvider()
  const url = yield* Testing.serve(
    { dataDir: path.join(dir, "data"), adminToken: ADMIN },
    providers
  )
  const config = path.join(dir, "credentials.toml")
  const writeProfile = (secret: string, admin: boolean) =>
    fs.writeFileSync(
      config,
      `[profile.default]\nurl = "${url}"\nsecret = "${secret}"\n${admin ? `admin_token = "${ADMIN}"\n` : ""}`
    )
  writeProfile("nobody-yet", true)
  const cli = (...args: Array<string>) => runCli(args, { BUILDOMAT_CONFIG: config, HOME: dir })
  /** Runs and insists on exit status 0. */
  const ok = (...args: Array<string>) =>
    Effect.tap(cli(...args), (r) => Effect.sync(() => assert.strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`)))
  return { url, requests, cli, ok, writeProfile, live }
})

describe("buildomat admin against the real server", () => {
  it.scopedLive("users: create, list, show, grant, revoke, by name or id; the user token needs admin.*", () =>
    Effect.gen(function*() {
      const { cli, ok, writeProfile } = yield* start
      const token = (yield* ok("admin", "user", "create", "bob")).stdout.trim()
      assert.strictEqual(token.length, 48)
      const created = JSON.parse((yield* ok("user", "create", "--json", "carol")).stdout)
      assert.deepStrictEqual(Object.keys(created).sort(), ["id", "name", "token"])

      yield* ok("admin", "user", "grant", "bob", "admin.user.read")
      yield* ok("a", "user", "grant", created.id, "team/ci")
      const show = yield* ok("admin", "user", "show", "bob")
      assert.match(show.stdout, /^id: +\S{26}$/m)
      assert.include(show.stdout, "name:        bob")
      assert.include(show.stdout, "privileges:\n    * admin.user.read")
      const carol = JSON.parse((yield* ok("admin", "user", "show", "--json", "carol")).stdout)
      assert.deepStrictEqual(carol.privileges, ["team/ci"])
      const list = yield* ok("admin", "user", "ls")
      assert.match(list.stdout.split("\n")[0]!, /^ID\s+NAME\s+AGE\s+CREATED\s+PRIVILEGES$/)
      assert.match(list.stdout, /\bbob\s+\S+\s+\S+\s+admin\.user\.read$/m)

      const missing = yield* cli("admin", "user", "show", "nobody")
      assert.strictEqual(missing.code, 1)
      assert.strictEqual(missing.stderr, "ERROR: no user named \"nobody\"")
      const bad = yield* cli("admin", "user", "grant", "bob", "Not Valid")
      assert.strictEqual(bad.code, 1)
      assert.match(bad.stderr, /^ERROR: invalid privilege name/)

      // Without an admin token, the user's own privileges decide.
      writeProfile(token, false)
      assert.strictEqual((yield* ok("admin", "user", "list", "--json")).code, 0)
      const denied = yield* cli("admin", "user", "create", "dave")
      assert.strictEqual(denied.code, 1)
      assert.strictEqual(denied.stderr, "ERROR: not authorised")
      writeProfile(token, true)
      yield* ok("admin", "user", "revoke", "bob", "admin.user.read")
      assert.deepStrictEqual(JSON.parse((yield* ok("admin", "user", "show", "--json", "bob")).stdout).privileges, [])
      writeProfile(token, false)
      assert.strictEqual((yield* cli("admin", "user", "list")).stderr, "ERROR: not authorised")
    }))

  it.scopedLive("targets: create, restrict, redirect, rename; jobs follow the redirect", () =>
    Effect.gen(function*() {
      const { cli, ok, writeProfile } = yield* start
      const id = (yield* ok("admin", "target", "create", "-d", "the remote ones", "remote")).stdout.trim()
      assert.match(id, /^[0-9A-Z]{26}$/)
      yield* ok("admin", "target", "create", "-d", "an alias", "alias")
      yield* ok("admin", "target", "restrict", "remote", "team.ci")
      yield* ok("admin", "target", "redirect", "alias", id)
      const table = (yield* ok("admin", "target", "list")).stdout.split("\n")
      assert.match(table[0]!, /^ID\s+NAME\s+DESCRIPTION\s+REDIRECT\s+PRIVILEGE$/)
      assert.match(table.find((l) => l.includes(" alias "))!, /alias\s+an alias\s+remote\s+-$/)
      assert.match(table.find((l) => l.startsWith(id))!, /remote\s+the remote ones\s+-\s+team\.ci$/)

      // A user without the privilege cannot use either name; with it, the alias lands on remote.
      const token = (yield* ok("admin", "user", "create", "erin")).stdout.trim()
      writeProfile(token, true)
      const denied = yield* cli("job", "run", "-n", "x", "-c", "true", "-t", "alias", "-W")
      assert.strictEqual(denied.code, 1)
      assert.strictEqual(denied.stderr, "ERROR: you are not allowed to use that target")
      yield* ok("admin", "user", "grant", "erin", "team.ci")
      const job = (yield* ok("job", "run", "-n", "x", "-c", "true", "-t", "alias", "-W")).stdout.trim()
      assert.include((yield* ok("job", "show", job)).stdout, "target:   alias (resolved to remote)")

      // Rename leaves a signpost with the old name.
      const signpost = (yield* ok("admin", "target", "rename", "-d", "now remote-2", "remote", "remote-2")).stdout.trim()
      const targets = JSON.parse((yield* ok("admin", "target", "ls", "--json")).stdout) as Array<any>
      assert.deepStrictEqual(targets.find((t) => t.id === signpost), {
        id: signpost,
        name: "remote",
        desc: "now remote-2",
        redirect: id,
        privilege: "team.ci"
      })
      assert.strictEqual(targets.find((t) => t.id === id).name, "remote-2")
      const viaOld = (yield* ok("job", "run", "-n", "y", "-c", "true", "-t", "remote", "-W")).stdout.trim()
      assert.include((yield* ok("job", "show", viaOld)).stdout, "(resolved to remote-2)")

      yield* ok("admin", "target", "unredirect", "alias")
      yield* ok("admin", "target", "unrestrict", "remote-2")
      const after = JSON.parse((yield* ok("admin", "target", "list", "--json")).stdout) as Array<any>
      assert.strictEqual(after.find((t) => t.name === "alias").redirect, null)
      assert.strictEqual(after.find((t) => t.name === "remote-2").privilege, null)
      const unknown = yield* cli("admin", "target", "restrict", "nowhere", "x")
      assert.strictEqual(unknown.stderr, "ERROR: no target named \"nowhere\"")
      const dup = yield* cli("admin", "target", "create", "-d", "again", "alias")
      assert.strictEqual(dup.code, 1)
      assert.match(dup.stderr, /already exists/)
    }))

  it.scopedLive("factories, workers, admin jobs and control", () =>
    Effect.gen(function*() {
      const { url, requests, cli, ok, writeProfile, live } = yield* start

      // Factories.
      const ftoken = (yield* ok("admin", "factory", "create", "lab")).stdout.trim()
      assert.strictEqual(ftoken.length, 64)
      const flist = (yield* ok("admin", "factory", "list")).stdout.split("\n")
      assert.match(flist[0]!, /^ID\s+NAME\s+FLAGS\s+PING\s+LAST_PING$/)
      assert.match(flist.find((l) => l.includes(" lab "))!, /lab\s+E-\s+-\s+-$/)
      assert.match(flist.find((l) => l.includes(" manual "))!, /manual\s+E-\s+\S+\s+\S+$/)
      yield* ok("admin", "factory", "enable", "-H", "lab")
      yield* ok("admin", "factory", "disable", "lab")
      const lab = (JSON.parse((yield* ok("admin", "factory", "ls", "--json")).stdout) as Array<any>).find((f) => f.name === "lab")
      assert.deepStrictEqual([lab.enable, lab.hold_workers], [false, true])
      const drained = yield* ok("admin", "factory", "drain", lab.id)
      assert.include(drained.stdout, `factory ${lab.id} is disabled and has no active workers`)

      // A job, and the worker made for it.
      const token = (yield* ok("admin", "user", "create", "frank")).stdout.trim()
      writeProfile(token, true)
      const job = (yield* ok("job", "run", "-n", "held up", "-c", "true", "-W")).stdout.trim()
      const req = yield* Queue.take(requests)
      const w = req.worker
      const short = yield* cli("admin", "worker", "hold", "-r", "meh", w)
      assert.strictEqual(short.stderr, "ERROR: please specify a more in depth reason for the hold")
      yield* ok("admin", "worker", "hold", "-r", "inspecting the image", w)
      const agentToken = randomBytes(32).toString("hex")
      const agent = yield* Testing.client(url, agentToken)
      yield* agent.api.bootstrap.bootstrap({ payload: { bootstrap: req.bootstrap, token: agentToken } }).pipe(
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds")))
      )
      const held = (yield* ok("admin", "worker", "list", "-H")).stdout.split("\n")
      assert.match(held[0]!, /^ID\s+FLAGS\s+AGE\s+TARGET\s+INFO\s+PING\s+HOLD$/)
      assert.strictEqual(held.length, 2)
      assert.match(held[1]!, new RegExp(`^${w}\\s+B---H-\\s+\\S+\\s+default\\s+m-${w}\\s+\\S+\\s+inspecting the image$`))
      const again = yield* cli("worker", "hold", "-r", "inspecting the image", w)
      assert.strictEqual(again.code, 1)
      assert.match(again.stderr, new RegExp(`^ERROR: marking ${w} as held: .*already on hold`))

      // Admin job listing shows every owner.
      const jobs = (yield* ok("admin", "job", "list")).stdout.split("\n")
      assert.match(jobs[0]!, /^ID\s+AGE\s+S\s+NAME\s+STATE\s+USER\s+TARGET$/)
      assert.match(jobs.find((l) => l.startsWith(job))!, /q\s+held up\s+queued\s+frank\s+default$/)
      const archive = yield* cli("admin", "job", "archive", job)
      assert.strictEqual(archive.stderr, `ERROR: archiving ${job}: job cannot be archived until complete`)
      const purge = yield* cli("admin", "job", "purge", job)
      assert.strictEqual(purge.stderr, `ERROR: purging ${job}: job cannot be purged until archived`)

      // Control: hold, and the held worker stays put when recycled; release all lets it go.
      yield* ok("control", "hold")
      yield* ok("admin", "control", "resume")
      yield* ok("admin", "worker", "recycle", w)
      yield* Effect.sleep("1200 millis")
      assert.isTrue(live.has(`m-${w}`), "a held worker is not destroyed")
      const released = yield* ok("admin", "worker", "release", "-v", "all")
      assert.strictEqual(released.stdout, `found 1 held workers to release\nreleasing worker ${w}`)
      for (let i = 0; i < 100 && live.has(`m-${w}`); i++) yield* Effect.sleep("20 millis")
      assert.isFalse(live.has(`m-${w}`))
      const tail = yield* ok("admin", "worker", "tail", w).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(tail.stdout, "|=| marked held: inspecting the image\n|=| hold released")
      const tailJson = yield* ok("worker", "tail", "-j", w)
      assert.deepStrictEqual(tailJson.stdout.split("\n").map((l) => JSON.parse(l).seq), [1, 2])
      const all = JSON.parse((yield* ok("admin", "worker", "ls", "--json")).stdout) as Array<any>
      assert.isTrue(all.find((x) => x.id === w).deleted)
      const active = JSON.parse((yield* ok("admin", "worker", "list", "-A", "--json")).stdout) as Array<any>
      assert.isUndefined(active.find((x) => x.id === w))
      yield* ok("admin", "control", "recycle")
      const notAWorker = yield* cli("admin", "worker", "recycle", "w-1")
      assert.strictEqual(notAWorker.stderr, "ERROR: \"w-1\" is not a worker id (a 26-character ULID)")
    }))
})
