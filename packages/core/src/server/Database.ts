/**
 * The embedded SQLite database: one file, WAL journal, numbered migrations applied at start.
 * Everything the server stores lives here except file contents (see `ObjectStore`).
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { migrations } from "./internal/migrations.js"

/**
 * Opens (creating if needed) the database at `filename`, turns on WAL with `synchronous=NORMAL`
 * (durable at each checkpoint, safe against corruption) and foreign keys, and applies every
 * migration not yet applied. Provides `SqlClient` (and `SqliteClient`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (filename: string) => {
  const client = SqliteClient.layer({ filename })
  const pragmas = Layer.effectDiscard(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe("PRAGMA synchronous = NORMAL")
      yield* sql.unsafe("PRAGMA foreign_keys = ON")
      yield* sql.unsafe("PRAGMA busy_timeout = 5000")
    })
  )
  const migrator = SqliteMigrator.layer({ loader: SqliteMigrator.fromRecord(migrations) })
  return Layer.mergeAll(pragmas, migrator).pipe(Layer.provideMerge(client), Layer.orDie)
}
