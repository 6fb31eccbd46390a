/**
 * Uploading outputs (buildomat §3.6, step 3, made loss-free and fast). Each file goes up as an
 * in-order upload (`PUT /ext/0/worker/job/{job}/upload/{commit}?offset=&size=`) in parts of
 * `PART_SIZE`, read while the previous part is on the wire, hashed (SHA-256) as it is read. A
 * failed part is sent again, not the whole file: the server answers every part with the offset it
 * holds, and a resent part is acknowledged without being stored twice. Then the upload is
 * committed with its size and SHA-256, which the server checks against what it stored. If the
 * server lost the upload (it restarted), the file starts again under a new commit id.
 *
 * A file that changes while it is read (its size or modification time, or the bytes read)
 * fails the upload, unless its rule has `%` (then it is a warning, and what was read is kept).
 *
 * @internal
 */
import { Ids } from "@buildomat/core"
import type { Client } from "@buildomat/core"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Crypto from "node:crypto"
import * as fs from "node:fs/promises"
import { Data, Effect, Fiber } from "effect"
import type { EventLog } from "./events.js"
import { describe, retrying } from "./retry.js"
import * as Wire from "./wire.js"

/** How an upload ended; only `Failed` fails the job. */
export type UploadResult = "Uploaded" | "Skipped" | "Failed"

/** The bytes in one part (8 MiB; a request body is at most 10 MiB). */
export const PART_SIZE = 8 * 1024 * 1024
/** How many parts may be on the wire at once. */
const WINDOW = 3

/** How often a pending commit is polled (the server also holds each poll up to 2 s). */
const COMMIT_POLL = "50 millis"
/** A part may be slow on a poor link. */
const PART_TIMEOUT = "5 minutes"
/** How many times a file is started again after the server lost its upload. */
const MAX_RESTARTS = 5

/** A file to upload. */
export interface UploadFile {
  /** The path the job sees, reported to the server. */
  readonly path: string
  /** Where it really is. */
  readonly real: string
  /** `%`: a change of size while uploading, or disappearance, is only a warning. */
  readonly relaxed: boolean
}

/** What uploading needs from the job. */
export interface UploadContext {
  readonly api: Client.ApiClient
  readonly http: HttpClient.HttpClient
  readonly job: Ids.JobId
  readonly log: EventLog
  /** Checks an opened file before it is read (for `bmat add output`: may this user read it?). */
  readonly admit?: ((fh: fs.FileHandle) => Effect.Effect<string | undefined>) | undefined
}

class UploadFailure extends Data.TaggedError("UploadFailure")<{ readonly message: string }> {}
class Restart extends Data.TaggedError("Restart")<{ readonly reason: string }> {}

const wrap = <A, E, R>(what: string, self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.mapError((e) => new UploadFailure({ message: `${what}: ${describe(e)}` })))

/** The largest output the server takes, asked once per job. */
const quotas = new WeakMap<object, number>()
const maxBytes = (ctx: UploadContext) =>
  Effect.suspend(() => {
    const known = quotas.get(ctx.log)
    if (known !== undefined) return Effect.succeed(known)
    return wrap("getting the output quota", retrying("quota", ctx.api.worker.quota({ path: { job: ctx.job } }))).pipe(
      Effect.map((q) => q.max_bytes_per_output),
      Effect.tap((q) => Effect.sync(() => quotas.set(ctx.log, q)))
    )
  })

/** Reads `length` bytes at `offset` into `into` (if given and big enough) or a new buffer. */
const readAt = (fh: fs.FileHandle, offset: number, length: number, into?: Buffer) =>
  Effect.tryPromise({
    try: async () => {
      const buf = into !== undefined && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length)
      let filled = 0
      while (filled < length) {
        const { bytesRead } = await fh.read(buf, filled, length - filled, offset + filled)
        if (bytesRead === 0) break
        filled += bytesRead
      }
      return filled === length ? buf : buf.subarray(0, filled)
    },
    catch: (e) => new UploadFailure({ message: `reading at ${offset}: ${String(e)}` })
  })

