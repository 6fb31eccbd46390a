/**
 * Upgrading a database made before factories existed (migration 4): the provider names stored
 * in `worker.factory` become in-process factory records, and the server keeps using them.
 */
import { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import m0001 from "../src/server/internal/migrations/0001_initial.js"
import { ADMIN, client, tempDir } from "./harness.js"

describe("migrations", () => {
  it.scopedLive("0004 turns the provider names of existing workers into factory records", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const dataDir = NodePath.join(dir, "data")
      yield* Effect.sync(() => NodeFs.mkdirSync(dataDir, { recursive: true }))
      const old = SqliteMigrator.layer({ loader: SqliteMigrator.fromRecord({ "0001_initial": m0001 }) }).pipe(
        Layer.provideMerge(SqliteClient.layer({ filename: NodePath.join(dataDir, "data.sqlite3") })),
        Layer.provide(NodeContext.layer)
      )
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const worker = (id: string, factory: string) => ({
          id,
          bootstrap_hash: `b-${id}`,
          factory,
          target: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
          time_create: new Date().toISOString(),
          deleted: 1,
          recycle: 1
        })
        yield* sql`INSERT INTO worker ${sql.insert([
          worker("01ARZ3NDEKTSV4RRFFQ69G5FA1", "local"),
          worker("01ARZ3NDEKTSV4RRFFQ69G5FA2", "local"),
          worker("01ARZ3NDEKTSV4RRFFQ69G5FA3", "retired")
        ])}`
      }).pipe(Effect.provide(old), Effect.scoped)

      const provider: WorkerProvider.WorkerProvider = {
        name: "local",
        targets: ["default"],
        limit: 1,
        create: () => Effect.die("not used"),
        destroy: () => Effect.void,
        list: Effect.succeed([])
      }
      const url = yield* Testing.serve({ dataDir, adminToken: ADMIN }, Layer.succeed(WorkerProvider.WorkerProviders, [provider]))
      const admin = yield* client(url, ADMIN)
      const factories = yield* admin.api.factories.list()
      assert.deepStrictEqual(factories.map((f) => f.name).sort(), ["local", "retired"])
      const byName = new Map(factories.map((f) => [f.name, f.id]))
      const { workers } = yield* admin.api.admin.workersListOld({ urlParams: {} })
      assert.deepStrictEqual(workers.map((w) => [w.id, w.factory, w.diagnostics]), [
        ["01ARZ3NDEKTSV4RRFFQ69G5FA1", byName.get("local"), false],
        ["01ARZ3NDEKTSV4RRFFQ69G5FA2", byName.get("local"), false],
        ["01ARZ3NDEKTSV4RRFFQ69G5FA3", byName.get("retired"), false]
      ])
      // The in-process factory has no token: nothing can act as it.
      const r = yield* Effect.promise(() => fetch(`${url}/0/factory/ping`, { headers: { authorization: "Bearer " } }))
      assert.strictEqual(r.status, 401)
    }))
})
