/**
 * The App's own SQLite database (buildomat's `github/database`): webhook deliveries,
 * repositories, users, installations, check suites and check runs, the per-repository core
 * users and the one-time job-token grants. WAL, foreign keys on, and `synchronous=FULL`: a
 * delivery is acknowledged to GitHub only once it is on disk, and GitHub does not deliver
 * again by itself.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { migrations } from "./internal/migrations.js"

/**
 * Opens (creating it and its directory if needed, mode 0600: it holds core tokens) the
 * database at `filename` and applies the migrations. Provides `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (filename: string): Layer.Layer<SqlClient.SqlClient | SqliteClient.SqliteClient> => {
  const prepare = Layer.effectDiscard(Effect.sync(() => {
    NodeFs.mkdirSync(NodePath.dirname(filename), { recursive: true, mode: 0o700 })
    if (!NodeFs.existsSync(filename)) NodeFs.closeSync(NodeFs.openSync(filename, "a", 0o600))
  }))
  const client = SqliteClient.layer({ filename })
  const pragmas = Layer.effectDiscard(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe("PRAGMA synchronous = FULL")
      yield* sql.unsafe("PRAGMA foreign_keys = ON")
      yield* sql.unsafe("PRAGMA busy_timeout = 5000")
    })
  )
  const migrator = SqliteMigrator.layer({ loader: SqliteMigrator.fromRecord(migrations) }).pipe(
    Layer.provide(NodeContext.layer)
  )
  return Layer.mergeAll(pragmas, migrator).pipe(
    Layer.provideMerge(client),
    Layer.provide(prepare),
    Layer.orDie
  )
}
