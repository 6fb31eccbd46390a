/**
 * Administration over real HTTP against the real server (SQLite in a temp dir): privileges,
 * delegation, targets, workers and holds, global control, the admin job routes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { ADMIN, client, job, raw, startServer, tempDir, userClient } from "./harness.js"
import { bootAgentFor as bootstrap } from "./live.js"

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } })

/** A request as `token`, with an optional JSON body. */
const call = (url: string, token: string, method: string, path: string, body?: unknown) =>
  raw(url, path, { method, token, ...(body === undefined ? {} : json(body)) })

/** Polls `f` every 20 ms until it returns a value, for at most `ms`. */
const eventually = <A, E, R>(f: Effect.Effect<A | undefined, E, R>, ms = 5000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    for (;;) {
      const a = yield* f
      if (a !== undefined) return a
      if (Date.now() > deadline) return yield* Effect.die(new Error("timed out waiting"))
      yield* Effect.sleep("20 millis")
    }
  })

describe("users and privileges", () => {
  it.scopedLive("every admin route is 401 without its admin.* privilege and allowed with it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const { c: alice } = yield* userClient(url, "alice")
      const { id: jobId } = yield* alice.api.jobs.submit({ payload: job("j") })
      const worker = (yield* Queue.take(requests)).worker
      const admin = yield* client(url, ADMIN)
      const target = yield* admin.api.targets.create({ payload: { name: "t0", desc: "zero" } })
      const factory = yield* admin.api.factories.create({ payload: { name: "f0" } })

      let n = 0
      const cases: Array<[string, string, () => string, () => unknown, number]> = [
        ["user.create", "POST", () => "/0/users", () => ({ name: `made${n}` }), 201],
        ["user.read", "GET", () => "/0/users", () => undefined, 200],
        ["user.read", "GET", () => `/0/users/${factory.id}`, () => undefined, 404],
        ["privilege.grant", "PUT", () => `/0/users/${target.id}/privilege/x`, () => undefined, 404],
        ["privilege.revoke", "DELETE", () => `/0/users/${target.id}/privilege/x`, () => undefined, 404],
        ["job.read", "GET", () => "/0/admin/jobs?active=true", () => undefined, 200],
        ["job.read", "GET", () => "/1/admin/jobs", () => undefined, 200],
        ["job.read", "GET", () => `/0/admin/jobs/${jobId}`, () => undefined, 200],
        ["job.archive", "POST", () => `/0/admin/jobs/${jobId}/archive`, () => undefined, 400],
        ["job.purge", "POST", () => `/0/admin/jobs/${jobId}/purge`, () => undefined, 400],
        ["control", "POST", () => "/0/control/hold", () => undefined, 204],
        ["control", "POST", () => "/0/control/resume", () => undefined, 204],
        ["control", "POST", () => `/0/admin/worker/${worker}/hold`, () => ({ reason: "looking into it" }), 204],
        ["control", "POST", () => `/0/admin/worker/${worker}/release`, () => undefined, 204],
        ["control", "POST", () => `/0/admin/worker/${worker}/recycle`, () => undefined, 204],
        ["control", "POST", () => "/0/workers/recycle", () => undefined, 204],
        ["worker.read", "GET", () => "/0/workers", () => undefined, 200],
        ["worker.read", "GET", () => "/1/workers?active=true", () => undefined, 200],
        ["worker.read", "GET", () => `/0/admin/worker/${worker}`, () => undefined, 200],
        ["worker.read", "GET", () => `/0/admin/worker/${worker}/events`, () => undefined, 200],
        ["factory.create", "POST", () => "/0/admin/factory", () => ({ name: `fac${n}` }), 201],
        ["factory.read", "GET", () => "/0/admin/factories", () => undefined, 200],
        ["factory.write", "POST", () => `/0/admin/factory/${factory.id}/enable`, () => ({}), 204],
        ["factory.write", "POST", () => `/0/admin/factory/${factory.id}/disable`, () => undefined, 204],
        ["target.create", "POST", () => "/0/admin/target", () => ({ name: `tgt${n}`, desc: "d" }), 201],
        ["target.read", "GET", () => "/0/admin/targets", () => undefined, 200],
        ["target.write", "PUT", () => `/0/admin/targets/${target.id}/require/some.priv`, () => undefined, 204],
        ["target.write", "DELETE", () => `/0/admin/targets/${target.id}/require`, () => undefined, 204],
        ["target.write", "PUT", () => `/0/admin/targets/${target.id}/redirect`, () => ({ redirect: null }), 204],
        ["target.write", "POST", () => `/0/admin/targets/${target.id}/rename`, () => ({ new_name: `t${n}`, signpost_description: "s" }), 201],
      ]
      for (const [priv, method, path, body, ok] of cases) {
        n++
        const u = yield* admin.api.users.create({ payload: { name: `u${n}` } })
        // Another admin privilege does not help.
        yield* admin.api.users.grant({ path: { user: u.id as any, privilege: priv === "user.read" ? "admin.job.read" : "admin.user.read" } })
        const before = yield* call(url, u.token, method, path(), body())
        assert.strictEqual(before.status, 401, `${method} ${path()} without admin.${priv}`)
        assert.strictEqual(before.json.message, "not authorised")
        yield* admin.api.users.grant({ path: { user: u.id as any, privilege: `admin.${priv}` } })
        const after = yield* call(url, u.token, method, path(), body())
        assert.strictEqual(after.status, ok, `${method} ${path()} with admin.${priv}: ${after.text}`)
        // The admin token may do everything.
        n++
        const root = yield* call(url, ADMIN, method, path(), body())
        assert.notStrictEqual(root.status, 401)
      }
    }))

  it.scopedLive("grant and revoke: idempotent, validated, and they take effect at once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir)
      const { user } = yield* userClient(url, "bob")
      const admin = yield* client(url, ADMIN)
      assert.strictEqual((yield* call(url, user.token, "GET", "/0/users")).status, 401)

      for (let i = 0; i < 2; i++) {
        const r = yield* call(url, ADMIN, "PUT", `/0/users/${user.id}/privilege/admin.user.read`)
        assert.strictEqual(r.status, 204)
      }
      const slashed = yield* call(url, ADMIN, "PUT", `/0/users/${user.id}/privilege/${encodeURIComponent("team/ci-1.x_y")}`)
      assert.strictEqual(slashed.status, 204)
      const got = yield* admin.api.users.get({ path: { user: user.id as any } })
      assert.deepStrictEqual(got.privileges, ["admin.user.read", "team/ci-1.x_y"])
      assert.strictEqual((yield* call(url, user.token, "GET", "/0/users")).status, 200)
      const byName = yield* admin.api.users.list({ urlParams: { name: "bob" } })
      assert.deepStrictEqual(byName.map((u) => [u.name, u.privileges]), [["bob", ["admin.user.read", "team/ci-1.x_y"]]])

      for (const bad of ["Admin", "has space", "ünï"]) {
        const r = yield* call(url, ADMIN, "PUT", `/0/users/${user.id}/privilege/${encodeURIComponent(bad)}`)
        assert.strictEqual(r.status, 400, bad)
        assert.match(r.json.message, /invalid privilege name/)
      }
      const unknown = yield* call(url, ADMIN, "PUT", `/0/users/01ARZ3NDEKTSV4RRFFQ69G5FAV/privilege/x`)
      assert.strictEqual(unknown.status, 404)
      const badId = yield* call(url, ADMIN, "PUT", `/0/users/bob/privilege/x`)
      assert.strictEqual(badId.status, 400)

      for (let i = 0; i < 2; i++) {
        const r = yield* call(url, ADMIN, "DELETE", `/0/users/${user.id}/privilege/admin.user.read`)
        assert.strictEqual(r.status, 204)
      }
      assert.strictEqual((yield* call(url, user.token, "GET", "/0/users")).status, 401)
      assert.deepStrictEqual((yield* admin.api.users.get({ path: { user: user.id as any } })).privileges, ["team/ci-1.x_y"])
    }))

  it.scopedLive("a delegate acts as, and creates, the user it names; others get 401", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir)
      const { user: svc } = yield* userClient(url, "github")
      const admin = yield* client(url, ADMIN)
      const as = (name: string) => ({ token: svc.token, headers: { "x-buildomat-delegate": name } })

      const refused = yield* raw(url, "/0/whoami", as("gong-42"))
      assert.strictEqual(refused.status, 401)
      assert.deepStrictEqual((yield* admin.api.users.list({ urlParams: { name: "gong-42" } })).length, 0)

      yield* admin.api.users.grant({ path: { user: svc.id as any, privilege: "delegate" } })
      const me = yield* raw(url, "/0/whoami", { token: svc.token })
      assert.strictEqual(me.json.name, "github")
      const who = yield* raw(url, "/0/whoami", as("  gong-42 "))
      assert.strictEqual(who.status, 200)
      assert.strictEqual(who.json.name, "gong-42")
      const again = yield* raw(url, "/0/whoami", as("gong-42"))
      assert.strictEqual(again.json.id, who.json.id)
      const made = yield* admin.api.users.list({ urlParams: { name: "gong-42" } })
      assert.deepStrictEqual(made.map((u) => u.id), [who.json.id])

      // Jobs submitted through delegation belong to the delegated user.
      const submitted = yield* raw(url, "/0/jobs", { ...as("gong-42"), method: "POST", body: JSON.stringify(job("delegated")), headers: { "x-buildomat-delegate": "gong-42", "content-type": "application/json" } })
      assert.strictEqual(submitted.status, 201)
      const view = yield* raw(url, `/0/job/${submitted.json.id}`, as("gong-42"))
      assert.strictEqual(view.json.owner, who.json.id)
      const own = yield* raw(url, "/1/jobs", { token: svc.token })
      assert.deepStrictEqual(own.json.items, [])
      const forbidden = yield* raw(url, `/0/job/${submitted.json.id}`, { token: svc.token })
      assert.strictEqual(forbidden.status, 403)

      for (const bad of ["", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "has space"]) {
        const r = yield* raw(url, "/0/whoami", as(bad))
        assert.strictEqual(r.status, 400, JSON.stringify(bad))
        assert.match(r.json.message, /X-Buildomat-Delegate/)
      }
    }))
})

