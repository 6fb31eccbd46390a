/**
 * The file archiving loop (buildomat §5.3), every 15 s, in two steps:
 *
 * - `archiveFilesOnce`: when an archive tier is configured and `fileAutoArchive` is on, copies
 *   each file of a completed job that is not yet archived from the primary store to the archive
 *   tier under the same key (`output/<job>/<file>`), checking its size against the database before
 *   and after, then sets the file's `time_archived`. Without an archive tier it does nothing:
 *   files already are in their only store.
 * - `cleanLocalFilesOnce`: for each completed job not yet cleaned, removes from the primary store
 *   the files that have no database row (a commit interrupted by a crash) and, when an archive tier
 *   is configured, the local copies of archived files. Reads then come from the archive tier
 *   (`ObjectStore.tiered`). A job is cleaned once: when there is an archive tier, after all its
 *   files are archived.
 *
 * A file that cannot be archived is logged and skipped; the next pass tries it again. Nothing is
 * deleted from the primary store unless its archived copy was verified.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Option } from "effect"
import { BackgroundConfig, clockNow, loop } from "./Background.js"
import { StorageTiers } from "./ObjectStore.js"
import { fileKey } from "./Uploads.js"

/**
 * How often the loop runs (buildomat: 15 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const INTERVAL = Duration.seconds(15)

const BATCH = 100

/**
 * Copies the files of completed jobs to the archive tier and marks them archived. Returns the
 * number of files archived.
 *
 * @since 0.1.0
 * @category steps
 */
export const archiveFilesOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tiers = yield* StorageTiers
  const options = yield* BackgroundConfig
  if (Option.isNone(tiers.archive) || !options.fileAutoArchive) return 0
  const archive = tiers.archive.value
  const failed = new Set<string>()
  let archived = 0
  for (;;) {
    const rows = yield* sql<{ job: string; id: string; size: number }>`
      SELECT f.job, f.id, f.size FROM job_file f JOIN job j ON j.id = f.job
      WHERE j.complete = 1 AND f.time_archived IS NULL
      ORDER BY f.job, f.id LIMIT ${BATCH + failed.size}`
    const todo = rows.filter((r) => !failed.has(`${r.job}/${r.id}`))
    if (todo.length === 0) break
    for (const f of todo) {
      const key = fileKey(f.job, f.id)
      const ok = yield* Effect.gen(function*() {
        const local = yield* tiers.primary.head(key)
        if (Option.isNone(local)) {
          // Perhaps archived already, and the server stopped before recording it.
          const remote = yield* archive.head(key)
          if (Option.isSome(remote) && remote.value === f.size) return true
          yield* Effect.logError(`file ${key} is missing from the primary store; cannot archive it`)
          return false
        }
        if (local.value !== f.size) {
          yield* Effect.logError(`file ${key} is ${local.value} bytes, but the database says ${f.size}; not archiving it`)
          return false
        }
        const written = yield* archive.put(key, tiers.primary.get(key))
        if (written !== f.size) {
          yield* Effect.logError(`archiving ${key} copied ${written} bytes, expected ${f.size}`)
          return false
        }
        const remote = yield* archive.head(key)
        if (Option.getOrUndefined(remote) !== f.size) {
          yield* Effect.logError(`archived copy of ${key} is ${Option.getOrUndefined(remote)} bytes, expected ${f.size}`)
          return false
        }
        return true
      }).pipe(
        Effect.catchAll((e) => Effect.logError(`archiving ${key} failed: ${e.message}`).pipe(Effect.as(false)))
      )
      if (!ok) {
        failed.add(`${f.job}/${f.id}`)
        continue
      }
      const t = yield* clockNow
      yield* sql`UPDATE job_file SET time_archived = ${t} WHERE job = ${f.job} AND id = ${f.id}`
      archived++
    }
  }
  if (archived > 0) yield* Effect.logInfo(`archived ${archived} file(s)`)
  return archived
}).pipe(Effect.orDie, Effect.withSpan("FileArchive.archiveFilesOnce"))

/**
 * Cleans the primary store's copy of completed jobs' files (see the module comment). Returns the
 * number of objects removed.
 *
 * @since 0.1.0
 * @category steps
 */
export const cleanLocalFilesOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tiers = yield* StorageTiers
  const separate = Option.isSome(tiers.archive)
  const jobs = separate
    ? yield* sql<{ id: string }>`
      SELECT j.id FROM job j WHERE j.complete = 1 AND j.time_files_cleaned IS NULL
        AND NOT EXISTS (SELECT 1 FROM job_file f WHERE f.job = j.id AND f.time_archived IS NULL)
      ORDER BY j.id LIMIT ${BATCH}`
    : yield* sql<{ id: string }>`
      SELECT id FROM job WHERE complete = 1 AND time_files_cleaned IS NULL ORDER BY id LIMIT ${BATCH}`
  let removed = 0
  for (const j of jobs) {
    const files = yield* sql<{ id: string; time_archived: string | null }>`
      SELECT id, time_archived FROM job_file WHERE job = ${j.id}`
    const known = new Map(files.map((f) => [f.id, f.time_archived]))
    const keys = yield* tiers.primary.list(`output/${j.id}/`)
    let clean = true
    for (const key of keys) {
      const id = key.slice(key.lastIndexOf("/") + 1)
      const row = known.get(id)
      const orphan = row === undefined && !known.has(id)
      const archivedCopy = separate && row !== undefined && row !== null
      if (!orphan && !archivedCopy) continue
      const r = yield* tiers.primary.delete(key).pipe(Effect.either)
      if (r._tag === "Left") {
        yield* Effect.logWarning(`could not remove ${key}: ${r.left.message}`)
        clean = false
        continue
      }
      if (orphan) yield* Effect.logInfo(`removed ${key}: no database record (an interrupted commit)`)
      removed++
    }
    if (clean) {
      const t = yield* clockNow
      yield* sql`UPDATE job SET time_files_cleaned = ${t} WHERE id = ${j.id}`
    }
  }
  return removed
}).pipe(Effect.orDie, Effect.withSpan("FileArchive.cleanLocalFilesOnce"))

/**
 * One pass: archive, then clean.
 *
 * @since 0.1.0
 * @category loops
 */
export const archiveOnce = Effect.gen(function*() {
  const archived = yield* archiveFilesOnce
  const removed = yield* cleanLocalFilesOnce
  return { archived, removed }
}).pipe(Effect.withSpan("FileArchive.archiveOnce"))

/**
 * The loop: a pass at start, then every `INTERVAL`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(loop("file archive", archiveOnce, INTERVAL))
