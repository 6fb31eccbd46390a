/**
 * The purge loop (buildomat §5.5): once a job is archived, its rows are deleted from the database
 * in one transaction, keeping only the `job` row (with `time_purged` set) and its
 * `published_file` rows. Reads of the job are served from its archive from then on
 * (`JobArchive`), and its file contents stay in the object store.
 *
 * Operator requests come first (`ArchiveQueue.requestPurge`); otherwise, with `jobAutoPurge`,
 * the oldest archived job whose `time_archived` is older than `purgeAfter` (14 days). After each
 * purge the loop pauses `purgeDelay` (`job.purge_delay_msec`, 500 ms); with nothing to do it waits
 * 1 s when purging automatically, else a minute, or less if an operator asks.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Layer, Option } from "effect"
import { ArchiveQueue } from "./ArchiveQueue.js"
import { BackgroundConfig, clockNow, loop } from "./Background.js"

/**
 * How long the loop waits when it has nothing to do (buildomat: 1 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const INTERVAL = Duration.seconds(1)

/**
 * How long the loop waits when automatic purging is off: a request wakes it at once, so this is
 * only a safety net.
 *
 * @since 0.1.0
 * @category constants
 */
export const IDLE_INTERVAL = Duration.minutes(1)

/**
 * The tables a purge empties of a job's rows, in an order that respects their foreign keys
 * (buildomat's list: job_depend, job_event, job_file, job_input, job_output, job_output_rule,
 * job_store, job_tag, job_time, task; and our `job_event_run`, events stored as runs). Tables this server does not have are skipped.
 *
 * @since 0.1.0
 * @category constants
 */
export const PURGED_TABLES = [
  "job_depend",
  "job_event",
  "job_event_run",
  "job_input",
  "job_output",
  "job_output_rule",
  "job_store",
  "job_tag",
  "job_time",
  "task",
  "job_file"
] as const

/**
 * Purges one archived job. Returns false (and changes nothing) if the job does not exist, is not
 * archived, or is already purged. `job_file` rows that a published file still refers to are kept,
 * so that published downloads keep working.
 *
 * @since 0.1.0
 * @category steps
 */
export const purgeJob = (job: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* clockNow
    return yield* sql.withTransaction(
      Effect.gen(function*() {
        const [j] = yield* sql<{ time_archived: string | null; time_purged: string | null }>`
          SELECT time_archived, time_purged FROM job WHERE id = ${job}`
        if (j === undefined || j.time_archived === null || j.time_purged !== null) return false
        const existing = new Set(
          (yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`).map((r) => r.name)
        )
        for (const table of PURGED_TABLES) {
          if (!existing.has(table)) continue
          if (table === "job_file" && existing.has("published_file")) {
            yield* sql`DELETE FROM job_file WHERE job = ${job} AND NOT EXISTS (
              SELECT 1 FROM published_file p WHERE p.job = job_file.job AND p.file = job_file.id)`
          } else {
            yield* sql`DELETE FROM ${sql(table)} WHERE job = ${job}`
          }
        }
        yield* sql`UPDATE job SET time_purged = ${t} WHERE id = ${job}`
        return true
      })
    )
  }).pipe(Effect.orDie, Effect.withSpan("Purge.purgeJob"))

/**
 * One pass: purges the oldest operator request, else (with `jobAutoPurge`) the oldest job
 * archived more than `purgeAfter` ago. Returns the job purged, if any.
 *
 * @since 0.1.0
 * @category loops
 */
export const purgeOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const queue = yield* ArchiveQueue
  const options = yield* BackgroundConfig
  for (;;) {
    const requested = yield* queue.nextPurge
    if (Option.isNone(requested)) break
    if (yield* purgeJob(requested.value)) {
      yield* Effect.logInfo(`purged job ${requested.value} [operator request]`)
      return requested
    }
    yield* Effect.logWarning(`ignoring the request to purge job ${requested.value}: not archived, or already purged`)
  }
  if (!options.jobAutoPurge) return Option.none<string>()
  const now = yield* Clock.currentTimeMillis
  const before = new Date(now - Duration.toMillis(options.purgeAfter)).toISOString()
  const [j] = yield* sql<{ id: string }>`
    SELECT id FROM job WHERE time_archived IS NOT NULL AND time_purged IS NULL AND time_archived < ${before}
    ORDER BY time_archived, id LIMIT 1`.pipe(Effect.orDie)
  if (j === undefined) return Option.none<string>()
  if (!(yield* purgeJob(j.id))) return Option.none<string>()
  yield* Effect.logInfo(`purged job ${j.id} [automatic]`)
  return Option.some(j.id)
}).pipe(Effect.withSpan("Purge.purgeOnce"))

/**
 * The loop: `purgeDelay` after a purge, else `INTERVAL` (`IDLE_INTERVAL` when automatic purging
 * is off) or until an operator asks.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const queue = yield* ArchiveQueue
    const options = yield* BackgroundConfig
    yield* loop(
      "purge",
      purgeOnce,
      INTERVAL,
      (purged) =>
        Option.isSome(purged)
          ? Effect.sleep(options.purgeDelay)
          : queue.waitPurge(options.jobAutoPurge ? INTERVAL : IDLE_INTERVAL)
    )
  })
)
