/**
 * Migration 3, INTERIM (issue 4): buildomat's `job_store` table, only so that the worker job store
 * routes (`http/WorkerJobStoreInterim.ts`) and `bmat store` work before the job model of issue 3
 * lands. When merging, keep issue 3's table and drop this migration.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/** `job_store`: PK(`job`, `name`); `value`; `secret` (sticky); `source` (`user`/`worker`); `time_update`. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS job_store (
    job TEXT NOT NULL REFERENCES job (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    secret INTEGER NOT NULL,
    source TEXT NOT NULL,
    time_update TEXT NOT NULL,
    PRIMARY KEY (job, name)
  )`
})