/**
 * Uploads one file. Never fails: problems are sent as `worker` events; the result says whether
 * the job must fail. Returns the size and SHA-256 uploaded, when it was.
 */
export const uploadFile = (
  ctx: UploadContext,
  file: UploadFile
): Effect.Effect<{ readonly result: UploadResult; readonly size?: number; readonly sha256?: string }> =>
  Effect.gen(function*() {
    const note = (payload: string) => ctx.log.append(undefined, "worker", [payload])
    const max = yield* maxBytes(ctx)
    const opened = yield* Effect.tryPromise(() => fs.open(file.real, "r")).pipe(Effect.either)
    if (opened._tag === "Left") {
      const code = (opened.left.error as NodeJS.ErrnoException | undefined)?.code
      if (file.relaxed && code === "ENOENT") {
        note(`upload warning: ${file.path} disappeared before it could be uploaded`)
        return { result: "Skipped" as const }
      }
      return yield* new UploadFailure({ message: `opening ${file.path}: ${String(opened.left.error)}` })
    }
    return yield* Effect.acquireUseRelease(
      Effect.succeed(opened.right),
      (fh) =>
        Effect.gen(function*() {
          if (ctx.admit !== undefined) {
            const refusal = yield* ctx.admit(fh)
            if (refusal !== undefined) return yield* new UploadFailure({ message: refusal })
          }
          const before = yield* wrap(`stat ${file.path}`, Effect.tryPromise(() => fh.stat()))
          if (!before.isFile()) return yield* new UploadFailure({ message: `${file.path} is not a regular file` })
          const size = before.size
          if (size > max) {
            return yield* new UploadFailure({ message: `${file.path} is ${size} bytes, more than the ${max} bytes an output may be` })
          }
          note(`uploading: ${file.path} (${size} bytes)`)
          for (let attempt = 0;; attempt++) {
            const done = yield* uploadOnce(ctx, file, fh, before, size).pipe(
              Effect.map((r) => ({ _tag: "Done", ...r }) as const),
              Effect.catchTag("Restart", (r) => Effect.succeed({ _tag: "Restart", reason: r.reason } as const))
            )
            if (done._tag === "Done") {
              note(`uploaded: ${file.path}`)
              return { result: "Uploaded" as const, size: done.size, sha256: done.sha256 }
            }
            if (attempt >= MAX_RESTARTS) {
              return yield* new UploadFailure({ message: `${file.path}: ${done.reason}; gave up after ${attempt + 1} attempts` })
            }
            yield* Effect.logWarning(`upload of ${file.path} starts again: ${done.reason}`)
          }
        }),
      (fh) => Effect.promise(() => fh.close())
    )
  }).pipe(
    Effect.catchTag("UploadFailure", (failure) =>
      Effect.sync(() => {
        ctx.log.append(undefined, "worker", [`upload error: ${failure.message}`])
        return { result: "Failed" as const }
      }))
  )

