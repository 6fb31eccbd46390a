/**
 * The acting-as seam: per-repository core users created once with the admin token and kept in
 * the App's database, and delegation with `X-Buildomat-Delegate`.
 */
import { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { CoreAccess, Database, Store } from "@buildomat/github"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as NodePath from "node:path"

const ADMIN = "core-access-admin-token-0123456789"

describe("CoreAccess", () => {
  it.scopedLive("repo_users: one core user per repository, created once, its token kept", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const url = yield* Testing.serve({ dataDir: NodePath.join(dir, "core"), adminToken: ADMIN }, Layer.succeed(WorkerProvider.WorkerProviders, []))
      const db = NodePath.join(dir, "app.sqlite3")
      const env = CoreAccess.repoUsers({ url, adminToken: ADMIN }).pipe(
        Layer.provideMerge(Store.layer.pipe(Layer.provideMerge(Database.layer(db)))),
        Layer.provide(Testing.httpClientLayer)
      )
      const result = yield* Effect.gen(function*() {
        const access = yield* CoreAccess.CoreAccess
        const store = yield* Store.Store
        const a = yield* access.forRepo(186853002)
        const me = yield* a.api.jobs.whoami()
        const again = yield* (yield* access.forRepo(186853002)).api.jobs.whoami()
        const other = yield* (yield* access.forRepo(7)).api.jobs.whoami()
        const kept = yield* store.getCoreUser(186853002)
        return { me, again, other, kept }
      }).pipe(Effect.provide(env))
      assert.strictEqual(result.me.name, "gong-186853002")
      assert.strictEqual(result.again.id, result.me.id)
      assert.strictEqual(result.other.name, "gong-7")
      assert.strictEqual(Option.getOrThrow(result.kept).name, "gong-186853002")

      // A fresh App database, but the users exist in core: a clear error, not a new identity.
      const env2 = CoreAccess.repoUsers({ url, adminToken: ADMIN }).pipe(
        Layer.provideMerge(Store.layer.pipe(Layer.provideMerge(Database.layer(NodePath.join(dir, "other.sqlite3"))))),
        Layer.provide(Testing.httpClientLayer)
      )
      const err = yield* Effect.flatMap(CoreAccess.CoreAccess, (a) => a.forRepo(7)).pipe(Effect.provide(env2), Effect.flip)
      assert.strictEqual(err._tag, "CoreAccessError")
      assert.match(err.message, /core user gong-7 exists, but its token is not in this App's database/)
    }))

  it.scopedLive("delegate: every request carries the token and X-Buildomat-Delegate: gong-<id>", () =>
    Effect.gen(function*() {
      const seen: Array<Http.IncomingHttpHeaders> = []
      const server = Http.createServer((req, res) => {
        seen.push(req.headers)
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", name: "gong-42" }))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((k) => void server.listen(0, "127.0.0.1", () => k(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const me = yield* Effect.flatMap(CoreAccess.CoreAccess, (a) => Effect.flatMap(a.forRepo(42), (c) => c.api.jobs.whoami())).pipe(
        Effect.provide(CoreAccess.delegate({ url, token: "delegating-token" }).pipe(Layer.provide(Testing.httpClientLayer)))
      )
      assert.strictEqual(me.name, "gong-42")
      assert.strictEqual(seen[0]!["x-buildomat-delegate"], "gong-42")
      assert.strictEqual(seen[0]!["authorization"], "Bearer delegating-token")
    }))
})
