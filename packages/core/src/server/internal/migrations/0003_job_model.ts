/**
 * Migration 3: the job model's sub-objects (buildomat §1.2): inputs, dependencies, the job store
 * and published files.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * - `job_input`: a declared input (`id` NULL until uploaded), or an output copied from a
 *   dependency (`other_job` names the job whose file it is).
 * - `job_depend`: a dependency on an earlier job and whether it is satisfied yet.
 * - `job_store`: named values per job; `secret` is sticky; `source` is `user` or `worker`.
 * - `published_file`: `(owner, series, version, name)` → a job's file; never purged.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE job_input (
    job TEXT NOT NULL REFERENCES job (id),
    name TEXT NOT NULL,
    id TEXT,
    other_job TEXT,
    PRIMARY KEY (job, name)
  )`
  yield* sql`CREATE INDEX job_input_file ON job_input (job, id)`
  yield* sql`CREATE TABLE job_depend (
    job TEXT NOT NULL REFERENCES job (id),
    name TEXT NOT NULL,
    prior_job TEXT NOT NULL,
    copy_outputs INTEGER NOT NULL,
    on_failed INTEGER NOT NULL,
    on_completed INTEGER NOT NULL,
    satisfied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, name)
  )`
  yield* sql`CREATE TABLE job_store (
    job TEXT NOT NULL REFERENCES job (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    secret INTEGER NOT NULL,
    source TEXT NOT NULL,
    time_update TEXT NOT NULL,
    PRIMARY KEY (job, name)
  )`
  yield* sql`CREATE TABLE published_file (
    owner TEXT NOT NULL REFERENCES user (id),
    series TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    job TEXT NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY (owner, series, version, name)
  )`
  yield* sql`CREATE INDEX job_waiting ON job (id) WHERE waiting = 1 AND complete = 0`
})
