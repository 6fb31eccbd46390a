/**
 * Migration 4: factories, and what the administration and factory APIs need of workers.
 *
 * - `factory`: buildomat's table, with the token stored as a hash (`token_hash`); a NULL hash
 *   marks the record of an in-process provider, which has no token and can never authenticate.
 * - Workers now refer to their factory by id, as in buildomat's schema: every distinct value
 *   of `worker.factory` that is not yet a factory id (the provider names the walking skeleton
 *   stored) becomes an in-process factory record of that name.
 * - `worker.factory_metadata` (JSON), `wait_for_flush` and `diagnostics`, and the
 *   `worker_event` table, with buildomat's columns.
 *
 * Columns and tables are added only if missing, so that this migration composes with another
 * branch's migration that adds some of the same (the agent's `worker_event`, `diagnostics`).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as Ids from "../../../Ids.js"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE factory (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT UNIQUE,
    lastping TEXT,
    enable INTEGER NOT NULL DEFAULT 1,
    hold_workers INTEGER NOT NULL DEFAULT 0
  )`

  const names = yield* sql<{ factory: string }>`SELECT DISTINCT factory FROM worker`
  for (const { factory } of names) {
    const id = Ids.make()
    yield* sql`INSERT INTO factory ${sql.insert({ id, name: factory, token_hash: null })}`
    yield* sql`UPDATE worker SET factory = ${id} WHERE factory = ${factory}`
  }
  yield* sql`CREATE INDEX IF NOT EXISTS worker_factory ON worker (factory, id)`

  const columns = new Set(
    (yield* sql<{ name: string }>`SELECT name FROM pragma_table_info('worker')`).map((c) => c.name)
  )
  if (!columns.has("factory_metadata")) yield* sql`ALTER TABLE worker ADD COLUMN factory_metadata TEXT`
  if (!columns.has("wait_for_flush")) {
    yield* sql`ALTER TABLE worker ADD COLUMN wait_for_flush INTEGER NOT NULL DEFAULT 0`
  }
  if (!columns.has("diagnostics")) yield* sql`ALTER TABLE worker ADD COLUMN diagnostics INTEGER NOT NULL DEFAULT 0`

  yield* sql`CREATE TABLE IF NOT EXISTS worker_event (
    worker TEXT NOT NULL REFERENCES worker (id),
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL,
    time TEXT NOT NULL,
    time_remote TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (worker, seq)
  ) WITHOUT ROWID`
})
