/**
 * Two-phase uploads (buildomat §2.8): raw chunks of at most 10 MiB are stored as they arrive;
 * a commit then joins a list of chunks into one file in the object store, checking the total size
 * and recording the file's SHA-256. A commit is keyed by the client's `commit_id`, so resending
 * it polls the same commit instead of storing the file twice.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, Layer, Option, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { MAX_REQUEST_BODY } from "../Api.js"
import { BadRequest, Conflict, PayloadTooLarge } from "../Errors.js"
import * as Ids from "../Ids.js"
import type { WorkerAddOutput } from "../Workers.js"
import { ServerConfig } from "./Config.js"
import { JobStore, type JobRow } from "./JobStore.js"
import { ObjectStore } from "./ObjectStore.js"

interface Commit {
  readonly args: string
  readonly done: Deferred.Deferred<string | null>
  result: Option.Option<string | null>
}

/**
 * The object store key of a job's file.
 *
 * @since 0.1.0
 * @category utils
 */
export const fileKey = (job: string, file: string) => `output/${job}/${file}`

const make = Effect.gen(function*() {
  const config = yield* ServerConfig
  const jobs = yield* JobStore
  const store = yield* ObjectStore
  const scope = yield* Effect.scope
  const chunkRoot = NodePath.join(config.dataDir, "chunk")
  const commits = new Map<string, Commit>()

  const chunkPath = (job: string, chunk: string) => NodePath.join(chunkRoot, job, chunk)

  /**
   * Stores one chunk for a job from a request body stream; at most `MAX_REQUEST_BODY` bytes
   * (413 beyond, and nothing is kept).
   */
  const putChunk = <E>(job: string, body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function*() {
      const id = Ids.make()
      const path = chunkPath(job, id)
      yield* Effect.promise(() => NodeFs.promises.mkdir(NodePath.dirname(path), { recursive: true }))
      const fh = yield* Effect.promise(() => NodeFs.promises.open(path, "wx", 0o600))
      const result = yield* Effect.gen(function*() {
        let n = 0
        yield* Stream.runForEach(body, (chunk) =>
          Effect.gen(function*() {
            n += chunk.length
            if (n > MAX_REQUEST_BODY) {
              return yield* Effect.fail(
                new PayloadTooLarge({ message: `a chunk is at most ${MAX_REQUEST_BODY} bytes` })
              )
            }
            yield* Effect.promise(async () => {
              let off = 0
              while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten
            })
          }))
        return n
      }).pipe(
        Effect.ensuring(Effect.promise(() => fh.close())),
        Effect.onError(() => Effect.promise(() => NodeFs.promises.rm(path, { force: true })))
      )
      return { id, size: result }
    })

  /**
   * Joins `chunks` (in order) into a new file of `job` in the object store, checking that they
   * hold exactly `size` bytes and computing the SHA-256. Returns the new file's id and digest, or
   * a message saying why not; on failure nothing is left in the object store. The chunks are kept
   * (see `removeChunks`).
   */
  const assemble = (job: string, chunks: ReadonlyArray<string>, size: number) =>
    Effect.gen(function*() {
      let total = 0
      for (const c of chunks) {
        const st = yield* Effect.promise(() => NodeFs.promises.stat(chunkPath(job, c)).catch(() => undefined))
        if (st === undefined) return `chunk ${c} does not exist`
        total += st.size
      }
      if (total !== size) return `the chunks hold ${total} bytes, but the file size is ${size}`
      const file = Ids.make()
      const hash = Crypto.createHash("sha256")
      const body = Stream.fromIterable(chunks).pipe(
        Stream.flatMap((c) =>
          Stream.fromAsyncIterable(
            NodeFs.createReadStream(chunkPath(job, c), { highWaterMark: 1024 * 1024 }),
            (e) => new Error(`reading chunk ${c}: ${String(e)}`)
          ), { concurrency: 1 }),
        Stream.map((b) => {
          const u = b as Uint8Array
          hash.update(u)
          return u
        })
      )
      const written = yield* store.put(fileKey(job, file), body).pipe(Effect.either)
      if (written._tag === "Left") return `storing the file failed: ${written.left.message}`
      if (written.right !== size) {
        yield* store.delete(fileKey(job, file)).pipe(Effect.ignore)
        return `stored ${written.right} bytes, expected ${size}`
      }
      return { file, sha256: hash.digest("hex") }
    })

  /** Removes committed chunks. */
  const removeChunks = (job: string, chunks: ReadonlyArray<string>) =>
    Effect.forEach(chunks, (c) => Effect.promise(() => NodeFs.promises.rm(chunkPath(job, c), { force: true })), {
      discard: true
    })

  /**
   * A whole commit: `assemble`, then `record` the file (in the database; a message means it was
   * refused, and the file is removed again), then remove the chunks. Resolves to `null` on
   * success or the error message; never fails.
   */
  const runCommit = (
    job: string,
    chunks: ReadonlyArray<string>,
    size: number,
    record: (file: string, sha256: string) => Effect.Effect<string | undefined>
  ) =>
    Effect.gen(function*() {
      const made = yield* assemble(job, chunks, size)
      if (typeof made === "string") return made
      const err = yield* record(made.file, made.sha256)
      if (err !== undefined) {
        yield* store.delete(fileKey(job, made.file)).pipe(Effect.ignore)
        return err
      }
      yield* removeChunks(job, chunks)
      return null
    }).pipe(
      Effect.catchAllCause((cause) => Effect.succeed(`commit failed: ${String(cause)}`))
    )

  /**
   * Checks the ids of a commit request: `commit_id` (if any) and every chunk must be ULIDs (400).
   */
  const checkIds = (commitId: string | undefined, chunks: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (commitId !== undefined && !Ids.isUlid(commitId)) {
        return yield* Effect.fail(new BadRequest({ message: `commit_id ${JSON.stringify(commitId)} is not a ULID` }))
      }
      for (const c of chunks) {
        if (!Ids.isUlid(c)) return yield* Effect.fail(new BadRequest({ message: `chunk id ${JSON.stringify(c)} is not a ULID` }))
      }
    })

  /**
   * Starts or polls the commit `commitId` of `job` (buildomat §2.8). A known commit sent again
   * with other arguments (`args`, which should name the kind of file too) is a 400; a new one is
   * first checked by `admit` (which fails to refuse it), then `run` in the background. Answers
   * once the commit is done or after `waitMs`, whichever is first; `complete: false` means poll
   * again. `waitMs` undefined waits for the end.
   */
  const track = <E>(
    job: string,
    commitId: string,
    args: string,
    admit: Effect.Effect<void, E>,
    run: Effect.Effect<string | null>,
    waitMs: number | undefined
  ) =>
    Effect.gen(function*() {
      const key = `${job}/${commitId.toUpperCase()}`
      let commit = commits.get(key)
      if (commit !== undefined && commit.args !== args) {
        return yield* Effect.fail(
          new BadRequest({ message: `commit ${commitId} was already used with different arguments` })
        )
      }
      if (commit === undefined) {
        yield* admit
        // Checked again: another request may have started this commit while `admit` ran.
        commit = commits.get(key)
        if (commit === undefined) {
          const c: Commit = { args, done: yield* Deferred.make<string | null>(), result: Option.none() }
          commits.set(key, c)
          commit = c
          yield* run.pipe(
            Effect.tap((r) => Effect.sync(() => (c.result = Option.some(r)))),
            Effect.flatMap((r) => Deferred.succeed(c.done, r)),
            Effect.forkIn(scope)
          )
        } else if (commit.args !== args) {
          return yield* Effect.fail(
            new BadRequest({ message: `commit ${commitId} was already used with different arguments` })
          )
        }
      }
      const r = waitMs === undefined
        ? yield* Effect.map(Deferred.await(commit.done), Option.some)
        : yield* Deferred.await(commit.done).pipe(Effect.timeoutOption(waitMs))
      return Option.match(r, {
        onNone: () => ({ complete: false, error: null }),
        onSome: (error) => ({ complete: true, error })
      })
    })

  /**
   * `POST /1/worker/job/{job}/output`: starts (or polls) the commit of an output. Answers once
   * the commit is done or after `waitMs`, whichever is first; `complete: false` means poll again.
   */
  const addOutput = (job: JobRow, add: WorkerAddOutput, waitMs = 2000) =>
    Effect.gen(function*() {
      yield* checkIds(add.commit_id, [])
      if (!add.path.startsWith("/") || add.path.includes("\0") || add.path.length > 4096) {
        return yield* Effect.fail(new BadRequest({ message: `output path ${JSON.stringify(add.path)} must be an absolute path` }))
      }
      // An output path becomes part of an input name when a later job copies it (§1.7), so it
      // must not be able to climb out of the directory it is placed under.
      if (add.path.split("/").slice(1).some((p) => p === "" || p === "." || p === "..")) {
        return yield* Effect.fail(
          new BadRequest({ message: `output path ${JSON.stringify(add.path)} must be normalised: no empty, "." or ".." components` })
        )
      }
      if (add.size > config.maxBytesPerFile) {
        return yield* Effect.fail(
          new BadRequest({ message: `output of ${add.size} bytes exceeds the limit of ${config.maxBytesPerFile} bytes` })
        )
      }
      yield* checkIds(undefined, add.chunks)
      const admit = Effect.gen(function*() {
        const current = yield* jobs.row(job.id)
        if (Option.isNone(current) || current.value.complete) {
          return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
        }
      })
      return yield* track(
        job.id,
        add.commit_id,
        JSON.stringify(["output", add.path, add.size, add.chunks]),
        admit,
        runCommit(job.id, add.chunks, add.size, (file, sha256) => jobs.recordOutput(job.id, add.path, file, add.size, sha256)),
        waitMs
      )
    })

  /** Whether a job has commits still running (job completion waits for them). */
  const pending = (job: string) =>
    Effect.sync(() => {
      for (const [k, c] of commits) if (k.startsWith(`${job}/`) && Option.isNone(c.result)) return true
      return false
    })

  /** Forgets a completed job's commits and removes its leftover chunks. */
  const forget = (job: string) =>
    Effect.promise(async () => {
      for (const k of [...commits.keys()]) if (k.startsWith(`${job}/`)) commits.delete(k)
      await NodeFs.promises.rm(NodePath.join(chunkRoot, job), { recursive: true, force: true })
    })

  return { putChunk, addOutput, pending, forget, assemble, removeChunks, runCommit, checkIds, track } as const
})

/**
 * @since 0.1.0
 * @category context
 */
export class Uploads extends Context.Tag("@buildomat/core/server/Uploads")<
  Uploads,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `ServerConfig`, `JobStore`, `ObjectStore`; commits run in the layer's scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scoped(Uploads, make)

