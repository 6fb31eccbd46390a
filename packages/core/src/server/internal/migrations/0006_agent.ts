/**
 * Migration 6 (the agent path): numbered event batches stored as runs. Worker events, the
 * worker's diagnostics flag and its factory metadata come from migration 4; they are added here
 * only if missing.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * - `job.event_batch_seq`: the highest batch number of `POST /ext/0/worker/job/{job}/append`
 *   stored for the job (0: none), so that a resent batch is stored once.
 * - `job_event_run`: events stored as runs, one row per run of consecutive events of one stream
 *   and task: `seq` is the first event's sequence number, `last_seq` the last one's, `payloads`
 *   a JSON array of their payloads. Sequence numbers are shared with `job_event` and stay
 *   gap-free across both tables; `JobStore.events` reads them as one.
 * - `worker_event`: worker events (`POST /0/worker/append`), `seq` from 1 per worker.
 * - `worker.diagnostics`: the agent promised post-job diagnostics; the worker is not recycled at
 *   job completion, and not told to power off, until they complete.
 * - `worker.factory_metadata`: buildomat's factory metadata (JSON), handed to the agent in its
 *   ping.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE job ADD COLUMN event_batch_seq INTEGER NOT NULL DEFAULT 0`
  yield* sql`CREATE TABLE job_event_run (
    job TEXT NOT NULL REFERENCES job (id),
    seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    task INTEGER,
    stream TEXT NOT NULL,
    time TEXT NOT NULL,
    time_remote TEXT,
    payloads TEXT NOT NULL,
    PRIMARY KEY (job, seq)
  )`
  const columns = new Set((yield* sql<{ name: string }>`PRAGMA table_info(worker)`).map((c) => c.name))
  if (!columns.has("diagnostics")) yield* sql`ALTER TABLE worker ADD COLUMN diagnostics INTEGER NOT NULL DEFAULT 0`
  if (!columns.has("factory_metadata")) yield* sql`ALTER TABLE worker ADD COLUMN factory_metadata TEXT`
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