describe("targets", () => {
  it.scopedLive("create, restrict, redirect, rename with a signpost; jobs resolve at submit time", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir)
      const admin = yield* client(url, ADMIN)
      const { c: alice, user } = yield* userClient(url, "alice")

      const remote = yield* admin.api.targets.create({ payload: { name: "remote", desc: "the remote one" } })
      const listed = yield* admin.api.targets.list()
      assert.deepStrictEqual(listed.find((t) => t.name === "remote"), {
        id: remote.id,
        name: "remote",
        desc: "the remote one",
        redirect: null,
        privilege: null
      })
      assert.isTrue(listed.some((t) => t.name === "default"), "the provider's target exists")
      for (const name of ["", " padded", "padded ", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]) {
        const r = yield* call(url, ADMIN, "POST", "/0/admin/target", { name, desc: "x" })
        assert.strictEqual(r.status, 400, JSON.stringify(name))
      }
      const dup = yield* call(url, ADMIN, "POST", "/0/admin/target", { name: "remote", desc: "again" })
      assert.strictEqual(dup.status, 409)

      const submit = (token: string, target: string) =>
        raw(url, "/0/jobs", { method: "POST", token, ...json(job("j", "true", { target })) })

      // A privilege on the target.
      assert.strictEqual((yield* call(url, ADMIN, "PUT", `/0/admin/targets/${remote.id}/require/team.ci`)).status, 204)
      const denied = yield* submit(user.token, "remote")
      assert.strictEqual(denied.status, 403)
      assert.strictEqual(denied.json.message, "you are not allowed to use that target")
      yield* admin.api.users.grant({ path: { user: user.id as any, privilege: "team.ci" } })
      assert.strictEqual((yield* submit(user.token, "remote")).status, 201)
      const badPriv = yield* call(url, ADMIN, "PUT", `/0/admin/targets/${remote.id}/require/Not%20OK`)
      assert.strictEqual(badPriv.status, 400)

      // A redirect: the job keeps the name it gave and runs on the target it resolved to; the
      // privilege checked is the resolved target's.
      const alias = yield* admin.api.targets.create({ payload: { name: "alias", desc: "points elsewhere" } })
      yield* admin.api.targets.redirect({ path: { target: alias.id as any }, payload: { redirect: remote.id as any } })
      const { user: bob } = yield* userClient(url, "bob")
      assert.strictEqual((yield* submit(bob.token, "alias")).status, 403)
      const viaAlias = yield* alice.api.jobs.submit({ payload: job("via alias", "true", { target: "alias" }) })
      const j1 = yield* alice.api.jobs.get({ path: { job: viaAlias.id as any } })
      assert.strictEqual(j1.target, "alias")
      assert.strictEqual(j1.target_real, "remote")
      const page = yield* alice.api.jobs.list({ urlParams: {} })
      assert.strictEqual(page.items.find((i) => i.id === viaAlias.id)!.target_id, remote.id)

      // No loops, no dangling redirects.
      const loop = yield* call(url, ADMIN, "PUT", `/0/admin/targets/${remote.id}/redirect`, { redirect: alias.id })
      assert.strictEqual(loop.status, 400)
      assert.match(loop.json.message, /loop/)
      const self = yield* call(url, ADMIN, "PUT", `/0/admin/targets/${remote.id}/redirect`, { redirect: remote.id })
      assert.strictEqual(self.status, 400)
      const dangling = yield* call(url, ADMIN, "PUT", `/0/admin/targets/${alias.id}/redirect`, { redirect: "01ARZ3NDEKTSV4RRFFQ69G5FAV" })
      assert.strictEqual(dangling.status, 400)
      const missing = yield* call(url, ADMIN, "PUT", `/0/admin/targets/01ARZ3NDEKTSV4RRFFQ69G5FAV/redirect`, { redirect: null })
      assert.strictEqual(missing.status, 404)

      // Unredirect with an empty body, as buildomat's CLI sends it.
      assert.strictEqual((yield* call(url, ADMIN, "PUT", `/0/admin/targets/${alias.id}/redirect`, {})).status, 204)
      const direct = yield* alice.api.jobs.submit({ payload: job("direct", "true", { target: "alias" }) })
      assert.strictEqual((yield* alice.api.jobs.get({ path: { job: direct.id as any } })).target_real, "alias")

      // Rename leaves a signpost with the old name, the same privilege, redirecting to the
      // renamed target; a job naming the old name lands on the renamed target.
      const renamed = yield* call(url, ADMIN, "POST", `/0/admin/targets/${remote.id}/rename`, {
        new_name: "remote-2026",
        signpost_description: "use remote-2026"
      })
      assert.strictEqual(renamed.status, 201)
      const signpost = renamed.json.id as string
      assert.notStrictEqual(signpost, remote.id)
      const after = yield* admin.api.targets.list()
      assert.deepStrictEqual(after.find((t) => t.id === remote.id), {
        id: remote.id,
        name: "remote-2026",
        desc: "the remote one",
        redirect: null,
        privilege: "team.ci"
      })
      assert.deepStrictEqual(after.find((t) => t.id === signpost), {
        id: signpost,
        name: "remote",
        desc: "use remote-2026",
        redirect: remote.id,
        privilege: "team.ci"
      })
      const old = yield* alice.api.jobs.submit({ payload: job("old name", "true", { target: "remote" }) })
      const j2 = yield* alice.api.jobs.get({ path: { job: old.id as any } })
      assert.strictEqual(j2.target, "remote")
      assert.strictEqual(j2.target_real, "remote-2026")
      assert.strictEqual((yield* alice.api.jobs.list({ urlParams: {} })).items.find((i) => i.id === old.id)!.target_id, remote.id)
      assert.strictEqual((yield* submit(bob.token, "remote")).status, 403)
      // The job submitted before the rename still shows the target it ran on.
      assert.strictEqual((yield* alice.api.jobs.get({ path: { job: viaAlias.id as any } })).target_real, "remote-2026")

      const taken = yield* call(url, ADMIN, "POST", `/0/admin/targets/${alias.id}/rename`, { new_name: "remote-2026", signpost_description: "x" })
      assert.strictEqual(taken.status, 409)
      const same = yield* call(url, ADMIN, "POST", `/0/admin/targets/${alias.id}/rename`, { new_name: "alias", signpost_description: "x" })
      assert.strictEqual(same.status, 409)
      const ulidName = yield* call(url, ADMIN, "POST", `/0/admin/targets/${alias.id}/rename`, { new_name: "01ARZ3NDEKTSV4RRFFQ69G5FAV", signpost_description: "x" })
      assert.strictEqual(ulidName.status, 400)
      // Nothing was lost along the way.
      assert.strictEqual((yield* admin.api.targets.list()).length, after.length)
    }))
})

