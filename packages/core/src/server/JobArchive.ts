/**
 * Job archives (buildomat §5.4): a completed job's metadata, events and file records in one TLV-C
 * file, stored at `job/2/<job>.tlvc` in the archive tier (or the primary store when there is no
 * archive tier), with a local cache at `<dataDir>/archive/<job>.tlvc`. Once a job is archived
 * (`job.time_archived` set), reads of it (the job view, events, outputs, the store) are served from
 * the archive, so that the purge loop can then delete its rows.
 *
 * The file layout is buildomat's, version 2:
 *
 * ```
 * BMAT { VERS (u32 BE = 1), TYPE ("archive"), ARCH { VERS (u32 BE = 2), TYPE ("job") } }
 * JOB\0 (ArchivedJob, JSON)
 * INDX  (one u64 BE per event: the byte offset of its EVNT chunk, counted from the end of INDX;
 *        slot i is the event with seq i + 1)
 * EVNT  (one per event, JSON { task, stream, time, time_remote, payload }; seq is implicit)
 * ...
 * ```
 *
 * Differences from buildomat: the job store keeps its ordinary values and drops secret ones
 * (buildomat's code does the reverse, against its own comment); each archived file record also
 * carries its `sha256`; without an archive tier, file records have `time_archived: null`.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Clock, Context, Data, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { NotFound } from "../Errors.js"
import type { Job, JobEvent, JobOutput, JobOutputDigest, Task } from "../Jobs.js"
import * as OutputRules from "../OutputRules.js"
import { ArchiveQueue } from "./ArchiveQueue.js"
import { BackgroundConfig, clockNow, loop } from "./Background.js"
import { ServerConfig } from "./Config.js"
import * as Tlvc from "./internal/tlvc.js"
import { JobStore, type JobRow } from "./JobStore.js"
import { ObjectStore, StorageTiers } from "./ObjectStore.js"

/**
 * The archive format version (`BMAT.ARCH.VERS`), buildomat's `JOB_ARCHIVE_VERSION`.
 *
 * @since 0.1.0
 * @category constants
 */
export const ARCHIVE_VERSION = 2

/**
 * The object key of a job's archive: `job/2/<job>.tlvc` (buildomat §1.9; an S3 store adds its
 * prefix).
 *
 * @since 0.1.0
 * @category utils
 */
export const archiveKey = (job: string) => `job/${ARCHIVE_VERSION}/${job}.tlvc`

// ---------------------------------------------------------------------------------------------
// The archived document (buildomat's `ArchivedJob` and friends, field for field)
// ---------------------------------------------------------------------------------------------

/** @since 0.1.0 @category schemas */
export const ArchivedFile = Schema.Struct({
  job_id: Schema.String,
  id: Schema.String,
  size: Schema.Number,
  time_archived: Schema.NullOr(Schema.String),
  sha256: Schema.optional(Schema.String)
})

/** @since 0.1.0 @category schemas */
export const ArchivedTask = Schema.Struct({
  seq: Schema.Number,
  name: Schema.String,
  script: Schema.String,
  env_clear: Schema.Boolean,
  env: Schema.Record({ key: Schema.String, value: Schema.String }),
  user_id: Schema.NullOr(Schema.Number),
  group_id: Schema.NullOr(Schema.Number),
  workdir: Schema.NullOr(Schema.String),
  complete: Schema.Boolean,
  failed: Schema.Boolean
})

/** @since 0.1.0 @category schemas */
export const ArchivedEvent = Schema.Struct({
  task: Schema.NullOr(Schema.Number),
  stream: Schema.String,
  time: Schema.String,
  time_remote: Schema.NullOr(Schema.String),
  payload: Schema.String
})

/** @since 0.1.0 @category schemas */
export const ArchivedOutputRule = Schema.Struct({
  rule: Schema.String,
  ignore: Schema.Boolean,
  size_change_ok: Schema.Boolean,
  require_match: Schema.Boolean
})

/** @since 0.1.0 @category schemas */
export const ArchivedInput = Schema.Struct({
  name: Schema.String,
  file: Schema.NullOr(ArchivedFile),
  other_job_id: Schema.NullOr(Schema.String)
})

/** @since 0.1.0 @category schemas */
export const ArchivedOutput = Schema.Struct({ path: Schema.String, file: ArchivedFile })

/**
 * A job store entry; `value` is null for a secret (never archived).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ArchivedStoreEntry = Schema.Struct({
  name: Schema.String,
  value: Schema.NullOr(Schema.String),
  secret: Schema.Boolean,
  source: Schema.String,
  time_update: Schema.String
})

/** @since 0.1.0 @category schemas */
export const ArchivedDepend = Schema.Struct({
  prior_job: Schema.String,
  copy_outputs: Schema.Boolean,
  on_failed: Schema.Boolean,
  on_completed: Schema.Boolean,
  satisfied: Schema.Boolean
})