/** One attempt: every part in order, then the commit. */
const uploadOnce = (
  ctx: UploadContext,
  file: UploadFile,
  fh: fs.FileHandle,
  before: { readonly size: number; readonly mtimeMs: number },
  size: number
) =>
  Effect.gen(function*() {
    const commit = Ids.make()
    const hash = Crypto.createHash("sha256")
    const base = `/ext/0/worker/job/${ctx.job}/upload/${commit}`
    const put = (offset: number, part: Buffer) =>
      retrying(
        "upload part",
        Wire.json<{ offset: number }>(
          ctx.http,
          HttpClientRequest.put(base).pipe(
            HttpClientRequest.setUrlParams({ offset: String(offset), size: String(size) }),
            HttpClientRequest.bodyUint8Array(part, "application/octet-stream")
          )
        ),
        { timeout: PART_TIMEOUT }
      ).pipe(
        Effect.mapError((e): Restart | UploadFailure =>
          e instanceof Wire.StatusError && e.tag === "NotFound"
            ? new Restart({ reason: e.message })
            : new UploadFailure({ message: `uploading ${file.path} at ${offset}: ${describe(e)}` })
        )
      )

    // Up to WINDOW parts are on the wire at once, so that the server stores one while the next
    // ones arrive; the next part is read (from the page cache, usually) meanwhile. The server
    // stores parts only in order and answers each with the offset it holds: if that is not where
    // the part ended (an earlier part was lost), sending resumes from there. Bytes are hashed
    // once, in order, when first read.
    let hashed = 0
    // Whole-part buffers are reused once their part is answered (retries included): a fresh
    // 8 MiB buffer per part costs page faults and the kernel zeroing its pages, which took
    // about 8% off the upload rate here.
    const freeParts: Array<Buffer> = []
    const readPart = (at: number) =>
      readAt(fh, at, Math.min(PART_SIZE, size - at), freeParts.pop()).pipe(
        Effect.tap((part) =>
          Effect.sync(() => {
            if (at === hashed) {
              hash.update(part)
              hashed += part.length
            }
          })
        )
      )
    let offset = 0
    let next = 0
    let eof = false
    const inFlight: Array<{ readonly end: number; readonly part: Buffer; readonly fiber: Fiber.RuntimeFiber<{ offset: number }, Restart | UploadFailure> }> = []
    while (!eof || inFlight.length > 0) {
      while (!eof && inFlight.length < WINDOW) {
        const part = yield* readPart(next)
        const end = next + part.length
        inFlight.push({ end, part, fiber: yield* Effect.fork(put(next, part)) })
        next = end
        if (part.length === 0 || end >= size) eof = true
      }
      const oldest = inFlight.shift()!
      const answer = yield* Fiber.join(oldest.fiber)
      if (oldest.part.length === PART_SIZE) freeParts.push(oldest.part)
      if (answer.offset === oldest.end) {
        offset = oldest.end
        continue
      }
      // A part was lost or turned away: let the others finish, then go on from what is held.
      let held = answer.offset
      for (const f of inFlight.splice(0)) held = Math.max(held, (yield* Fiber.join(f.fiber)).offset)
      if (held > hashed) return yield* new Restart({ reason: `the server holds ${held} bytes, but ${hashed} were read` })
      offset = held
      next = held
      eof = held >= size && size > 0
    }
    // Did the file change while it was read?
    const after = yield* wrap(`stat ${file.path}`, Effect.tryPromise(() => fh.stat()))
    const changed = offset !== size || after.size !== before.size || after.mtimeMs !== before.mtimeMs
    if (changed) {
      const message = `${file.path} changed while it was uploaded (${before.size} bytes when found, ${after.size} now, ${offset} read)`
      if (!file.relaxed) return yield* new UploadFailure({ message })
      ctx.log.append(undefined, "worker", [`upload warning: ${message}`])
    }

    const sha256 = hash.digest("hex")
    const payload = { path: file.path, size: offset, sha256 }
    for (;;) {
      const state = yield* retrying(
        "output commit",
        ctx.api.workerExt.uploadCommit({ path: { job: ctx.job, commit }, payload })
      ).pipe(
        Effect.mapError((e): Restart | UploadFailure =>
          e._tag === "NotFound"
            ? new Restart({ reason: e.message })
            : new UploadFailure({ message: `committing ${file.path}: ${describe(e)}` })
        )
      )
      if (state.complete) {
        if (state.error !== undefined && state.error !== null) {
          return yield* new UploadFailure({ message: `committing ${file.path}: ${state.error}` })
        }
        return { size: offset, sha256 }
      }
      yield* Effect.sleep(COMMIT_POLL)
    }
  })