describe("workers", () => {
  it.scopedLive("a held worker is never assigned, never powered off, never destroyed until released", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests, destroyed } = yield* startServer(dir)
      const admin = yield* client(url, ADMIN)
      const { c: alice } = yield* userClient(url, "alice")
      const { id: jobId } = yield* alice.api.jobs.submit({ payload: job("wait for me", "true", { tags: { k: "v" } }) })

      const r1 = yield* Queue.take(requests)
      const short = yield* call(url, ADMIN, "POST", `/0/admin/worker/${r1.worker}/hold`, { reason: "  " })
      assert.strictEqual(short.status, 400)
      assert.strictEqual((yield* call(url, ADMIN, "POST", `/0/admin/worker/${r1.worker}/hold`, { reason: "checking the disk" })).status, 204)
      const twice = yield* call(url, ADMIN, "POST", `/0/admin/worker/${r1.worker}/hold`, { reason: "checking the disk" })
      assert.strictEqual(twice.status, 409)
      const a1 = yield* bootstrap(url, r1)
      for (let i = 0; i < 30; i++) {
        const p = yield* a1.c.api.worker.ping()
        assert.isFalse(p.poweroff)
        assert.isTrue(p.job == null, "a held worker gets no job")
        yield* Effect.sleep("50 millis")
      }
      assert.strictEqual((yield* alice.api.jobs.get({ path: { job: jobId as any } })).state, "queued")
      const w1 = yield* admin.api.admin.workerGet({ path: { worker: r1.worker as any } })
      assert.strictEqual(w1.hold?.reason, "checking the disk")
      assert.isTrue(w1.bootstrap)
      assert.deepStrictEqual(w1.jobs, [])
      assert.strictEqual(w1.factory_private, `m-${r1.worker}`)

      // Recycled while held: still not powered off, not destroyed.
      yield* admin.api.admin.workerRecycle({ path: { worker: r1.worker as any } })
      yield* Effect.sleep("1500 millis")
      assert.isFalse((yield* a1.c.api.worker.ping()).poweroff)
      assert.notInclude(destroyed, `m-${r1.worker}`)

      // The provisioner made another worker for the job (the held one is not spare); it gets it.
      const r2 = yield* Queue.take(requests)
      const a2 = yield* bootstrap(url, r2)
      const got = yield* eventually(Effect.map(a2.c.api.worker.ping(), (p) => p.job ?? undefined))
      assert.strictEqual(got.id, jobId)
      const w2 = yield* admin.api.admin.workerGet({ path: { worker: r2.worker as any } })
      assert.deepStrictEqual(w2.jobs, [{ id: jobId, name: "wait for me", owner: w2.jobs[0]!.owner, state: "running", tags: { k: "v" } }])

      // Released: the recycled worker is now told to power off and destroyed.
      yield* admin.api.admin.workerRelease({ path: { worker: r1.worker as any } })
      yield* eventually(Effect.sync(() => (destroyed.includes(`m-${r1.worker}`) ? true : undefined)))
      const gone = yield* admin.api.admin.workerGet({ path: { worker: r1.worker as any } })
      assert.isTrue(gone.deleted)
      assert.strictEqual(gone.hold, null)
      const events = yield* admin.api.admin.workerEvents({ path: { worker: r1.worker as any }, urlParams: {} })
      assert.deepStrictEqual(events.map((e) => [e.seq, e.stream, e.payload]), [
        [1, "control", "marked held: checking the disk"],
        [2, "control", "hold released"]
      ])
      assert.deepStrictEqual((yield* admin.api.admin.workerEvents({ path: { worker: r1.worker as any }, urlParams: { minseq: 2 } })).map((e) => e.seq), [2])
      const deletedHold = yield* call(url, ADMIN, "POST", `/0/admin/worker/${r1.worker}/hold`, { reason: "too late now" })
      assert.strictEqual(deletedHold.status, 409)
      assert.strictEqual((yield* call(url, ADMIN, "POST", `/0/admin/worker/${r2.worker}/release`)).status, 204)

      // Listings: legacy and paged, active or all, by factory.
      const all = yield* admin.api.admin.workersListOld({ urlParams: {} })
      assert.deepStrictEqual(all.workers.map((w) => w.id), [r1.worker, r2.worker])
      const active = yield* admin.api.admin.workersListOld({ urlParams: { active: true } })
      assert.deepStrictEqual(active.workers.map((w) => w.id), [r2.worker])
      const factories = yield* admin.api.factories.list()
      const manual = factories.find((f) => f.name === "manual")!
      assert.isTrue(manual.enable)
      assert.strictEqual(w2.factory, manual.id)
      const p1 = yield* admin.api.admin.workersList({ urlParams: { limit: 1, factory: manual.id } })
      assert.deepStrictEqual(p1.items.map((w) => w.id), [r1.worker])
      const p2 = yield* admin.api.admin.workersList({ urlParams: { page_token: p1.next_page! } })
      assert.deepStrictEqual(p2.items.map((w) => w.id), [r2.worker])
      const pa = yield* admin.api.admin.workersList({ urlParams: { active: true } })
      assert.deepStrictEqual(pa.items.map((w) => w.id), [r2.worker])
      assert.strictEqual(pa.next_page ?? null, null)
      const other = yield* admin.api.admin.workersList({ urlParams: { factory: "01ARZ3NDEKTSV4RRFFQ69G5FAV" } })
      assert.deepStrictEqual(other.items, [])
      assert.strictEqual((yield* call(url, ADMIN, "GET", "/1/workers?page_token=junk")).status, 400)
      assert.strictEqual((yield* call(url, ADMIN, "GET", "/0/admin/worker/01ARZ3NDEKTSV4RRFFQ69G5FAV")).status, 404)

      // Recycle everything: the running job's worker goes, and the job fails.
      yield* admin.api.admin.workersRecycle()
      const failed = yield* eventually(
        Effect.map(alice.api.jobs.get({ path: { job: jobId as any } }), (j) => (j.state === "failed" ? j : undefined))
      )
      assert.strictEqual(failed.state, "failed")
      yield* eventually(Effect.sync(() => (destroyed.includes(`m-${r2.worker}`) ? true : undefined)))
    }))
})