/** @since 0.1.0 @category schemas */
export const ArchivedWorkerInfo = Schema.Struct({
  id: Schema.String,
  target: Schema.String,
  factory: Schema.Struct({ id: Schema.String, name: Schema.String }),
  factory_private: Schema.NullOr(Schema.String),
  factory_ip: Schema.optional(Schema.NullOr(Schema.String)),
  factory_metadata: Schema.optional(Schema.NullOr(Schema.Unknown))
})

/**
 * The job-level document of an archive (the `JOB\0` chunk), buildomat's `ArchivedJob`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ArchivedJob = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  failed: Schema.Boolean,
  cancelled: Schema.Boolean,
  owner_id: Schema.String,
  owner_name: Schema.String,
  target_name: Schema.String,
  target_id: Schema.String,
  target_resolved_name: Schema.String,
  target_resolved_desc: Schema.String,
  worker_id: Schema.NullOr(Schema.String),
  worker_info: Schema.NullOr(ArchivedWorkerInfo),
  tasks: Schema.Array(ArchivedTask),
  output_rules: Schema.Array(ArchivedOutputRule),
  tags: Schema.Record({ key: Schema.String, value: Schema.String }),
  inputs: Schema.Array(ArchivedInput),
  outputs: Schema.Array(ArchivedOutput),
  times: Schema.Record({ key: Schema.String, value: Schema.String }),
  store: Schema.Record({ key: Schema.String, value: ArchivedStoreEntry }),
  depends: Schema.Record({ key: Schema.String, value: ArchivedDepend })
})
/** @since 0.1.0 @category models */
export type ArchivedJob = typeof ArchivedJob.Type
/** @since 0.1.0 @category models */
export type ArchivedEvent = typeof ArchivedEvent.Type

/**
 * Archiving or reading an archive failed. `reason`:
 * `FilesNotArchived` (a file of the job is not in the archive tier yet: try later),
 * `NotArchivable` (the job is not complete, or already archived),
 * `Corrupt` (the archive does not parse or a checksum does not match),
 * `Storage` (the object store or the local disk failed).
 *
 * @since 0.1.0
 * @category errors
 */
export class ArchiveError extends Data.TaggedError("ArchiveError")<{
  readonly job: string
  readonly reason: "FilesNotArchived" | "NotArchivable" | "Corrupt" | "Storage"
  readonly message: string
  readonly cause?: unknown
}> {}

const decodeJob = Schema.decodeUnknownSync(Schema.parseJson(ArchivedJob))
const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(ArchivedEvent))

// ---------------------------------------------------------------------------------------------
// The container
// ---------------------------------------------------------------------------------------------

const enc = new TextEncoder()

/** The `BMAT` header chunk of a version-2 job archive. */
const bmat = () =>
  Tlvc.chunk(
    "BMAT",
    Buffer.concat([
      Tlvc.chunk("VERS", Tlvc.u32be(1)),
      Tlvc.chunk("TYPE", enc.encode("archive")),
      Tlvc.chunk(
        "ARCH",
        Buffer.concat([Tlvc.chunk("VERS", Tlvc.u32be(ARCHIVE_VERSION)), Tlvc.chunk("TYPE", enc.encode("job"))])
      )
    ])
  )

/**
 * An archive opened for reading: its job document, the event index (verified) and where the
 * events begin.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadedArchive {
  readonly path: string
  readonly job: ArchivedJob
  readonly index: Buffer
  readonly count: number
  readonly eventsOffset: number
}

const readAt = async (fh: NodeFs.promises.FileHandle, offset: number, length: number) => {
  const buf = Buffer.alloc(length)
  let got = 0
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got)
    if (bytesRead === 0) throw new Error(`TLV-C: file ends at byte ${offset + got}, expected ${length - got} more`)
    got += bytesRead
  }
  return buf
}

/** Reads the whole chunk at `offset`, checks it (and its tag) and returns its body. */
const chunkAt = async (fh: NodeFs.promises.FileHandle, offset: number, size: number, tag: string) => {
  if (offset + Tlvc.HEADER_BYTES > size) throw new Error(`TLV-C: expected a ${JSON.stringify(tag)} chunk at byte ${offset}, found the end of the file`)
  const h = Tlvc.readHeader(await readAt(fh, offset, Tlvc.HEADER_BYTES), 0)
  const total = Tlvc.chunkBytes(h.len)
  if (offset + total > size) throw new Error(`TLV-C: ${JSON.stringify(h.tag)} chunk at byte ${offset} is truncated`)
  const c = Tlvc.readChunk(await readAt(fh, offset, total), 0, tag)
  return { body: Buffer.from(c.body), next: offset + total }
}

