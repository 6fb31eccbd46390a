/**
 * Two-phase uploads (buildomat §2.8): raw chunks of at most 10 MiB are stored as they arrive;
 * a commit then joins a list of chunks into one file in the object store, checking the total size
 * and recording the file's SHA-256. A commit is keyed by the client's `commit_id`, so resending
 * it polls the same commit instead of storing the file twice.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, FiberId, Layer, Option, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { MAX_REQUEST_BODY } from "../Api.js"
import { BadRequest, Conflict, NotFound, PayloadTooLarge } from "../Errors.js"
import * as Ids from "../Ids.js"
import type { WorkerAddOutput, WorkerUploadCommit } from "../Workers.js"
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
        runCommit(job.id, add.chunks, add.size, (file, sha256) =>
          // The agent may say what it read (an addition); a file that differs is refused.
          add.sha256 !== undefined && add.sha256 !== null && add.sha256.toLowerCase() !== sha256
            ? Effect.succeed(`the file's SHA-256 is ${sha256}, but the agent read ${add.sha256}`)
            : jobs.recordOutput(job.id, add.path, file, add.size, sha256)),
        waitMs
      )
    })

  /** Whether a job has commits still running (job completion waits for them). */
  const pending = (job: string) =>
    Effect.sync(() => {
      for (const [k, c] of commits) if (k.startsWith(`${job}/`) && Option.isNone(c.result)) return true
      return false
    })

  // -------------------------------------------------------------------------------------------
  // In-order uploads (`PUT /ext/0/worker/job/{job}/upload/{commit}`, issue 4): the parts of one
  // file arrive in order and are written, as they stream in, into one file under
  // `<dataDir>/chunk/<job>/`, hashed on the way; memory stays flat whatever the size. A part cut
  // short is not counted (the next part overwrites it); a resent part is acknowledged without
  // being stored again. At commit the file is fsync'd and handed to the object store (renamed into
  // place by the file-system store), so each byte is written once. Sessions live in memory: after
  // a restart the agent starts the file again.
  // -------------------------------------------------------------------------------------------

  interface Session {
    readonly size: number
    readonly file: string
    readonly fh: NodeFs.promises.FileHandle
    readonly lock: Effect.Semaphore
    /** The digest of the bytes received so far. */
    hash: Crypto.Hash
    /** Completed (and replaced) each time a part is stored. */
    progress: Deferred.Deferred<void>
    received: number
    closed: boolean
    /**
     * A background `fdatasync` of what is received (one at a time, every `SYNC_EVERY` bytes):
     * the disk writes then overlap the network, and the commit's fsync has only the tail left.
     */
    syncing: Promise<void> | undefined
    syncedTo: number
  }
  const sessions = new Map<string, Session>()
  const SYNC_EVERY = 32 * 1024 * 1024
  const creating = yield* Effect.makeSemaphore(1)

  const validPath = (path: string) => path.startsWith("/") && !path.includes("\0") && path.length <= 4096

  const dropSession = (key: string, session: Session) =>
    Effect.promise(async () => {
      sessions.delete(key)
      await session.fh.close().catch(() => undefined)
      await NodeFs.promises.rm(session.file, { force: true })
    })

  /**
   * Stores one part of upload `commit`: the bytes at `offset` of a file of `size` bytes, streamed
   * from `body`. A part is stored only if it starts where the bytes received so far end; any other
   * part (a resend, or one out of place) is not read. Either way the answer is the number of
   * bytes received, which is where the next part must start. The first part (offset 0, possibly
   * empty) opens the upload; a later part for an upload the server does not know is `NotFound`
   * (start again at 0). `body` streams the part to the sink it is given (pausing while the sink's
   * promise is pending); if it fails midway, the part counts for nothing.
   */
  const putPart = <E>(
    job: JobRow,
    commit: string,
    offset: number,
    size: number,
    body: (sink: (chunk: Buffer) => void | Promise<void>) => Effect.Effect<number, E>
  ) =>
    Effect.gen(function*() {
      const key = `${job.id}/${commit.toUpperCase()}`
      if (commits.has(key)) {
        return yield* Effect.fail(new Conflict({ message: `upload ${commit} is already committed` }))
      }
      if (size > config.maxBytesPerFile) {
        return yield* Effect.fail(
          new BadRequest({ message: `output of ${size} bytes exceeds the limit of ${config.maxBytesPerFile} bytes` })
        )
      }
      const session = yield* creating.withPermits(1)(Effect.gen(function*() {
        const existing = sessions.get(key)
        if (existing !== undefined) return existing
        if (offset !== 0) {
          return yield* Effect.fail(
            new NotFound({ message: `upload ${commit} is not in progress (the server may have restarted); start it again at offset 0` })
          )
        }
        const current = yield* jobs.row(job.id)
        if (Option.isNone(current) || current.value.complete) {
          return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
        }
        const file = NodePath.join(chunkRoot, job.id, `upload-${commit.toUpperCase()}`)
        const fh = yield* Effect.promise(async () => {
          await NodeFs.promises.mkdir(NodePath.dirname(file), { recursive: true })
          return NodeFs.promises.open(file, "w+", 0o600)
        })
        const created: Session = {
          size,
          file,
          fh,
          lock: yield* Effect.makeSemaphore(1),
          hash: Crypto.createHash("sha256"),
          progress: Deferred.unsafeMake<void>(FiberId.none),
          received: 0,
          closed: false,
          syncing: undefined,
          syncedTo: 0
        }
        sessions.set(key, created)
        return created
      }))
      if (session.size !== size) {
        return yield* Effect.fail(
          new BadRequest({ message: `upload ${commit} is of ${session.size} bytes, not ${size}` })
        )
      }
      // A part that arrives before the ones it follows (an agent sends a few at once) waits for
      // them as long as they keep being stored (up to 2 s each), rather than being turned away
      // and sent again; if one of them fails, it is turned away at once.
      let seen = session.received
      while (offset > session.received && !session.closed) {
        const woke = yield* Deferred.await(session.progress).pipe(Effect.timeoutOption("2 seconds"))
        if (Option.isNone(woke) || session.received === seen) break
        seen = session.received
      }
      return yield* session.lock.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        if (session.closed) return yield* Effect.fail(new Conflict({ message: `upload ${commit} is being committed` }))
        if (offset !== session.received) return { offset: session.received }
        const hash = session.hash.copy()
        let pos = offset
        // However this part ends, a part waiting for it looks again.
        yield* Effect.addFinalizer(() =>
          Effect.suspend(() => {
            const progress = session.progress
            session.progress = Deferred.unsafeMake<void>(FiberId.none)
            return Deferred.succeed(progress, undefined)
          })
        )
        // Written in slices of about 1 MiB (one `writev` of the network chunks, no copy; a write
        // per 64 KiB network chunk would cost a thread pool round trip each), up to four slices
        // in flight while the next ones arrive; the socket is paused beyond that.
        let pending: Array<Buffer> = []
        let pendingBytes = 0
        const inFlight = new Set<Promise<void>>()
        let failure: unknown
        const writeSlice = (data: Array<Buffer>, n: number, at: number) =>
          session.fh.writev(data, at).then(async ({ bytesWritten }) => {
            if (bytesWritten === n) return
            // Short write (rare): the rest, plainly.
            const all = Buffer.concat(data, n)
            let off = bytesWritten
            while (off < n) off += (await session.fh.write(all, off, n - off, at + off)).bytesWritten
          })
        const flushSlice = (): Promise<void> | undefined => {
          if (pendingBytes === 0) return undefined
          const p = writeSlice(pending, pendingBytes, pos - pendingBytes).catch((e) => {
            failure ??= e
          })
          pending = []
          pendingBytes = 0
          const tracked = p.finally(() => inFlight.delete(tracked))
          inFlight.add(tracked)
          return inFlight.size >= 4 ? Promise.race(inFlight).then(() => undefined) : undefined
        }
        yield* body((chunk) => {
          if (failure !== undefined) throw failure
          if (pos + chunk.length > session.size) {
            throw new Error(`the part at ${offset} goes past the upload's ${session.size} bytes`)
          }
          hash.update(chunk)
          pending.push(chunk)
          pendingBytes += chunk.length
          pos += chunk.length
          return pendingBytes >= 1024 * 1024 ? flushSlice() : undefined
        }).pipe(
          Effect.ensuring(Effect.promise(() => Promise.all([...inFlight]))),
          // A write that failed is the server's fault (500), and worth a retry; the part counts
          // for nothing either way.
          Effect.catchAll((e) => (failure !== undefined ? Effect.die(failure) : Effect.fail(e)))
        )
        flushSlice()
        yield* Effect.promise(() => Promise.all([...inFlight]))
        if (failure !== undefined) return yield* Effect.die(failure)
        session.hash = hash
        session.received = pos
        if (session.syncing === undefined && pos - session.syncedTo >= SYNC_EVERY) {
          session.syncedTo = pos
          // A failure here shows again in the commit's own fsync.
          session.syncing = session.fh.datasync().catch(() => undefined).finally(() => (session.syncing = undefined))
        }
        return { offset: session.received }
      })))
    })

  /**
   * Commits upload `commit` as the output at `path` (`POST .../upload/{commit}/commit`): in the
   * background, checks that exactly `size` bytes were received and that their SHA-256 is
   * `sha256`, stores the file, then records the output. Idempotent and polled like `addOutput`;
   * job completion waits for it.
   */
  const commitUpload = (job: JobRow, commit: string, body: WorkerUploadCommit, waitMs = 2000) =>
    Effect.gen(function*() {
      if (!validPath(body.path)) {
        return yield* Effect.fail(new BadRequest({ message: `output path ${JSON.stringify(body.path)} must be an absolute path` }))
      }
      if (!/^[0-9a-fA-F]{64}$/.test(body.sha256)) {
        return yield* Effect.fail(new BadRequest({ message: `sha256 ${JSON.stringify(body.sha256)} is not 64 hex digits` }))
      }
      const key = `${job.id}/${commit.toUpperCase()}`
      const args = JSON.stringify(["upload", body.path, body.size, body.sha256.toLowerCase()])
      let c = commits.get(key)
      if (c !== undefined && c.args !== args) {
        return yield* Effect.fail(new BadRequest({ message: `commit ${commit} was already used with different arguments` }))
      }
      if (c === undefined) {
        const session = sessions.get(key)
        if (session === undefined) {
          return yield* Effect.fail(
            new NotFound({ message: `upload ${commit} is not in progress (the server may have restarted); start it again` })
          )
        }
        const current = yield* jobs.row(job.id)
        if (Option.isNone(current) || current.value.complete) {
          return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
        }
        const made: Commit = { args, done: yield* Deferred.make<string | null>(), result: Option.none() }
        commits.set(key, made)
        c = made
        const run = Effect.gen(function*() {
          // Waits for a part in progress, and refuses parts from now on.
          yield* session.lock.withPermits(1)(Effect.sync(() => (session.closed = true)))
          const digest = session.hash.digest("hex")
          if (session.received !== body.size) {
            yield* dropSession(key, session)
            return `received ${session.received} bytes, but the file is ${body.size} bytes`
          }
          if (digest !== body.sha256.toLowerCase()) {
            yield* dropSession(key, session)
            return `the file's SHA-256 is ${digest}, but the agent read ${body.sha256.toLowerCase()}`
          }
          yield* Effect.promise(() =>
            Promise.resolve(session.syncing).then(() => session.fh.truncate(session.received)).then(() => session.fh.close())
          )
          sessions.delete(key)
          const file = Ids.make()
          const objectKey = fileKey(job.id, file)
          const stored = yield* (store.putFile !== undefined
            ? store.putFile(objectKey, session.file)
            : store.put(
              objectKey,
              Stream.fromAsyncIterable(NodeFs.createReadStream(session.file, { highWaterMark: 1024 * 1024 }), (e) =>
                new Error(String(e))).pipe(Stream.map((b) => b as Uint8Array))
            )).pipe(Effect.either)
          yield* Effect.promise(() => NodeFs.promises.rm(session.file, { force: true }))
          if (stored._tag === "Left") return `storing the file failed: ${String((stored.left as Error)?.message ?? stored.left)}`
          if (stored.right !== body.size) {
            yield* store.delete(objectKey).pipe(Effect.ignore)
            return `stored ${stored.right} bytes, but the file is ${body.size} bytes`
          }
          const error = yield* jobs.recordOutput(job.id, body.path, file, body.size, digest)
          if (error !== undefined) yield* store.delete(objectKey).pipe(Effect.ignore)
          return error ?? null
        }).pipe(Effect.catchAllCause((cause) => Effect.succeed(`commit failed: ${String(cause)}`)))
        yield* run.pipe(
          Effect.tap((r) => Effect.sync(() => (made.result = Option.some(r)))),
          Effect.flatMap((r) => Deferred.succeed(made.done, r)),
          Effect.forkIn(scope)
        )
      }
      const r = yield* Deferred.await(c.done).pipe(Effect.timeoutOption(waitMs))
      return Option.match(r, {
        onNone: () => ({ complete: false, error: null }),
        onSome: (error) => ({ complete: true, error })
      })
    })

  // Uploads in progress when the server stops are lost (their agents start them again).
  yield* Effect.addFinalizer(() => Effect.forEach([...sessions], ([k, session]) => dropSession(k, session), { discard: true }))

  /** Forgets a completed job's commits and uploads, and removes its leftover chunks. */
  const forget = (job: string) =>
    Effect.gen(function*() {
      for (const [k, session] of [...sessions]) {
        if (k.startsWith(`${job}/`)) yield* dropSession(k, session)
      }
      yield* Effect.promise(async () => {
        for (const k of [...commits.keys()]) if (k.startsWith(`${job}/`)) commits.delete(k)
        await NodeFs.promises.rm(NodePath.join(chunkRoot, job), { recursive: true, force: true })
      })
    })

  return { putChunk, addOutput, pending, forget, assemble, removeChunks, runCommit, checkIds, track, putPart, commitUpload } as const
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

