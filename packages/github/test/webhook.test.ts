/**
 * The webhook endpoint over real HTTP: signatures checked on the raw body, deliveries stored once
 * before the answer, bad input refused with a 4xx and nothing stored; and the delivery queue as
 * the dbtool shows it.
 */
import { assert, describe, it } from "@effect/vitest"
import { sign } from "@octokit/webhooks-methods"
import { Effect } from "effect"
import { dbtool } from "./support/dbtool.js"
import { example, INSTALL, pushPayloads, SECRET, world } from "./support/Harness.js"

const deliveries = (db: string) =>
  dbtool(db, "del", "ls").pipe(Effect.map((r) => r.stdout.split("\n").slice(1).filter((l) => l.trim() !== "")))

describe("webhook", () => {
  it.scopedLive("refuses a missing or tampered signature and stores nothing", () =>
    Effect.gen(function*() {
      const w = yield* world()
      const payload = example("ping")
      const body = JSON.stringify(payload)
      const good = yield* Effect.promise(() => sign(SECRET, body))

      const missing = yield* w.deliver("ping", payload, { signature: "" })
      assert.strictEqual(missing.status, 401)
      assert.match(missing.json.message, /X-Hub-Signature-256 is missing/)

      // The signature of the body, sent with one byte of the body changed.
      const tampered = yield* w.deliver("ping", payload, { body: body.replace("\"zen\"", "\"Zen\""), signature: good })
      assert.strictEqual(tampered.status, 401)
      assert.match(tampered.json.message, /does not match/)

      // A signature made with another secret.
      const other = yield* Effect.promise(() => sign("another secret", body))
      assert.strictEqual((yield* w.deliver("ping", payload, { signature: other })).status, 401)
      // Not even sha256=... shaped.
      assert.strictEqual((yield* w.deliver("ping", payload, { signature: "sha1=abc" })).status, 401)

      assert.deepStrictEqual(yield* deliveries(w.dbPath), [])
      const ok = yield* w.deliver("ping", payload, { body })
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(ok.json, { seq: 0, duplicate: false })
    }))

  it.scopedLive("stores an identical redelivery once, refuses a conflicting one, and checks headers and JSON", () =>
    Effect.gen(function*() {
      const w = yield* world()
      const payload = example("ping")
      const uuid = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
      const first = yield* w.deliver("ping", payload, { uuid })
      assert.deepStrictEqual(first.json, { seq: 0, duplicate: false })
      const again = yield* w.deliver("ping", payload, { uuid })
      assert.strictEqual(again.status, 200)
      assert.deepStrictEqual(again.json, { seq: 0, duplicate: true })
      const conflict = yield* w.deliver("ping", { ...payload, zen: "something else" }, { uuid })
      assert.strictEqual(conflict.status, 409)

      const notJson = "{not json"
      const bad = yield* w.deliver("ping", undefined, { body: notJson, signature: yield* Effect.promise(() => sign(SECRET, notJson)) })
      assert.strictEqual(bad.status, 400)
      assert.match(bad.json.message, /not JSON/)

      const rows = yield* deliveries(w.dbPath)
      assert.strictEqual(rows.length, 1)
      assert.match(rows[0]!, /^0\s+1\s+\S+Z\s+ping/)
    }))

  it.scopedLive("acknowledges what it ignores, sets aside what cannot be parsed, and unack re-queues", () =>
    Effect.gen(function*() {
      const w = yield* world()
      // A delete of a branch: acknowledged, nothing to do.
      const del = example("delete")
      del.installation = { id: INSTALL }
      assert.strictEqual((yield* w.deliver("delete", del)).status, 200)
      // A check_suite.requested with no sender: signed and stored, but unusable.
      const broken = example("check_suite", (p) => p.action === "requested")
      delete broken.sender
      assert.strictEqual((yield* w.deliver("check_suite", broken)).status, 200)
      const rows = yield* w.until("both processed", () =>
        Effect.runPromise(deliveries(w.dbPath)).then((r) => (r.length === 2 && r.every((l) => /^\d+\s+1\s/.test(l)) ? r : undefined)))
      assert.match(rows[0]!, /^0\s+1\s+\S+\s+delete\s/)
      assert.match(rows[1]!, /^1\s+1\s+\S+\s+check_suite\s+requested\s+-\s+payload: /)

      const show = yield* dbtool(w.dbPath, "del", "show", "1")
      assert.strictEqual(show.code, 0)
      assert.match(show.stdout, /^delivery: sequence 1 event "check_suite"/)
      assert.match(show.stdout, /error: +payload: .*sender/)

      const unack = yield* dbtool(w.dbPath, "del", "unack", "1")
      assert.strictEqual(unack.stdout, "unacked delivery sequence 1")
      const missing = yield* dbtool(w.dbPath, "del", "unack", "77")
      assert.strictEqual(missing.code, 1)
      assert.match(missing.stderr, /no delivery with sequence 77/)
      // Processed again (and set aside again, since it is still broken).
      yield* w.until("reprocessed", () =>
        Effect.runPromise(dbtool(w.dbPath, "del", "dump", "1")).then((r) => {
          if (r.code !== 0) throw new Error(`dbtool: ${r.stderr}`)
          const row = JSON.parse(r.stdout)
          return row.ack === 1 && row.last_error !== null ? row : undefined
        }))
    }))

  it.scopedLive("a push to a repository without config.toml makes a suite that retires, with no check run", () =>
    Effect.gen(function*() {
      const w = yield* world()
      const sha = w.repo.commit({ "README": "hello\n" }, "first")
      const { push, requested, suite } = pushPayloads(w, sha, "0000000000000000000000000000000000000000")
      assert.strictEqual((yield* w.deliver("push", push)).status, 200)
      assert.strictEqual((yield* w.deliver("check_suite", requested)).status, 200)
      const line = yield* w.until("retired", () =>
        Effect.runPromise(dbtool(w.dbPath, "check", "suite", "ls")).then((r) => {
          const l = r.stdout.split("\n").slice(1)
          return l.length === 1 && /\sretired\s/.test(l[0]!) ? l[0] : undefined
        }))
      assert.match(line, new RegExp(`^[0-9A-Z]{26}\\s+${suite.id}\\s+Codertocat/Hello-World\\s+retired\\s+${sha.slice(0, 16)}\\s+master$`))
      assert.strictEqual(w.fake.runs.size, 0)
      const repos = yield* dbtool(w.dbPath, "repo", "ls")
      assert.match(repos.stdout, /186853002\s+Codertocat\s+Hello-World\s+public/)
      assert.deepStrictEqual(w.fake.violations, [])
    }))
})
