/**
 * Jobs in the database: submission with buildomat's validation, the derived state, the job view,
 * listing, events with gap-free per-job sequence numbers, task and job completion, cancellation,
 * and output records. Every state change is one SQLite transaction and wakes what waits on it
 * (watchers through `EventHub`, the loops through `Signals`).
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Either, Layer, Option } from "effect"
import type { CurrentUser } from "../Api.js"
import { BadRequest, Conflict, Forbidden, NotFound } from "../Errors.js"
import * as Ids from "../Ids.js"
import type { Job, JobEvent, JobListEntry, JobOutput, JobOutputDigest, JobSubmit, Task } from "../Jobs.js"
import * as OutputRules from "../OutputRules.js"
import { now } from "../Schemas.js"
import type { WorkerAppendBatch, WorkerAppendJobOrTask, WorkerPingJob } from "../Workers.js"
import { EventHub, workerKey } from "./EventHub.js"
import * as JobModelRules from "./internal/jobModel.js"
import { Signals } from "./Signals.js"

/** A `job` row. */
interface JobRow {
  readonly id: string
  readonly owner: string
  readonly name: string
  readonly target: string
  readonly target_id: string
  readonly complete: number
  readonly failed: number
  readonly worker: string | null
  readonly waiting: number
  readonly cancelled: number
  readonly time_archived: string | null
  readonly time_purged: string | null
}

/**
 * A job's derived state, first match wins: failed, completed, running, waiting, queued
 * (buildomat `Job::state`).
 *
 * @since 0.1.0
 * @category utils
 */
export const stateOf = (j: Pick<JobRow, "failed" | "complete" | "worker" | "waiting">): string =>
  j.failed ? "failed" : j.complete ? "completed" : j.worker !== null ? "running" : j.waiting ? "waiting" : "queued"

const MAX_TASKS = 64
const MAX_TAGS = 100
const MAX_TAG_BYTES = 131072
const TAG_NAME = /^[0-9a-z._-]+$/
const PAGE = 1000
/** The most events stored in one `job_event_run` row (a page of `GET /0/jobs/{job}/events`). */
const RUN_ROWS = 1000

/**
 * A worker free to take a job (`JobStore.freeWorkers`).
 *
 * @since 0.1.0
 * @category models
 */
export interface FreeWorker {
  readonly id: string
  readonly target: string
  /** The factory's name (its id if it has no record). */
  readonly factory: string
  readonly factory_private: string | null
}

/** A row of `job_output_rule` (its flags as 0/1). */
interface RuleRow {
  readonly rule: string
  readonly ignore: number
  readonly size_change_ok: number
  readonly require_match: number
}

/** An output rule as stored, with its flags as booleans. */
const ruleOf = (r: RuleRow): OutputRules.OutputRule => ({
  rule: r.rule,
  ignore: r.ignore === 1,
  size_change_ok: r.size_change_ok === 1,
  require_match: r.require_match === 1
})

/** What a paged listing scans: the owner (or everyone), the order, a tag filter. */
interface ListScan {
  readonly owner: string | undefined
  readonly recentFirst: boolean
  readonly tags: ReadonlyArray<readonly [string, string]>
}

const parseTagFilter = (tag: string | undefined): Either.Either<ReadonlyArray<readonly [string, string]>, string> => {
  if (tag === undefined || tag === "") return Either.right([])
  const pairs = tag.split("|")
  if (pairs.length > 8) return Either.left(`a tag filter has at most 8 k=v pairs, got ${pairs.length}`)
  const out: Array<readonly [string, string]> = []
  for (const p of pairs) {
    const i = p.indexOf("=")
    if (i <= 0) return Either.left(`tag filter ${JSON.stringify(p)} is not of the form name=value`)
    out.push([p.slice(0, i), p.slice(i + 1)])
  }
  return Either.right(out)
}

const encodeToken = (last: string, recentFirst: boolean, tag: string | undefined) =>
  Buffer.from(JSON.stringify({ last, recent_first: recentFirst, tag: tag ?? null })).toString("base64url")

const decodeToken = (token: string): Option.Option<{ last: string; recent_first: boolean; tag: string | undefined }> => {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"))
    if (typeof v?.last !== "string" || !Ids.isUlid(v.last) || typeof v.recent_first !== "boolean") return Option.none()
    return Option.some({ last: v.last.toUpperCase(), recent_first: v.recent_first, tag: typeof v.tag === "string" ? v.tag : undefined })
  } catch {
    return Option.none()
  }
}