describe("control", () => {
  it.scopedLive("hold stops new workers and leases, resume lets them go; factory switches apply in-process", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url, requests } = yield* startServer(dir)
      const admin = yield* client(url, ADMIN)
      const { c: alice } = yield* userClient(url, "alice")
      const f = yield* admin.api.factories.create({ payload: { name: "remote-factory" } })
      const fc = yield* client(url, f.token)
      const defaultTarget = (yield* admin.api.targets.list()).find((t) => t.name === "default")!

      yield* admin.api.admin.controlHold()
      yield* alice.api.jobs.submit({ payload: job("held back") })
      yield* Effect.sleep("1500 millis")
      assert.strictEqual(yield* Queue.size(requests), 0, "no worker while held")
      const lease = yield* fc.api.factory.lease({ payload: { supported_targets: [defaultTarget.id as any] } })
      assert.strictEqual(lease.lease, null)

      yield* admin.api.admin.controlResume()
      const r1 = yield* Queue.take(requests).pipe(Effect.timeout("3 seconds"))
      const w1 = yield* admin.api.admin.workerGet({ path: { worker: r1.worker as any } })
      assert.strictEqual(w1.hold, null)

      // The in-process provider's factory record: disabling it stops creation; enabling with
      // hold_workers makes its new workers start held.
      const manual = (yield* admin.api.factories.list()).find((x) => x.name === "manual")!
      yield* admin.api.factories.disable({ path: { factory: manual.id as any } })
      assert.isFalse((yield* admin.api.factories.list()).find((x) => x.name === "manual")!.enable)
      yield* alice.api.jobs.submit({ payload: job("second") })
      yield* Effect.sleep("1500 millis")
      assert.strictEqual(yield* Queue.size(requests), 0, "no worker while the factory is disabled")
      yield* admin.api.factories.enable({ path: { factory: manual.id as any }, payload: { hold_workers: true } })
      const r2 = yield* Queue.take(requests).pipe(Effect.timeout("3 seconds"))
      const w2 = yield* admin.api.admin.workerGet({ path: { worker: r2.worker as any } })
      assert.strictEqual(w2.hold?.reason, "factory is configured to hold all created workers")
      const listed = (yield* admin.api.factories.list()).find((x) => x.name === "manual")!
      assert.isTrue(listed.enable && listed.hold_workers)
      assert.isNotNull(listed.last_ping ?? null)

      const unknown = yield* call(url, ADMIN, "POST", "/0/admin/factory/01ARZ3NDEKTSV4RRFFQ69G5FAV/disable")
      assert.strictEqual(unknown.status, 404)
    }))
})