/**
 * Opens and checks an archive file: the header, the job document and the index; with `full`, every
 * event chunk too, and that the index points at each of them and nothing follows the last.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openFile = (path: string, full: boolean): Promise<LoadedArchive> =>
  (async () => {
    const fh = await NodeFs.promises.open(path, "r")
    try {
      const size = (await fh.stat()).size
      const head = await chunkAt(fh, 0, size, "BMAT")
      let off = 0
      const vers = Tlvc.readChunk(head.body, off, "VERS")
      off = vers.next
      if (vers.body.length !== 4 || Buffer.from(vers.body).readUInt32BE(0) !== 1) throw new Error("unsupported BMAT container version")
      const type = Tlvc.readChunk(head.body, off, "TYPE")
      off = type.next
      if (Buffer.from(type.body).toString("utf8") !== "archive") throw new Error("BMAT.TYPE is not \"archive\"")
      const arch = Tlvc.readChunk(head.body, off, "ARCH")
      const avers = Tlvc.readChunk(arch.body, 0, "VERS")
      if (avers.body.length !== 4 || Buffer.from(avers.body).readUInt32BE(0) !== ARCHIVE_VERSION) {
        throw new Error(`unsupported BMAT.ARCH.VERS (this server reads version ${ARCHIVE_VERSION})`)
      }
      const atype = Tlvc.readChunk(arch.body, avers.next, "TYPE")
      if (Buffer.from(atype.body).toString("utf8") !== "job") throw new Error("BMAT.ARCH.TYPE is not \"job\"")
      const jobChunk = await chunkAt(fh, head.next, size, "JOB\0")
      const job = decodeJob(jobChunk.body.toString("utf8"))
      const indx = await chunkAt(fh, jobChunk.next, size, "INDX")
      if (indx.body.length % 8 !== 0) throw new Error("INDX is not a whole number of u64 slots")
      const count = indx.body.length / 8
      const eventsOffset = indx.next
      if (full) {
        let pos = eventsOffset
        for (let i = 0; i < count; i++) {
          const expected = Number(indx.body.readBigUInt64BE(i * 8))
          if (pos - eventsOffset !== expected) throw new Error(`INDX slot ${i} says ${expected}, the event is at ${pos - eventsOffset}`)
          const e = await chunkAt(fh, pos, size, "EVNT")
          decodeEvent(e.body.toString("utf8"))
          pos = e.next
        }
        if (pos !== size) throw new Error(`${size - pos} unexpected bytes after the last event`)
      }
      return { path, job, index: indx.body, count, eventsOffset }
    } finally {
      await fh.close()
    }
  })()

/**
 * Reads events `minseq..` (at most `limit`) from an opened archive, checking each chunk.
 *
 * @since 0.1.0
 * @category utils
 */
export const readEvents = (a: LoadedArchive, minseq: number, limit: number): Promise<Array<JobEvent>> =>
  (async () => {
    const first = Math.max(1, minseq)
    if (first > a.count || limit <= 0) return []
    const fh = await NodeFs.promises.open(a.path, "r")
    try {
      const size = (await fh.stat()).size
      let pos = a.eventsOffset + Number(a.index.readBigUInt64BE((first - 1) * 8))
      const out: Array<JobEvent> = []
      for (let seq = first; seq <= a.count && out.length < limit; seq++) {
        const c = await chunkAt(fh, pos, size, "EVNT")
        const e = decodeEvent(c.body.toString("utf8"))
        out.push({ seq, task: e.task, stream: e.stream, time: e.time, time_remote: e.time_remote, payload: e.payload })
        pos = c.next
      }
      return out
    } finally {
      await fh.close()
    }
  })()

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