const bad = (message: string) => new BadRequest({ message })

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const hub = yield* EventHub
  const signals = yield* Signals

  const row = (id: string) =>
    sql<JobRow>`SELECT * FROM job WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  const mustExist = (id: string) =>
    row(id).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `job ${id} does not exist` })),
        onSome: Effect.succeed
      }))
    )

  /**
   * The job, if `user` may see it: its owner, or a user with `admin.job.read` (buildomat).
   */
  const forUser = (id: string, user: Context.Tag.Service<CurrentUser>) =>
    Effect.flatMap(mustExist(id), (j) =>
      j.owner === user.id || user.privileges.includes("admin.job.read")
        ? Effect.succeed(j)
        : Effect.fail(new Forbidden({ message: "not your job" })))

  /**
   * The sequence number of a job's latest event, over both `job_event` (one row per event) and
   * `job_event_run` (one row per run of events, see migration 2); 0 if none.
   */
  const maxSeq = (job: string) =>
    sql<{ last: number }>`SELECT max(
        (SELECT coalesce(max(seq), 0) FROM job_event WHERE job = ${job}),
        coalesce((SELECT last_seq FROM job_event_run WHERE job = ${job} ORDER BY seq DESC LIMIT 1), 0)
      ) AS last`.pipe(Effect.map((r) => r[0]?.last ?? 0))

  /** The job, if it is assigned to `worker` (buildomat: 403 `not your job` otherwise). */
  const forWorker = (id: string, worker: string) =>
    Effect.flatMap(mustExist(id), (j) =>
      j.worker === worker ? Effect.succeed(j) : Effect.fail(new Forbidden({ message: "not your job" })))

  /**
   * Inserts events for a job inside the caller's transaction; returns the last seq. `after` is
   * the job's last seq when the caller knows it (0 for a job inserted in the same transaction).
   */
  const insertEvents = (
    job: string,
    events: ReadonlyArray<{ task: number | null; stream: string; time_remote: string | null; payload: string }>,
    after?: number
  ) =>
    Effect.gen(function*() {
      const last = after ?? (yield* maxSeq(job))
      const time = now()
      let seq = last
      for (let i = 0; i < events.length; i += 500) {
        const rows = events.slice(i, i + 500).map((e) => ({
          job,
          seq: ++seq,
          task: e.task,
          stream: e.stream,
          time,
          time_remote: e.time_remote,
          payload: e.payload
        }))
        yield* sql`INSERT INTO job_event ${sql.insert(rows)}`
      }
      return seq
    })

  const control = (job: string, payload: string, after?: number) =>
    insertEvents(job, [{ task: null, stream: "control", time_remote: null, payload }], after)

  const setTime = (job: string, name: string, time: string) => setTimes(job, [[name, time]])

  /** Records several of a job's times (`name`, ISO time) at once; a time already set is kept. */
  const setTimes = (job: string, times: ReadonlyArray<readonly [string, string]>) =>
    sql`INSERT OR IGNORE INTO job_time ${sql.insert(times.map(([name, time]) => ({ job, name, time })))}`

  /** What makes a row of `job` queued (unqualified: it applies to the innermost `job`). */
  const isQueued = sql`complete = 0 AND waiting = 0 AND worker IS NULL AND cancelled = 0`

  /** Queued jobs (ready, not yet assigned, not cancelled, not complete), oldest first, at most `limit`. */
  const queued = (limit: number) =>
    sql<{ id: string; target_id: string }>`SELECT id, target_id FROM job WHERE ${isQueued} ORDER BY id LIMIT ${limit}`

  /**
   * Workers free to take a job: bootstrapped, not deleted, recycled or held, and without a job
   * (a worker runs one job, ever); of one target if `targetId` is given; newest first. With
   * `unlessQueued` (and a target), none while a job of the target is queued: those go first.
   */
  const freeWorkers = (targetId?: string, options?: { readonly unlessQueued?: boolean; readonly limit?: number }) =>
    sql<FreeWorker>`
      SELECT w.id, w.target, coalesce(f.name, w.factory) AS factory, w.factory_private
      FROM worker w LEFT JOIN factory f ON f.id = w.factory
      WHERE w.deleted = 0 AND w.recycle = 0 AND w.hold_time IS NULL AND w.token_hash IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM job j WHERE j.worker = w.id)
        ${targetId === undefined ? sql`` : sql`AND w.target = ${targetId}`}
        ${
      targetId !== undefined && options?.unlessQueued === true
        ? sql`AND NOT EXISTS (SELECT 1 FROM job WHERE target_id = ${targetId} AND ${isQueued})`
        : sql``
    }
      ORDER BY w.id DESC ${options?.limit === undefined ? sql`` : sql`LIMIT ${options.limit}`}`

  /**
   * Assigns a queued job to a free worker, inside the caller's transaction: the job's worker, its
   * `assigned` time and a control event saying where it went and how long it queued. The caller
   * calls `announceAssigned` once the transaction commits.
   */
  const assign = (job: string, w: FreeWorker) =>
    Effect.gen(function*() {
      yield* sql`UPDATE job SET worker = ${w.id} WHERE id = ${job} AND worker IS NULL`
      const t = now()
      yield* setTime(job, "assigned", t)
      yield* control(job, assignedMessage(job, w, t))
    })

  /**
   * Wakes what waits on a committed assignment: the worker's long-poll (`GET /ext/0/worker/ping`,
   * dispatch in milliseconds) and the job's watchers.
   */
  const announceAssigned = (job: string, worker: string) =>
    Effect.zipRight(hub.notify(workerKey(worker)), hub.notify(job))

  /** The control event of an assignment at `time`, as buildomat words it. */
  const assignedMessage = (job: string, w: FreeWorker, time: string) =>
    `job assigned to worker ${w.id} [factory ${w.factory}, ${w.factory_private ?? "-"}] ` +
    `(queued for ${Date.parse(time) - Ids.timestamp(job)} ms)`

  const resolveTarget = (name: string) =>
    Effect.gen(function*() {
      let cur = yield* sql<{ id: string; name: string; redirect: string | null; privilege: string | null }>`
        SELECT id, name, redirect, privilege FROM target WHERE name = ${name}`
      for (let hops = 0; hops <= 32; hops++) {
        const t = cur[0]
        if (t === undefined) return Option.none()
        if (t.redirect === null) return Option.some(t)
        cur = yield* sql<{ id: string; name: string; redirect: string | null; privilege: string | null }>`
          SELECT id, name, redirect, privilege FROM target WHERE id = ${t.redirect}`
      }
      return Option.none()
    }).pipe(Effect.orDie)

  /**
   * `POST /0/jobs`: validates in buildomat's order (tasks, inputs, tags, target, privilege,
   * output rules), then stores the job, its tasks, rules, tags and submit time in one transaction.
   */
  const submit = (user: Context.Tag.Service<CurrentUser>, body: typeof JobSubmit.Type) =>
    Effect.gen(function*() {
      if (body.tasks.length === 0) return yield* bad("a job needs at least one task")
      if (body.tasks.length > MAX_TASKS) return yield* bad(`a job has at most ${MAX_TASKS} tasks, got ${body.tasks.length}`)
      const model = JobModelRules.validate(body)
      if (Either.isLeft(model)) return yield* bad(model.left)
      const tags = Object.entries(body.tags ?? {})
      if (tags.length > MAX_TAGS) return yield* bad(`a job has at most ${MAX_TAGS} tags, got ${tags.length}`)
      let tagBytes = 0
      for (const [k, v] of tags) {
        if (!TAG_NAME.test(k)) return yield* bad(`tag name ${JSON.stringify(k)} must match [0-9a-z._-]+`)
        tagBytes += Buffer.byteLength(k) + Buffer.byteLength(v)
      }
      if (tagBytes > MAX_TAG_BYTES) return yield* bad(`tags total ${tagBytes} bytes; the limit is ${MAX_TAG_BYTES}`)
      const target = yield* resolveTarget(body.target)
      if (Option.isNone(target)) return yield* bad(`could not resolve target ${JSON.stringify(body.target)}`)
      const priv = target.value.privilege
      if (priv !== null && !user.privileges.includes(priv)) {
        return yield* Effect.fail(new Forbidden({ message: "you are not allowed to use that target" }))
      }
      const rules: Array<OutputRules.OutputRule> = []
      for (const r of body.output_rules) {
        const parsed = OutputRules.parse(r)
        if (Either.isLeft(parsed)) return yield* bad(parsed.left)
        rules.push(parsed.right)
      }
      for (const [i, t] of body.tasks.entries()) {
        if (t.workdir != null && !t.workdir.startsWith("/")) {
          return yield* bad(`task ${i} (${JSON.stringify(t.name)}): workdir must be an absolute path`)
        }
      }

      const missing = yield* JobModelRules.missingPrior(sql, user.id, model.right.depends).pipe(Effect.orDie)
      if (missing !== undefined) {
        return yield* Effect.fail(
          new Conflict({ message: `dependency ${JSON.stringify(missing.name)}: prior job does not exist` })
        )
      }
      // A job with inputs or dependencies waits until they are there (the scheduler's waiters).
      const waiting = model.right.inputs.length > 0 || model.right.depends.length > 0

      const id = Ids.make()
      const submitTime = new Date(Ids.timestamp(id)).toISOString()
      const assigned = yield* sql.withTransaction(
        Effect.gen(function*() {
          // Dispatch at submit: a free worker of the target takes the job in this transaction,
          // unless jobs of the target are queued (the scheduler serves them first). The job is
          // stored with its worker, so an assignment adds no statement of its own.
          const [w] = waiting ? [] : yield* freeWorkers(target.value.id, { unlessQueued: true, limit: 1 })
          yield* sql`INSERT INTO job ${
            sql.insert({
              id,
              owner: user.id,
              name: body.name,
              target: body.target,
              target_id: target.value.id,
              waiting: waiting ? 1 : 0,
              worker: w?.id ?? null
            })
          }`
          yield* sql`INSERT INTO task ${
            sql.insert(body.tasks.map((t, seq) => ({
              job: id,
              seq,
              name: t.name,
              script: t.script,
              env_clear: t.env_clear ? 1 : 0,
              env: JSON.stringify(t.env),
              user_id: t.uid ?? null,
              group_id: t.gid ?? null,
              workdir: t.workdir ?? null
            })))
          }`
          if (rules.length > 0) {
            yield* sql`INSERT INTO job_output_rule ${
              sql.insert(rules.map((r, seq) => ({
                job: id,
                seq,
                rule: r.rule,
                ignore: r.ignore ? 1 : 0,
                size_change_ok: r.size_change_ok ? 1 : 0,
                require_match: r.require_match ? 1 : 0
              })))
            }`
          }
          if (tags.length > 0) {
            yield* sql`INSERT INTO job_tag ${sql.insert(tags.map(([name, value]) => ({ job: id, name, value })))}`
          }
          yield* JobModelRules.insert(sql, id, model.right)
          const t = now()
          yield* setTimes(id, [
            ["submit", submitTime],
            ...(waiting ? [] : [["ready", submitTime] as const]),
            ...(w === undefined ? [] : [["assigned", t] as const])
          ])
          if (w === undefined) return undefined
          yield* control(id, assignedMessage(id, w, t), 0)
          return w.id
        })
      ).pipe(Effect.orDie)
      if (assigned !== undefined) {
        yield* announceAssigned(id, assigned)
        yield* signals.provisioner.wake
        // The worker's long-poll answers before this response is encoded and written.
        yield* Effect.yieldNow()
      } else {
        yield* signals.wakeAll
      }
      return { id }
    })

  /** A job's tasks, in order. */
  const taskRows = (job: string) =>
    sql<{
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
    }>`SELECT * FROM task WHERE job = ${job} ORDER BY seq`

  /** A job's output rules, in order, with their flags as booleans. */
  const ruleRows = (job: string) =>
    sql<RuleRow>`SELECT * FROM job_output_rule WHERE job = ${job} ORDER BY seq`.pipe(Effect.map((rows) => rows.map(ruleOf)))

  /** The job view (`GET /0/job/{job}`). */
  const view = (j: JobRow) =>
    Effect.gen(function*() {
      const tasks = yield* taskRows(j.id)
      const rules = yield* ruleRows(j.id)
      const tags = yield* sql<{ name: string; value: string }>`SELECT name, value FROM job_tag WHERE job = ${j.id}`
      const times = yield* sql<{ name: string; time: string }>`SELECT name, time FROM job_time WHERE job = ${j.id}`
      const target = yield* sql<{ name: string }>`SELECT name FROM target WHERE id = ${j.target_id}`
      const job: Job = {
        id: j.id,
        owner: j.owner,
        name: j.name,
        target: j.target,
        target_real: target[0]?.name ?? j.target,
        output_rules: rules.map(OutputRules.render),
        tasks: tasks.map((t): Task => ({
          name: t.name,
          script: t.script,
          env_clear: t.env_clear === 1,
          env: JSON.parse(t.env),
          uid: t.user_id,
          gid: t.group_id,
          workdir: t.workdir,
          state: t.failed ? "failed" : t.complete ? "completed" : "pending"
        })),
        state: stateOf(j),
        tags: Object.fromEntries(tags.map((t) => [t.name, t.value])),
        cancelled: j.cancelled === 1,
        times: Object.fromEntries(times.map((t) => [t.name, t.time])),
        time_archived: j.time_archived,
        time_purged: j.time_purged
      }
      return job
    }).pipe(Effect.orDie)

  /** `GET /1/jobs`: pages of at most 1000, the scan parameters carried in `page_token`. */
  const list = (
    owner: string | undefined,
    q: { readonly limit?: number | undefined; readonly page_token?: string | undefined; readonly recent_first?: boolean | undefined; readonly tag?: string | undefined }
  ) =>
    Effect.gen(function*() {
      let last: string | undefined
      let recentFirst = q.recent_first ?? false
      let tagText = q.tag
      if (q.page_token !== undefined) {
        const t = decodeToken(q.page_token)
        if (Option.isNone(t)) return yield* bad("page_token is not a token this server issued")
        last = t.value.last
        recentFirst = t.value.recent_first
        tagText = t.value.tag
      }
      const tagsE = parseTagFilter(tagText)
      if (Either.isLeft(tagsE)) return yield* bad(tagsE.left)
      const scan: ListScan = { owner, recentFirst, tags: tagsE.right }
      const limit = Math.min(Math.max(q.limit ?? PAGE, 1), PAGE)
      const where = [sql`1 = 1`]
      if (scan.owner !== undefined) where.push(sql`j.owner = ${scan.owner}`)
      if (last !== undefined) where.push(recentFirst ? sql`j.id < ${last}` : sql`j.id > ${last}`)
      for (const [k, v] of scan.tags) {
        where.push(sql`EXISTS (SELECT 1 FROM job_tag t WHERE t.job = j.id AND t.name = ${k} AND t.value = ${v})`)
      }
      const rows = yield* sql<JobRow>`SELECT j.* FROM job j WHERE ${sql.and(where)}
        ORDER BY j.id ${sql.unsafe(recentFirst ? "DESC" : "ASC")} LIMIT ${limit}`.pipe(Effect.orDie)
      const items: Array<JobListEntry> = rows.map((j) => ({
        id: j.id,
        owner: j.owner,
        name: j.name,
        state: stateOf(j),
        cancelled: j.cancelled === 1,
        target: j.target,
        target_id: j.target_id
      }))
      const next = rows.length === limit ? encodeToken(rows[rows.length - 1]!.id, recentFirst, tagText) : null
      return { items, next_page: next }
    })

  /**
   * Events with `seq >= minseq`, ascending, at most `limit` (buildomat: 1000), one `JobEvent` per
   * event whether it is stored as a row of its own (`job_event`) or inside a run
   * (`job_event_run`). Sequence numbers have no gaps, so the answer is exactly the events
   * numbered `minseq` to `minseq + limit - 1` that exist.
   */
  const events = (job: string, minseq: number, limit = 1000) =>
    Effect.gen(function*() {
      const lo = Math.max(minseq, 1)
      const hi = lo + Math.max(limit, 1) - 1
      const rows = yield* sql<JobEvent & { task: number | null; time_remote: string | null }>`
        SELECT seq, task, stream, time, time_remote, payload FROM job_event
        WHERE job = ${job} AND seq BETWEEN ${lo} AND ${hi} ORDER BY seq`
      // Runs do not overlap: only the one that starts at or before `lo` can hold `lo`.
      const runs = yield* sql<{
        seq: number
        last_seq: number
        task: number | null
        stream: string
        time: string
        time_remote: string | null
        payloads: string
      }>`
        SELECT seq, last_seq, task, stream, time, time_remote, payloads FROM job_event_run
        WHERE job = ${job} AND seq <= ${hi} AND seq >= coalesce(
          (SELECT max(seq) FROM job_event_run WHERE job = ${job} AND seq <= ${lo}), ${lo})
        ORDER BY seq`
      if (runs.length === 0) return rows as ReadonlyArray<JobEvent>
      const out: Array<JobEvent> = [...rows]
      for (const r of runs) {
        const payloads = JSON.parse(r.payloads) as ReadonlyArray<string>
        const from = Math.max(lo, r.seq)
        const to = Math.min(hi, r.last_seq)
        for (let seq = from; seq <= to; seq++) {
          out.push({
            seq,
            task: r.task,
            stream: r.stream,
            time: r.time,
            time_remote: r.time_remote,
            payload: payloads[seq - r.seq]!
          })
        }
      }
      out.sort((a, b) => a.seq - b.seq)
      return out as ReadonlyArray<JobEvent>
    }).pipe(Effect.orDie)

  /** The sequence number of a job's latest event (0 if none). */
  const lastSeq = (job: string) => maxSeq(job).pipe(Effect.orDie)

  /** Appends events from the worker running the job (`POST /1/worker/job/{job}/append`). */
  const append = (job: JobRow, batch: ReadonlyArray<WorkerAppendJobOrTask>) =>
    Effect.gen(function*() {
      if (batch.length === 0) return
      const done = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${job.id}`
          if (cur?.complete) return true
          yield* insertEvents(
            job.id,
            batch.map((e) => ({ task: e.task ?? null, stream: e.stream, time_remote: e.time, payload: e.payload }))
          )
          return false
        })
      ).pipe(Effect.orDie)
      if (done) return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
      yield* hub.notify(job.id)
    })

  /**
   * `POST /ext/0/worker/job/{job}/append`: stores batch `batch.batch` of the job's events, as runs,
   * exactly once. In one transaction: a batch number at or below the job's last is a resend and
   * stores nothing (`duplicate: true`, even once the job is complete); the next number is stored
   * and becomes the last; any other number, or a new batch for a complete job, is a `Conflict`.
   * Each run is split into rows of at most `RUN_ROWS` events, so that reading a page of events
   * parses little.
   */
  const appendBatch = (job: JobRow, batch: WorkerAppendBatch) =>
    Effect.gen(function*() {
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<{ complete: number; event_batch_seq: number }>`
            SELECT complete, event_batch_seq FROM job WHERE id = ${job.id}`
          if (cur === undefined) return { _tag: "missing" } as const
          if (batch.batch <= cur.event_batch_seq) {
            return { _tag: "ok", last: cur.event_batch_seq, duplicate: true } as const
          }
          if (cur.complete) return { _tag: "complete" } as const
          if (batch.batch !== cur.event_batch_seq + 1) {
            return { _tag: "gap", expected: cur.event_batch_seq + 1 } as const
          }
          let seq = yield* maxSeq(job.id)
          const time = now()
          const rows: Array<Record<string, string | number | null>> = []
          for (const run of batch.runs) {
            for (let i = 0; i < run.payloads.length; i += RUN_ROWS) {
              const part = run.payloads.slice(i, i + RUN_ROWS)
              rows.push({
                job: job.id,
                seq: seq + 1,
                last_seq: seq + part.length,
                task: run.task ?? null,
                stream: run.stream,
                time,
                time_remote: run.time,
                payloads: JSON.stringify(part)
              })
              seq += part.length
            }
          }
          for (let i = 0; i < rows.length; i += 100) {
            yield* sql`INSERT INTO job_event_run ${sql.insert(rows.slice(i, i + 100))}`
          }
          yield* sql`UPDATE job SET event_batch_seq = ${batch.batch} WHERE id = ${job.id}`
          return { _tag: "ok", last: batch.batch, duplicate: false } as const
        })
      ).pipe(Effect.orDie)
      switch (r._tag) {
        case "missing":
          return yield* Effect.fail(new NotFound({ message: `job ${job.id} does not exist` }))
        case "complete":
          return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
        case "gap":
          return yield* Effect.fail(
            new Conflict({ message: `batch ${batch.batch} is out of order: the next batch of job ${job.id} is ${r.expected}` })
          )
      }
      if (!r.duplicate) yield* hub.notify(job.id)
      return { last_batch: r.last, duplicate: r.duplicate }
    })

  /** `POST /0/jobs/{job}/cancel`: sets the flag; the scheduler then fails the job. */
  const cancel = (job: JobRow) =>
    Effect.gen(function*() {
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<JobRow>`SELECT * FROM job WHERE id = ${job.id}`
          if (cur === undefined || cur.complete) return "complete" as const
          if (cur.cancelled) return "already" as const
          yield* sql`UPDATE job SET cancelled = 1 WHERE id = ${job.id}`
          yield* control(job.id, "job cancelled")
          return "ok" as const
        })
      ).pipe(Effect.orDie)
      if (r === "complete") return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
      yield* hub.notify(job.id)
      yield* signals.wakeAll
    })

  /** `POST /0/worker/job/{job}/task/{task}/complete`; a no-op for a task already complete. */
  const completeTask = (job: JobRow, task: number, failed: boolean) =>
    Effect.gen(function*() {
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${job.id}`
          if (cur?.complete) return "complete" as const
          const [t] = yield* sql<{ complete: number }>`SELECT complete FROM task WHERE job = ${job.id} AND seq = ${task}`
          if (t === undefined) return "missing" as const
          if (t.complete) return "ok" as const
          yield* sql`UPDATE task SET complete = 1, failed = ${failed ? 1 : 0} WHERE job = ${job.id} AND seq = ${task}`
          return "ok" as const
        })
      ).pipe(Effect.orDie)
      if (r === "complete") return yield* Effect.fail(new Conflict({ message: `job ${job.id} is already complete` }))
      if (r === "missing") return yield* Effect.fail(new NotFound({ message: `job ${job.id} has no task ${task}` }))
      yield* hub.notify(job.id)
    })

  /**
   * Completes a job (buildomat `job_complete`): a no-op if already complete; refused while the
   * job is cancelled and the caller reports success; every task not complete is marked failed
   * (unless cancelled); the job fails if any task failed. The worker is recycled at once.
   */
  const complete = (jobId: string, failed: boolean, opts?: { readonly fromWorker?: boolean }) =>
    Effect.gen(function*() {
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<JobRow>`SELECT * FROM job WHERE id = ${jobId}`
          if (cur === undefined) return "missing" as const
          if (cur.complete) return "noop" as const
          if (cur.cancelled && !failed && opts?.fromWorker) return "cancelled" as const
          let fail = failed || cur.cancelled === 1
          const tasks = yield* sql<{ seq: number; complete: number; failed: number }>`
            SELECT seq, complete, failed FROM task WHERE job = ${jobId} ORDER BY seq`
          for (const t of tasks) {
            if (!t.complete) {
              if (!cur.cancelled) yield* control(jobId, `task ${t.seq} was incomplete, marked failed`)
              yield* sql`UPDATE task SET complete = 1, failed = 1 WHERE job = ${jobId} AND seq = ${t.seq}`
              fail = true
            } else if (t.failed) {
              fail = true
            }
          }
          if (fail && !failed && !cur.cancelled) yield* control(jobId, "job failed because at least one task failed")
          yield* sql`UPDATE job SET complete = 1, failed = ${fail ? 1 : 0} WHERE id = ${jobId}`
          yield* setTime(jobId, "complete", now())
          if (cur.worker !== null) {
            // A worker whose agent promised post-job diagnostics is recycled once they complete.
            yield* sql`UPDATE worker SET recycle = 1 WHERE id = ${cur.worker} AND deleted = 0 AND diagnostics = 0`
          }
          return cur.worker ?? "ok"
        })
      ).pipe(Effect.orDie)
      if (r === "cancelled") {
        return yield* Effect.fail(new Conflict({ message: "cannot complete job: job was cancelled" }))
      }
      if (r === "missing") return yield* Effect.fail(new NotFound({ message: `job ${jobId} does not exist` }))
      if (r !== "ok" && r !== "noop") yield* hub.notify(workerKey(r))
      yield* hub.notify(jobId)
      yield* signals.wakeAll
    })

  /** `GET /0/jobs/{job}/outputs`, ordered by file id. */
  const outputs = (job: string) =>
    sql<{ id: string; size: number; path: string; sha256: string }>`
      SELECT f.id AS id, f.size AS size, o.path AS path, f.sha256 AS sha256
      FROM job_output o JOIN job_file f ON f.job = o.job AND f.id = o.id
      WHERE o.job = ${job} ORDER BY f.id`.pipe(
      Effect.map((rows) => ({
        outputs: rows.map((r): JobOutput => ({ id: r.id, size: r.size, path: r.path })),
        digests: rows.map((r): JobOutputDigest => ({ id: r.id, size: r.size, path: r.path, sha256: r.sha256 }))
      })),
      Effect.orDie
    )

  /** One output's file record, or NotFound. */
  const outputFile = (job: string, file: string) =>
    sql<{ id: string; size: number; sha256: string; path: string }>`
      SELECT f.id AS id, f.size AS size, f.sha256 AS sha256, o.path AS path
      FROM job_output o JOIN job_file f ON f.job = o.job AND f.id = o.id
      WHERE o.job = ${job} AND o.id = ${file}`.pipe(
      Effect.orDie,
      Effect.flatMap((r) =>
        r[0] === undefined
          ? Effect.fail(new NotFound({ message: `job ${job} has no output ${file}` }))
          : Effect.succeed(r[0])
      )
    )

  /**
   * Records a committed output (file and output rows in one transaction). Fails with a message
   * if the job is already complete or the path was already stored.
   */
  const recordOutput = (job: string, path: string, file: string, size: number, sha256: string) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const [cur] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${job}`
        if (cur === undefined || cur.complete) return `job ${job} is already complete`
        const dup = yield* sql`SELECT 1 FROM job_output WHERE job = ${job} AND path = ${path}`
        if (dup.length > 0) return `job ${job} already has an output at ${path}`
        yield* sql`INSERT INTO job_file ${sql.insert({ job, id: file, size, sha256 })}`
        yield* sql`INSERT INTO job_output ${sql.insert({ job, path, id: file })}`
        return undefined
      })
    ).pipe(Effect.orDie)

  /**
   * The job as the agent receives it in a ping: its tasks, output rules and the inputs that have a
   * file (buildomat; a job runs only once all of them do), read in one statement as JSON arrays,
   * since the answer to an assignment is on the way to the job's first task.
   */
  const pingJob = (j: JobRow) =>
    sql<{ tasks: string; rules: string; inputs: string }>`
      SELECT
        (SELECT json_group_array(json_object(
            'id', seq, 'name', name, 'script', script, 'env_clear', env_clear, 'env', env,
            'uid', coalesce(user_id, 0), 'gid', coalesce(group_id, 0), 'workdir', coalesce(workdir, '/')
          ) ORDER BY seq) FROM task WHERE job = ${j.id}) AS tasks,
        (SELECT json_group_array(json_object(
            'rule', rule, 'ignore', ignore, 'size_change_ok', size_change_ok, 'require_match', require_match
          ) ORDER BY seq) FROM job_output_rule WHERE job = ${j.id}) AS rules,
        (SELECT json_group_array(json_object('name', name, 'id', id) ORDER BY id, name)
          FROM job_input WHERE job = ${j.id} AND id IS NOT NULL) AS inputs`
      .pipe(
        Effect.map(([r]): WorkerPingJob => ({
          id: j.id,
          name: j.name,
          output_rules: (JSON.parse(r!.rules) as Array<RuleRow>).map(ruleOf),
          tasks: (JSON.parse(r!.tasks) as Array<Record<string, unknown>>).map((t) => ({
            id: t["id"] as number,
            name: t["name"] as string,
            script: t["script"] as string,
            env_clear: t["env_clear"] === 1,
            env: JSON.parse(t["env"] as string),
            uid: t["uid"] as number,
            gid: t["gid"] as number,
            workdir: t["workdir"] as string
          })),
          inputs: JSON.parse(r!.inputs)
        })),
        Effect.orDie
      )

  /**
   * `GET /0/admin/jobs?active=true`: jobs not complete and not waiting, then waiting ones, each
   * oldest first and at most 10 000 (buildomat `jobs_active` + `jobs_waiting`).
   */
  const listActive = Effect.gen(function*() {
    const active = yield* sql<JobRow>`SELECT * FROM job WHERE complete = 0 AND waiting = 0 ORDER BY id LIMIT 10000`
    const waiting = yield* sql<JobRow>`SELECT * FROM job WHERE complete = 0 AND waiting = 1 ORDER BY id LIMIT 10000`
    return [...active, ...waiting]
  }).pipe(Effect.orDie)

  /** `GET /0/admin/jobs?completed=N`: the `n` most recently submitted complete jobs, oldest first. */
  const listCompleted = (n: number) =>
    sql<JobRow>`SELECT * FROM job WHERE complete = 1 ORDER BY id DESC LIMIT ${n}`.pipe(
      Effect.map((rows) => [...rows].reverse()),
      Effect.orDie
    )

  return {
    row,
    mustExist,
    forUser,
    forWorker,
    submit,
    view,
    list,
    events,
    lastSeq,
    append,
    appendBatch,
    cancel,
    completeTask,
    complete,
    outputs,
    outputFile,
    recordOutput,
    pingJob,
    insertEvents,
    control,
    setTime,
    queued,
    freeWorkers,
    assign,
    announceAssigned,
    listActive,
    listCompleted
  } as const
})

/**
 * The job store service.
 *
 * @since 0.1.0
 * @category context
 */
export class JobStore extends Context.Tag("@buildomat/core/server/JobStore")<
  JobStore,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`, `EventHub` and `Signals`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(JobStore, make)

/** @since 0.1.0 @category models */
export type { JobRow }