describe("admin jobs", () => {
  it.scopedLive("list active and completed jobs of every owner; archive and purge requests are validated", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { url } = yield* startServer(dir, 0)
      const admin = yield* client(url, ADMIN)
      const { c: alice } = yield* userClient(url, "alice")
      const { c: bob } = yield* userClient(url, "bob")
      const a = yield* alice.api.jobs.submit({ payload: job("a") })
      const b = yield* bob.api.jobs.submit({ payload: job("b") })
      const c = yield* bob.api.jobs.submit({ payload: job("c") })
      yield* bob.api.jobs.cancel({ path: { job: c.id as any } })
      yield* eventually(Effect.map(bob.api.jobs.get({ path: { job: c.id as any } }), (j) => (j.state === "failed" ? j : undefined)))

      const noFilter = yield* call(url, ADMIN, "GET", "/0/admin/jobs")
      assert.strictEqual(noFilter.status, 400)
      assert.match(noFilter.json.message, /filter/)
      const active = yield* admin.api.admin.jobsGet({ urlParams: { active: true } })
      assert.deepStrictEqual(active.map((j) => j.id), [a.id, b.id])
      assert.strictEqual(active[0]!.name, "a")
      const completed = yield* admin.api.admin.jobsGet({ urlParams: { completed: 5 } })
      assert.deepStrictEqual(completed.map((j) => [j.id, j.state, j.cancelled]), [[c.id, "failed", true]])
      const paged = yield* admin.api.admin.jobsList({ urlParams: { recent_first: true } })
      assert.deepStrictEqual(paged.items.map((j) => j.id), [c.id, b.id, a.id])
      const one = yield* admin.api.admin.jobGet({ path: { job: a.id as any } })
      assert.strictEqual(one.owner, (yield* alice.api.jobs.whoami()).id)
      assert.strictEqual((yield* call(url, ADMIN, "GET", "/0/admin/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")).status, 404)

      const early = yield* call(url, ADMIN, "POST", `/0/admin/jobs/${a.id}/archive`)
      assert.strictEqual(early.status, 400)
      assert.strictEqual(early.json.message, "job cannot be archived until complete")
      assert.strictEqual((yield* call(url, ADMIN, "POST", `/0/admin/jobs/${c.id}/archive`)).status, 204)
      const unarchived = yield* call(url, ADMIN, "POST", `/0/admin/jobs/${c.id}/purge`)
      assert.strictEqual(unarchived.status, 400)
      assert.strictEqual(unarchived.json.message, "job cannot be purged until archived")
      assert.strictEqual((yield* call(url, ADMIN, "POST", "/0/admin/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/archive")).status, 404)
    }))
})