const CACHE_ENTRIES = 32
const PAGE = 1000

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobStore
  const config = yield* ServerConfig
  const tiers = yield* StorageTiers
  const objects = yield* ObjectStore
  const dir = NodePath.join(config.dataDir, "archive")
  const cachePath = (job: string) => NodePath.join(dir, `${job}.tlvc`)
  const tmpPath = (job: string, what: string) =>
    NodePath.join(dir, `.${job}.${what}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const loaded = new Map<string, LoadedArchive>()
  const target = Option.getOrElse(tiers.archive, () => tiers.primary)
  const separate = Option.isSome(tiers.archive)

  const err = (job: string, reason: ArchiveError["reason"]) => (cause: unknown) =>
    new ArchiveError({ job, reason, message: `job ${job}: ${String((cause as Error)?.message ?? cause)}`, cause })

  const hasTable = (name: string) =>
    sql<{ n: number }>`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ${name}`.pipe(
      Effect.map((r) => (r[0]?.n ?? 0) > 0)
    )

  const bool = (v: unknown) => v === 1 || v === true || v === "1"

  /**
   * The job store, as archived: ordinary values kept, secret values dropped (`value: null`).
   * Reads the `job_store` table if this server has one (the job store's own migration), else the
   * store is archived empty.
   */
  const storeForArchive = (job: string) =>
    Effect.gen(function*() {
      if (!(yield* hasTable("job_store"))) return {}
      const rows = yield* sql<Record<string, unknown>>`SELECT * FROM job_store WHERE job = ${job} ORDER BY name`
      const out: Record<string, typeof ArchivedStoreEntry.Type> = {}
      for (const r of rows) {
        const name = String(r.name)
        const secret = bool(r.secret)
        out[name] = {
          name,
          value: secret || r.value === null || r.value === undefined ? null : String(r.value),
          secret,
          source: String(r.source ?? "user"),
          time_update: String(r.time_update ?? "")
        }
      }
      return out
    })

  const fileRecord = (f: { job: string; id: string; size: number; sha256?: string | null; time_archived: string | null }) =>
    Effect.gen(function*() {
      if (separate && f.time_archived === null) {
        return yield* Effect.fail(
          new ArchiveError({ job: f.job, reason: "FilesNotArchived", message: `file ${f.id} of job ${f.job} is not archived yet` })
        )
      }
      return {
        job_id: f.job,
        id: f.id,
        size: f.size,
        time_archived: f.time_archived,
        ...(f.sha256 ? { sha256: f.sha256 } : {})
      }
    })

  /** Everything but the events, as buildomat's `ArchivedJob`. */
  const collect = (j: JobRow) =>
    Effect.gen(function*() {
      const [owner] = yield* sql<{ name: string }>`SELECT name FROM user WHERE id = ${j.owner}`
      const [target] = yield* sql<{ name: string; desc: string }>`SELECT name, desc FROM target WHERE id = ${j.target_id}`
      let worker_info: ArchivedJob["worker_info"] = null
      if (j.worker !== null) {
        const [w] = yield* sql<Record<string, unknown>>`SELECT * FROM worker WHERE id = ${j.worker}`
        if (w !== undefined) {
          const factoryId = String(w.factory)
          let factoryName = factoryId
          if (yield* hasTable("factory")) {
            const [f] = yield* sql<{ name: string }>`SELECT name FROM factory WHERE id = ${factoryId}`
            if (f !== undefined) factoryName = f.name
          }
          let metadata: unknown = null
          if (typeof w.factory_metadata === "string") {
            try {
              metadata = JSON.parse(w.factory_metadata)
            } catch {
              metadata = w.factory_metadata
            }
          }
          worker_info = {
            id: String(w.id),
            target: String(w.target),
            factory: { id: factoryId, name: factoryName },
            factory_private: (w.factory_private as string | null) ?? null,
            factory_ip: (w.factory_ip as string | null) ?? null,
            factory_metadata: metadata
          }
        }
      }
      const tasks = yield* sql<{
        seq: number
        name: string
        script: string
        env_clear: number
        env: string
        user_id: number | null
        group_id: number | null
        workdir: string | null
        complete: number
        failed: number
      }>`SELECT * FROM task WHERE job = ${j.id} ORDER BY seq`
      const rules = yield* sql<{ rule: string; ignore: number; size_change_ok: number; require_match: number }>`
        SELECT * FROM job_output_rule WHERE job = ${j.id} ORDER BY seq`
      const tags = yield* sql<{ name: string; value: string }>`SELECT name, value FROM job_tag WHERE job = ${j.id} ORDER BY name`
      const times = yield* sql<{ name: string; time: string }>`SELECT name, time FROM job_time WHERE job = ${j.id} ORDER BY name`
      const outputRows = yield* sql<{ path: string; job: string; id: string; size: number; sha256: string; time_archived: string | null }>`
        SELECT o.path AS path, f.job AS job, f.id AS id, f.size AS size, f.sha256 AS sha256, f.time_archived AS time_archived
        FROM job_output o JOIN job_file f ON f.job = o.job AND f.id = o.id WHERE o.job = ${j.id} ORDER BY f.id`
      const outputs: Array<typeof ArchivedOutput.Type> = []
      for (const o of outputRows) outputs.push({ path: o.path, file: yield* fileRecord(o) })

      const inputs: Array<typeof ArchivedInput.Type> = []
      if (yield* hasTable("job_input")) {
        const rows = yield* sql<Record<string, unknown>>`SELECT * FROM job_input WHERE job = ${j.id} ORDER BY name`
        for (const r of rows) {
          const other = (r.other_job as string | null | undefined) ?? null
          const id = (r.id as string | null | undefined) ?? null
          let file: typeof ArchivedFile.Type | null = null
          if (id !== null) {
            const [f] = yield* sql<{ job: string; id: string; size: number; sha256: string | null; time_archived: string | null }>`
              SELECT * FROM job_file WHERE job = ${other ?? j.id} AND id = ${id}`
            if (f !== undefined) file = yield* fileRecord(f)
          }
          inputs.push({ name: String(r.name), file, other_job_id: other })
        }
      }
      const depends: Record<string, typeof ArchivedDepend.Type> = {}
      if (yield* hasTable("job_depend")) {
        const rows = yield* sql<Record<string, unknown>>`SELECT * FROM job_depend WHERE job = ${j.id} ORDER BY name`
        for (const r of rows) {
          depends[String(r.name)] = {
            prior_job: String(r.prior_job),
            copy_outputs: bool(r.copy_outputs),
            on_failed: bool(r.on_failed),
            on_completed: bool(r.on_completed),
            satisfied: bool(r.satisfied)
          }
        }
      }
      const aj: ArchivedJob = {
        id: j.id,
        name: j.name,
        failed: j.failed === 1,
        cancelled: j.cancelled === 1,
        owner_id: j.owner,
        owner_name: owner?.name ?? j.owner,
        target_name: j.target,
        target_id: j.target_id,
        target_resolved_name: target?.name ?? j.target,
        target_resolved_desc: target?.desc ?? "",
        worker_id: j.worker,
        worker_info,
        tasks: tasks.map((t) => ({
          seq: t.seq,
          name: t.name,
          script: t.script,
          env_clear: t.env_clear === 1,
          env: JSON.parse(t.env),
          user_id: t.user_id,
          group_id: t.group_id,
          workdir: t.workdir,
          complete: t.complete === 1,
          failed: t.failed === 1
        })),
        output_rules: rules.map((r) => ({
          rule: r.rule,
          ignore: r.ignore === 1,
          size_change_ok: r.size_change_ok === 1,
          require_match: r.require_match === 1
        })),
        tags: Object.fromEntries(tags.map((t) => [t.name, t.value])),
        inputs,
        outputs,
        times: Object.fromEntries(times.map((t) => [t.name, t.time])),
        store: yield* storeForArchive(j.id),
        depends
      }
      return aj
    })

  /** Writes a job's events as EVNT chunks to `path`; returns their offsets (the index). */
  const writeEvents = (j: JobRow, path: string) =>
    Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => NodeFs.promises.open(path, "wx", 0o600), catch: err(j.id, "Storage") }),
      (fh) =>
        Effect.gen(function*() {
          const index: Array<number> = []
          let pos = 0
          let next = 1
          for (;;) {
            // Through the job store: events are stored one per row or in runs (`job_event_run`).
            const page = yield* jobs.events(j.id, next, PAGE)
            if (page.length === 0) break
            const bufs: Array<Buffer> = []
            for (const e of page) {
              if (e.seq !== next) {
                return yield* Effect.fail(
                  new ArchiveError({ job: j.id, reason: "Corrupt", message: `job ${j.id}: event ${next} is missing (found ${e.seq})` })
                )
              }
              const ev: ArchivedEvent = { task: e.task ?? null, stream: e.stream, time: e.time, time_remote: e.time_remote ?? null, payload: e.payload }
              const c = Tlvc.chunk("EVNT", enc.encode(JSON.stringify(ev)))
              index.push(pos)
              pos += c.length
              bufs.push(c)
              next++
            }
            yield* Effect.tryPromise({ try: () => fh.write(Buffer.concat(bufs)), catch: err(j.id, "Storage") })
          }
          return index
        }),
      (fh) => Effect.promise(() => fh.close().catch(() => undefined))
    )

  /** Writes `front` then the contents of `eventsPath` to `out`, and fsyncs it. */
  const assemble = (jobId: string, out: string, front: Buffer, eventsPath: string) =>
    Effect.tryPromise({
      try: async () => {
        const fh = await NodeFs.promises.open(out, "wx", 0o600)
        try {
          await fh.write(front)
          const src = await NodeFs.promises.open(eventsPath, "r")
          try {
            const buf = Buffer.alloc(1024 * 1024)
            for (;;) {
              const { bytesRead } = await src.read(buf, 0, buf.length, null)
              if (bytesRead === 0) break
              await fh.write(buf.subarray(0, bytesRead))
            }
          } finally {
            await src.close()
          }
          await fh.sync()
        } finally {
          await fh.close()
        }
      },
      catch: err(jobId, "Storage")
    })

  /** Writes the archive of a job to a temporary file in the cache directory; returns its path. */
  const write = (j: JobRow, aj: ArchivedJob) =>
    Effect.gen(function*() {
      yield* Effect.tryPromise({ try: () => NodeFs.promises.mkdir(dir, { recursive: true }), catch: err(j.id, "Storage") })
      const eventsPath = tmpPath(j.id, "events")
      const out = tmpPath(j.id, "tlvc")
      return yield* Effect.gen(function*() {
        const index = yield* writeEvents(j, eventsPath)
        const indx = Buffer.alloc(index.length * 8)
        index.forEach((o, i) => indx.writeBigUInt64BE(BigInt(o), i * 8))
        const front = Buffer.concat([bmat(), Tlvc.chunk("JOB\0", enc.encode(JSON.stringify(aj))), Tlvc.chunk("INDX", indx)])
        yield* assemble(j.id, out, front, eventsPath)
        return out
      }).pipe(
        Effect.ensuring(Effect.promise(() => NodeFs.promises.rm(eventsPath, { force: true }))),
        Effect.onError(() => Effect.promise(() => NodeFs.promises.rm(out, { force: true })))
      )
    })

  /**
   * Archives a completed job: builds the archive, checks it, stores it at `archiveKey(job)`, keeps
   * it as the local cache and sets `time_archived` (last, so that a failure anywhere leaves the job
   * as it was, to be archived again).
   */
  const archive = (jobId: string) =>
    Effect.gen(function*() {
      const row = yield* jobs.row(jobId)
      if (Option.isNone(row) || !row.value.complete || row.value.time_archived !== null) {
        return yield* Effect.fail(
          new ArchiveError({ job: jobId, reason: "NotArchivable", message: `job ${jobId} is not a completed, unarchived job` })
        )
      }
      const j = row.value
      const aj = yield* collect(j).pipe(Effect.catchTag("SqlError", Effect.die))
      const tmp = yield* write(j, aj)
      yield* Effect.gen(function*() {
        const opened = yield* Effect.tryPromise({ try: () => openFile(tmp, true), catch: err(jobId, "Corrupt") })
        const size = (yield* Effect.promise(() => NodeFs.promises.stat(tmp))).size
        const body = Stream.fromAsyncIterable(NodeFs.createReadStream(tmp, { highWaterMark: 1024 * 1024 }), err(jobId, "Storage")).pipe(
          Stream.map((b) => b as Uint8Array)
        )
        const written = yield* target.put(archiveKey(jobId), body).pipe(Effect.mapError(err(jobId, "Storage")))
        const stored = yield* target.head(archiveKey(jobId)).pipe(Effect.mapError(err(jobId, "Storage")))
        if (written !== size || Option.getOrUndefined(stored) !== size) {
          return yield* Effect.fail(
            new ArchiveError({ job: jobId, reason: "Storage", message: `job ${jobId}: stored ${written} bytes of a ${size}-byte archive` })
          )
        }
        yield* Effect.tryPromise({ try: () => NodeFs.promises.rename(tmp, cachePath(jobId)), catch: err(jobId, "Storage") })
        const t = yield* clockNow
        yield* sql`UPDATE job SET time_archived = ${t} WHERE id = ${jobId} AND time_archived IS NULL`.pipe(Effect.orDie)
        remember(jobId, { ...opened, path: cachePath(jobId) })
        yield* Effect.logInfo(`archived job ${jobId}: ${aj.tasks.length} task(s), ${opened.count} event(s), ${aj.outputs.length} output(s), ${size} bytes`)
      }).pipe(Effect.ensuring(Effect.promise(() => NodeFs.promises.rm(tmp, { force: true }))))
    }).pipe(Effect.withSpan("JobArchive.archive"))

  const remember = (job: string, a: LoadedArchive) => {
    loaded.delete(job)
    loaded.set(job, a)
    while (loaded.size > CACHE_ENTRIES) loaded.delete(loaded.keys().next().value!)
  }

  /**
   * An archived job, opened: from memory, else the local cache file, else downloaded from the
   * store into the cache. A file is checked in full (every chunk's checksums, and the index) the
   * first time this process opens it; a damaged cache file is fetched again.
   */
  const load = (jobId: string): Effect.Effect<LoadedArchive, ArchiveError> =>
    Effect.gen(function*() {
      const hit = loaded.get(jobId)
      if (hit !== undefined) {
        remember(jobId, hit)
        return hit
      }
      const path = cachePath(jobId)
      const cached = yield* Effect.promise(() => NodeFs.promises.stat(path).then(() => true, () => false))
      const a = cached
        ? yield* Effect.tryPromise({ try: () => openFile(path, true), catch: err(jobId, "Corrupt") }).pipe(
          Effect.catchAll((e) =>
            Effect.logWarning(`the cached archive of job ${jobId} is unreadable (${e.message}); fetching it again`).pipe(
              Effect.zipRight(Effect.promise(() => NodeFs.promises.rm(path, { force: true }))),
              Effect.zipRight(fetch(jobId))
            )
          )
        )
        : yield* fetch(jobId)
      remember(jobId, a)
      return a
    })

  /** Forgets an opened archive and its cache file (found damaged after it was opened). */
  const evict = (jobId: string) =>
    Effect.promise(async () => {
      loaded.delete(jobId)
      await NodeFs.promises.rm(cachePath(jobId), { force: true })
    })

  const fetch = (jobId: string) =>
    Effect.gen(function*() {
      yield* Effect.tryPromise({ try: () => NodeFs.promises.mkdir(dir, { recursive: true }), catch: err(jobId, "Storage") })
      const tmp = tmpPath(jobId, "fetch")
      return yield* Effect.gen(function*() {
        const fh = yield* Effect.tryPromise({ try: () => NodeFs.promises.open(tmp, "wx", 0o600), catch: err(jobId, "Storage") })
        yield* objects.get(archiveKey(jobId)).pipe(
          Stream.mapError(err(jobId, "Storage")),
          Stream.runForEach((c) => Effect.tryPromise({ try: () => fh.write(c), catch: err(jobId, "Storage") })),
          Effect.zipRight(Effect.tryPromise({ try: () => fh.sync(), catch: err(jobId, "Storage") })),
          Effect.ensuring(Effect.promise(() => fh.close().catch(() => undefined)))
        )
        const a = yield* Effect.tryPromise({ try: () => openFile(tmp, true), catch: err(jobId, "Corrupt") })
        yield* Effect.tryPromise({ try: () => NodeFs.promises.rename(tmp, cachePath(jobId)), catch: err(jobId, "Storage") })
        return { ...a, path: cachePath(jobId) }
      }).pipe(Effect.ensuring(Effect.promise(() => NodeFs.promises.rm(tmp, { force: true }))))
    })

  /** Runs `fromArchive` for an archived job; if the archive cannot be read and the rows are still there, uses them. */
  const either = <A>(
    row: JobRow,
    fromArchive: (a: LoadedArchive) => Effect.Effect<A, ArchiveError>,
    fromRows: Effect.Effect<A, never>
  ): Effect.Effect<A> =>
    row.time_archived === null
      ? fromRows
      : Effect.flatMap(load(row.id), fromArchive).pipe(
        Effect.catchAll((e) =>
          row.time_purged === null
            ? Effect.logError(`reading the archive of job ${row.id} failed (${e.message}); using the database`).pipe(
              Effect.zipRight(fromRows)
            )
            : Effect.die(e)
        )
      )

  const toView = (row: JobRow, aj: ArchivedJob): Job => ({
    id: aj.id,
    owner: aj.owner_id,
    name: aj.name,
    target: aj.target_name,
    target_real: aj.target_resolved_name,
    output_rules: aj.output_rules.map(OutputRules.render),
    tasks: aj.tasks.map((t): Task => ({
      name: t.name,
      script: t.script,
      env_clear: t.env_clear,
      env: t.env,
      uid: t.user_id,
      gid: t.group_id,
      workdir: t.workdir,
      state: t.failed ? "failed" : t.complete ? "completed" : "pending"
    })),
    state: aj.failed ? "failed" : "completed",
    tags: aj.tags,
    cancelled: aj.cancelled,
    times: aj.times,
    time_archived: row.time_archived,
    time_purged: row.time_purged
  })

  /** `GET /0/job/{job}`: from the archive once archived. */
  const view = (row: JobRow) => either(row, (a) => Effect.succeed(toView(row, a.job)), jobs.view(row))

  /**
   * Events `minseq..` (at most `limit`): from the archive once archived. A chunk found damaged
   * drops the cached copy, which is fetched and checked again, once.
   */
  const events = (row: JobRow, minseq: number, limit = 1000) =>
    either(
      row,
      (a) =>
        Effect.tryPromise({ try: () => readEvents(a, minseq, limit), catch: err(row.id, "Corrupt") }).pipe(
          Effect.catchAll((e) =>
            Effect.logWarning(`reading events of job ${row.id} from its archive failed (${e.message}); fetching it again`).pipe(
              Effect.zipRight(evict(row.id)),
              Effect.zipRight(load(row.id)),
              Effect.flatMap((b) => Effect.tryPromise({ try: () => readEvents(b, minseq, limit), catch: err(row.id, "Corrupt") }))
            )
          )
        ),
      jobs.events(row.id, minseq, limit)
    )

  const archivedOutputs = (aj: ArchivedJob) => {
    const sorted = [...aj.outputs].sort((x, y) => (x.file.id < y.file.id ? -1 : x.file.id > y.file.id ? 1 : 0))
    return {
      outputs: sorted.map((o): JobOutput => ({ id: o.file.id, size: o.file.size, path: o.path })),
      digests: sorted.map((o): JobOutputDigest => ({ id: o.file.id, size: o.file.size, path: o.path, sha256: o.file.sha256 ?? "" }))
    }
  }

  /** `GET /0/jobs/{job}/outputs` (and the digests): from the archive once archived. */
  const outputs = (row: JobRow) => either(row, (a) => Effect.succeed(archivedOutputs(a.job)), jobs.outputs(row.id))

  /** One output's file record: from the archive once archived; 404 if the job has no such output. */
  const outputFile = (row: JobRow, file: string) =>
    Effect.flatMap(
      either(
        row,
        (a) =>
          Effect.succeed(
            Option.fromNullable(a.job.outputs.find((o) => o.file.id === file)).pipe(
              Option.map((o) => ({ id: o.file.id, size: o.file.size, sha256: o.file.sha256 ?? "", path: o.path }))
            )
          ),
        jobs.outputFile(row.id, file).pipe(Effect.option)
      ),
      Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `job ${row.id} has no output ${file}` })),
        onSome: Effect.succeed
      })
    )

  /**
   * The job store of an archived job, as `GET /0/jobs/{job}/store` answers it (secret values were
   * never archived, so they are null).
   */
  const archivedStore = (jobId: string) =>
    Effect.map(load(jobId), (a) =>
      Object.fromEntries(
        Object.entries(a.job.store).map(([k, v]) => [k, { value: v.value, secret: v.secret, time_update: v.time_update, source: v.source }])
      ))

  /** Auto-archive candidates that failed, and when to try them again (ms on the Clock). */
  const retryAt = new Map<string, number>()

  return { archive, load, view, events, outputs, outputFile, archivedStore, storeForArchive, retryAt } as const
})

/**
 * Archives jobs and reads archived ones:
 *
 * - `archive(job)`: archives a completed job (see the module comment); fails with `ArchiveError`.
 * - `load(job)`: the opened archive of an archived job.
 * - `view(row)`, `events(row, minseq, limit?)`, `outputs(row)`, `outputFile(row, file)`: the
 *   job's reads, from its archive once `time_archived` is set, else from the database. If an
 *   archive cannot be read while the rows are still there, the rows are used (and the failure
 *   logged); after purge it is a 500.
 * - `archivedStore(job)`: the archived job store (`GET /0/jobs/{job}/store` of an archived job).
 * - `storeForArchive(job)`: the live store as it would be archived (secrets dropped).
 * - `retryAt`: automatic-archive candidates that failed, and when (ms on the Clock) the loop tries
 *   them again.
 *
 * @since 0.1.0
 * @category context
 */
export class JobArchive extends Context.Tag("@buildomat/core/server/JobArchive")<
  JobArchive,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`, `JobStore`, `ServerConfig`, `StorageTiers` and `ObjectStore` (tiered).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(JobArchive, make)

/**
 * How long the job archiving loop waits when it has nothing to do (buildomat: 1 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const INTERVAL = Duration.seconds(1)

/**
 * How long the job archiving loop waits when automatic archiving is off and no request is waiting:
 * a request wakes it at once, so this is only a safety net.
 *
 * @since 0.1.0
 * @category constants
 */
export const IDLE_INTERVAL = Duration.minutes(1)

/**
 * One pass of the job archiving loop: archives the oldest operator request (a job that is not
 * complete, or already archived, is skipped; one whose files are not yet in the archive tier goes
 * back in the queue), else, with `jobAutoArchive`, the oldest completed unarchived job (one that
 * fails is tried again 10 minutes later). Returns `"archived"` (the loop goes on at once),
 * `"waiting"` (requests wait, or automatic archiving is on: next pass in `INTERVAL`) or `"idle"`.
 *
 * @since 0.1.0
 * @category loops
 */
export const archiveJobsOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const queue = yield* ArchiveQueue
  const options = yield* BackgroundConfig
  const archives = yield* JobArchive
  const tiers = yield* StorageTiers
  const now = yield* Clock.currentTimeMillis
  const failures = archives.retryAt
  const idle = options.jobAutoArchive ? "waiting" as const : "idle" as const

  const requested = yield* queue.nextArchive
  if (Option.isSome(requested)) {
    const job = requested.value
    const r = yield* archives.archive(job).pipe(Effect.either)
    if (r._tag === "Right") return "archived" as const
    if (r.left.reason === "FilesNotArchived") {
      yield* queue.requeueArchive(job)
      yield* Effect.logInfo(`job ${job}: waiting for its files to be archived before archiving it`)
      return "waiting" as const
    }
    if (r.left.reason === "NotArchivable") {
      yield* Effect.logWarning(`ignoring the request to archive job ${job}: it is not complete, or already archived`)
    } else {
      yield* Effect.logError(`archiving job ${job} [operator request] failed: ${r.left.message}`)
    }
    return "waiting" as const
  }
  if (!options.jobAutoArchive) return idle
  const candidates = Option.isSome(tiers.archive)
    ? yield* sql<{ id: string }>`
      SELECT j.id FROM job j WHERE j.complete = 1 AND j.time_archived IS NULL
        AND NOT EXISTS (SELECT 1 FROM job_file f WHERE f.job = j.id AND f.time_archived IS NULL)
      ORDER BY j.id LIMIT ${failures.size + 1}`
    : yield* sql<{ id: string }>`
      SELECT id FROM job WHERE complete = 1 AND time_archived IS NULL ORDER BY id LIMIT ${failures.size + 1}`
  const next = candidates.find((c) => (failures.get(c.id) ?? 0) <= now)
  if (next === undefined) return idle
  const r = yield* archives.archive(next.id).pipe(Effect.either)
  if (r._tag === "Right") {
    failures.delete(next.id)
    return "archived" as const
  }
  failures.set(next.id, now + Duration.toMillis(Duration.minutes(10)))
  yield* Effect.logError(`archiving job ${next.id} [automatic] failed, trying again in 10 minutes: ${r.left.message}`)
  return idle
}).pipe(Effect.orDie, Effect.withSpan("JobArchive.archiveJobsOnce"))

/**
 * The job archiving loop: at once again after a job was archived; else after `INTERVAL` (when
 * archiving automatically, or when a request waits) or `IDLE_INTERVAL`, or as soon as an operator
 * asks.
 *
 * @since 0.1.0
 * @category layers
 */
export const loopLayer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const queue = yield* ArchiveQueue
    yield* loop("job archive", archiveJobsOnce, INTERVAL, (r) =>
      r === "archived" ? Effect.void : queue.waitArchive(r === "waiting" ? INTERVAL : IDLE_INTERVAL))
  })
)
