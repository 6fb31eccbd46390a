/**
 * Migration 5: the background loops' queues. Indexes for the file archiving queue (files of
 * completed jobs not yet in the archive tier), the job archiving queue and the purge queue
 * (buildomat has the same three), and `job.time_files_cleaned`: when the local cleanup of a
 * completed job's files was done, so that each job is cleaned once (it survives purge, unlike a
 * row in a side table).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE job ADD COLUMN time_files_cleaned TEXT`
  yield* sql`CREATE INDEX job_archive_queue ON job (id) WHERE complete = 1 AND time_archived IS NULL`
  yield* sql`CREATE INDEX job_purge_queue ON job (time_archived) WHERE time_archived IS NOT NULL AND time_purged IS NULL`
  yield* sql`CREATE INDEX job_files_uncleaned ON job (id) WHERE complete = 1 AND time_files_cleaned IS NULL`
  yield* sql`CREATE INDEX job_file_archive_queue ON job_file (job, id) WHERE time_archived IS NULL`
})
