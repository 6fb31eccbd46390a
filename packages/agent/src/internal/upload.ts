/**
 * Uploading outputs (buildomat §2.8 and §3.6, step 3): each file is read in 5 MiB chunks, each
 * chunk POSTed on its own, then the ordered chunk list is committed under a fresh ULID and the
 * commit polled until the server has assembled the file.
 *
 * @internal
 */
import { Api, Ids } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import * as fs from "node:fs/promises"
import { Data, Effect } from "effect"
import type { Emit } from "./events.js"
import { describe, retrying } from "./retry.js"
import type { Found } from "./rules.js"

/** How an upload ended; only `Failed` fails the job. */
export type UploadResult = "Uploaded" | "Skipped" | "Failed"

/** How often a pending commit is polled. */
const COMMIT_POLL = "200 millis"
/** A 5 MiB chunk may be slow on a poor link. */
const CHUNK_TIMEOUT = "5 minutes"

class UploadFailure extends Data.TaggedError("UploadFailure")<{ readonly message: string }> {}

const wrap = <A, E, R>(what: string, self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.mapError((e) => new UploadFailure({ message: `${what}: ${describe(e)}` })))

/** Uploads one file found by the output rules. Never fails: problems are sent as events. */
export const uploadFile = (
  api: Client.ApiClient,
  job: Ids.JobId,
  file: Found,
  emit: Emit
): Effect.Effect<UploadResult> =>
  Effect.gen(function*() {
    const quota = () =>
      wrap("getting the output quota", retrying("quota", api.worker.quota({ path: { job } }))).pipe(
        Effect.map((q) => q.max_bytes_per_output)
      )
    const tooBig = (size: number, max: number) =>
      new UploadFailure({ message: `${file.path} is ${size} bytes, more than the ${max} bytes an output may be` })

    const max = yield* quota()
    if (file.size > max) return yield* Effect.fail(tooBig(file.size, max))

    yield* emit("worker", `uploading: ${file.path} (${file.size} bytes)`)
    const handle = yield* Effect.tryPromise(() => fs.open(file.real, "r")).pipe(Effect.either)
    if (handle._tag === "Left") {
      const code = (handle.left.error as NodeJS.ErrnoException | undefined)?.code
      if (file.relaxed && code === "ENOENT") {
        yield* emit("worker", `upload warning: ${file.path} disappeared before it could be uploaded`)
        return "Skipped" as const
      }
      return yield* Effect.fail(new UploadFailure({ message: `opening ${file.path}: ${String(handle.left.error)}` }))
    }

    const { chunks, size } = yield* Effect.acquireUseRelease(
      Effect.succeed(handle.right),
      (fh) =>
        Effect.gen(function*() {
          const buffer = Buffer.alloc(Api.CHUNK_SIZE)
          const chunks: Array<string> = []
          let size = 0
          for (;;) {
            // Fill a whole chunk unless the file ends first.
            let filled = 0
            while (filled < buffer.length) {
              const { bytesRead } = yield* wrap(
                `reading ${file.path}`,
                Effect.tryPromise(() => fh.read(buffer, filled, buffer.length - filled, null))
              )
              if (bytesRead === 0) break
              filled += bytesRead
            }
            if (filled === 0) break
            const uploaded = yield* wrap(
              `uploading a chunk of ${file.path}`,
              retrying("chunk upload", api.worker.chunk({ path: { job }, payload: buffer.subarray(0, filled) }), {
                timeout: CHUNK_TIMEOUT
              })
            )
            chunks.push(uploaded.id)
            size += filled
            if (filled < buffer.length) break
          }
          return { chunks, size }
        }),
      (fh) => Effect.promise(() => fh.close())
    )

    if (size !== file.size) {
      const message = `${file.path} changed size from ${file.size} to ${size} bytes while it was uploaded`
      if (!file.relaxed) return yield* Effect.fail(new UploadFailure({ message }))
      yield* emit("worker", `upload warning: ${message}`)
      const max = yield* quota()
      if (size > max) return yield* Effect.fail(tooBig(size, max))
    }

    // The commit id makes the commit idempotent: resending it asks after the same commit.
    const payload = { path: file.path, size, chunks, commit_id: Ids.make() }
    for (;;) {
      const state = yield* wrap(
        `committing ${file.path}`,
        retrying("output commit", api.worker.addOutput({ path: { job }, payload }))
      )
      if (state.complete) {
        if (state.error !== undefined && state.error !== null) {
          return yield* Effect.fail(new UploadFailure({ message: `committing ${file.path}: ${state.error}` }))
        }
        break
      }
      yield* Effect.sleep(COMMIT_POLL)
    }
    yield* emit("worker", `uploaded: ${file.path}`)
    return "Uploaded" as const
  }).pipe(
    Effect.catchAll((failure) => emit("worker", `upload error: ${failure.message}`).pipe(Effect.as("Failed" as const)))
  )
