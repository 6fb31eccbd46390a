/**
 * Workers: ephemeral machines that each run at most one job, ever (buildomat). A worker is
 * created by the provisioner with a bootstrap secret, associated with the provider's instance,
 * bootstrapped by its agent (which binds its own token), assigned a job, recycled when the job
 * ends, and deleted once the provider has destroyed the machine.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Deferred, Effect, Layer, Option } from "effect"
import { Conflict } from "../Errors.js"
import * as Ids from "../Ids.js"
import { currentTime, now } from "../Schemas.js"
import type { WorkerAppend, WorkerPingResult } from "../Workers.js"
import { EventHub, workerKey } from "./EventHub.js"
import * as Tokens from "./internal/tokens.js"
import { JobStore, type JobRow } from "./JobStore.js"
import { Signals } from "./Signals.js"

/**
 * A `worker` row.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerRow {
  readonly id: string
  readonly bootstrap_hash: string
  readonly token_hash: string | null
  readonly factory: string
  readonly factory_private: string | null
  readonly factory_ip: string | null
  readonly target: string
  readonly deleted: number
  readonly recycle: number
  readonly lastping: string | null
  readonly time_create: string
  readonly hold_time: string | null
  readonly hold_reason: string | null
  readonly factory_metadata?: string | null
  readonly wait_for_flush?: number
  readonly diagnostics?: number
}

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobStore
  const hub = yield* EventHub
  const signals = yield* Signals

  /**
   * A new worker for `target` (an id) made by `factory` (a factory id); returns its id and
   * bootstrap secret. `waitForFlush` withholds its job from the agent until the factory flushes
   * its boot logs; `hold` makes it start held with that reason.
   */
  const create = (
    factory: string,
    target: string,
    opts?: { readonly waitForFlush?: boolean | undefined; readonly hold?: string | undefined }
  ) =>
    Effect.gen(function*() {
      const id = Ids.make()
      const bootstrap = Tokens.generate(64)
      const t = yield* currentTime
      yield* sql`INSERT INTO worker ${
        sql.insert({
          id,
          bootstrap_hash: Tokens.hash(bootstrap),
          factory,
          target,
          time_create: t,
          ...(opts?.waitForFlush ? { wait_for_flush: 1 } : {}),
          ...(opts?.hold !== undefined ? { hold_time: t, hold_reason: opts.hold } : {})
        })
      }`
      return { id, bootstrap }
    }).pipe(Effect.orDie)

  /**
   * Records the provider's instance id (and its factory metadata, if any, as JSON); the agent can
   * bootstrap only after this.
   */
  const associate = (id: string, instance: string, ip: string | undefined, metadata?: unknown) =>
    (metadata === undefined
      ? sql`UPDATE worker SET factory_private = ${instance}, factory_ip = ${ip ?? null} WHERE id = ${id}`
      : sql`UPDATE worker SET factory_private = ${instance}, factory_ip = ${ip ?? null},
          factory_metadata = ${JSON.stringify(metadata)} WHERE id = ${id}`).pipe(
      Effect.asVoid,
      Effect.orDie
    )

  /**
   * `POST /0/worker/bootstrap` (buildomat semantics): the worker must exist, not be deleted and be
   * associated; the first token binds; the same token may retry; another token is refused.
   */
  const bootstrap = (secret: string, token: string) =>
    Effect.gen(function*() {
      const bh = Tokens.hash(secret)
      const th = Tokens.hash(token)
      const t = yield* currentTime
      const res = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [w] = yield* sql<WorkerRow>`SELECT * FROM worker WHERE bootstrap_hash = ${bh}`
          if (w === undefined || w.deleted || w.factory_private === null) return Option.none<string>()
          if (!Tokens.hashesEqual(w.bootstrap_hash, bh)) return Option.none<string>()
          if (w.token_hash === null) {
            yield* sql`UPDATE worker SET token_hash = ${th}, lastping = ${t} WHERE id = ${w.id}`
            return Option.some(w.id)
          }
          return Tokens.hashesEqual(w.token_hash, th) ? Option.some(w.id) : Option.none<string>()
        })
      ).pipe(Effect.orDie)
      if (Option.isSome(res)) yield* signals.scheduler.wake
      return res
    })

  /** The live worker a token belongs to. */
  const byToken = (token: string) =>
    Effect.gen(function*() {
      const h = Tokens.hash(token)
      const [w] = yield* sql<WorkerRow>`SELECT * FROM worker WHERE token_hash = ${h} AND deleted = 0`
      return w !== undefined && w.token_hash !== null && Tokens.hashesEqual(w.token_hash, h)
        ? Option.some(w)
        : Option.none<WorkerRow>()
    }).pipe(Effect.orDie)

  const get = (id: string) =>
    sql<WorkerRow>`SELECT * FROM worker WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  /** The job assigned to a worker, if any. */
  const jobOf = (id: string) =>
    sql<JobRow>`SELECT * FROM job WHERE worker = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  /**
   * `GET /0/worker/ping`: records the ping, answers `poweroff` once the worker is recycled (and not
   * held), and the job while it is assigned and not complete.
   */
  const ping = (id: string) => Effect.zipRight(touch(id), pingView(id))

  /** Records that the worker's agent was heard from (`lastping`). */
  const touch = (id: string) =>
    Effect.flatMap(currentTime, (t) => sql`UPDATE worker SET lastping = ${t} WHERE id = ${id}`).pipe(Effect.orDie)

  /** What a ping answers, without recording the ping. */
  const pingView = (id: string) =>
    Effect.gen(function*() {
      const [w] = yield* sql<WorkerRow & { factory_name: string | null }>`
        SELECT w.*, f.name AS factory_name FROM worker w LEFT JOIN factory f ON f.id = w.factory
        WHERE w.id = ${id}`.pipe(Effect.orDie)
      if (w === undefined) return { poweroff: true } satisfies WorkerPingResult
      // buildomat: poweroff = (recycle || deleted) && !held && !diagnostics.
      const poweroff = (w.recycle === 1 || w.deleted === 1) && w.hold_time === null && !w.diagnostics
      const j = yield* jobOf(id)
      // The job is withheld while the factory still forwards boot logs (`wait_for_flush`).
      const job = Option.isSome(j) && !j.value.complete && !w.wait_for_flush ? yield* jobs.pingJob(j.value) : null
      return {
        poweroff,
        job,
        factory_metadata: w.factory_metadata != null ? JSON.parse(w.factory_metadata) : null,
        factory_info: w.factory_name !== null ? { id: w.factory, name: w.factory_name, private: w.factory_private } : null
      } satisfies WorkerPingResult
    })

  /**
   * `GET /ext/0/worker/ping`: `ping`, held for up to `waitMs` while nothing the agent needs to
   * know has changed, that is while the worker is not told to power off and its assigned,
   * incomplete job is `knownJob` (`null`: none). It wakes on the worker's `EventHub` key, which
   * assignment, completion, recycle, fail and delete signal, and re-reads the worker every second
   * as well, so that a change made without a signal is seen within a second.
   */
  const pingWait = (id: string, knownJob: string | null, waitMs: number) =>
    Effect.gen(function*() {
      const deadline = Date.now() + waitMs
      const key = workerKey(id)
      // `lastping` is when the request arrived: the answer to a wake-up (an assignment) is then
      // not held up by a write of its own.
      yield* touch(id)
      let signalled = false
      for (;;) {
        const signal = yield* hub.signal(key)
        const left = deadline - Date.now()
        const done = left <= 0 || (yield* Deferred.isDone(signals.stopping))
        if (signalled || done) {
          // A signal is likely news (a job assigned): the whole answer at once, not a check first.
          const view = yield* pingView(id)
          if (done || view.poweroff || (view.job?.id ?? null) !== knownJob) return view
        } else {
          const [st] = yield* sql<{ off: number; job: string | null }>`
            SELECT ((w.recycle = 1 OR w.deleted = 1) AND w.hold_time IS NULL AND w.diagnostics = 0) AS off,
              CASE WHEN w.wait_for_flush = 1 THEN NULL
                ELSE (SELECT j.id FROM job j WHERE j.worker = w.id AND j.complete = 0) END AS job
            FROM worker w WHERE w.id = ${id}`.pipe(Effect.orDie)
          if (st === undefined || st.off || st.job !== knownJob) return yield* pingView(id)
        }
        signalled = yield* hub.wait(signal, Math.min(left, 1000))
      }
    })

  /**
   * `POST /0/worker/fail`: the agent hit a fatal error. Fails its running job, holds the worker
   * (for an operator to look at) and recycles it. A no-op once recycled or deleted.
   */
  const fail = (id: string, reason: string) =>
    Effect.gen(function*() {
      const w = yield* get(id)
      if (Option.isNone(w) || w.value.recycle || w.value.deleted) return
      const j = yield* jobOf(id)
      let why = reason
      if (Option.isSome(j) && !j.value.complete) {
        yield* jobs.control(j.value.id, "worker agent experienced a fatal error; aborting job").pipe(
          sql.withTransaction,
          Effect.orDie
        )
        yield* jobs.complete(j.value.id, true).pipe(Effect.catchAll(() => Effect.void))
        why = `${reason} during job execution`
      }
      yield* sql`UPDATE worker SET recycle = 1, hold_time = coalesce(hold_time, ${now()}),
        hold_reason = coalesce(hold_reason, ${why}) WHERE id = ${id}`.pipe(Effect.orDie)
      if (Option.isSome(j)) yield* hub.notify(j.value.id)
      yield* hub.notify(workerKey(id))
      yield* signals.wakeAll
    })

  /** Marks a worker recycled: its provider destroys it and its agent is told to power off. */
  const recycle = (id: string) =>
    sql`UPDATE worker SET recycle = 1 WHERE id = ${id} AND deleted = 0`.pipe(
      Effect.zipRight(hub.notify(workerKey(id))),
      Effect.zipRight(signals.provisioner.wake),
      Effect.orDie
    )

  /** Marks a worker deleted (its machine is gone); its token stops working. */
  const markDeleted = (id: string) =>
    sql`UPDATE worker SET deleted = 1, recycle = 1, diagnostics = 0 WHERE id = ${id}`.pipe(
      Effect.zipRight(hub.notify(workerKey(id))),
      Effect.asVoid,
      Effect.orDie
    )

  /**
   * `POST /0/worker/append`: worker events, numbered from 1 per worker, in one transaction.
   * Refused (`Conflict`) once the worker is deleted.
   */
  const appendEvents = (id: string, events: ReadonlyArray<WorkerAppend>) =>
    Effect.gen(function*() {
      const ok = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [w] = yield* sql<{ deleted: number }>`SELECT deleted FROM worker WHERE id = ${id}`
          if (w === undefined || w.deleted) return false
          if (events.length === 0) return true
          const [{ last }] = yield* sql<{ last: number }>`
            SELECT coalesce(max(seq), 0) AS last FROM worker_event WHERE worker = ${id}`
          const time = now()
          const rows = events.map((e, i) => ({
            worker: id,
            seq: last + i + 1,
            stream: e.stream,
            time,
            time_remote: e.time,
            payload: e.payload
          }))
          for (let i = 0; i < rows.length; i += 500) yield* sql`INSERT INTO worker_event ${sql.insert(rows.slice(i, i + 500))}`
          return true
        })
      ).pipe(Effect.orDie)
      if (!ok) return yield* Effect.fail(new Conflict({ message: `worker ${id} is deleted` }))
    })

  /** A worker's events with `seq >= minseq`, ascending, at most 1000. */
  const events = (id: string, minseq = 0) =>
    sql<{ seq: number; stream: string; time: string; time_remote: string | null; payload: string }>`
      SELECT seq, stream, time, time_remote, payload FROM worker_event
      WHERE worker = ${id} AND seq >= ${minseq} ORDER BY seq LIMIT 1000`.pipe(Effect.orDie)

  /**
   * `POST /0/worker/diagnostics/enable`: the agent will run post-job diagnostics, so the worker
   * is neither recycled at job completion nor told to power off until they complete.
   * Idempotent; `Conflict` once deleted.
   */
  const enableDiagnostics = (id: string) =>
    Effect.gen(function*() {
      const w = yield* get(id)
      if (Option.isNone(w) || w.value.deleted) {
        return yield* Effect.fail(new Conflict({ message: `worker ${id} is deleted` }))
      }
      yield* sql`UPDATE worker SET diagnostics = 1 WHERE id = ${id}`.pipe(Effect.orDie)
    })

  /**
   * `POST /0/worker/diagnostics/complete {hold}` (buildomat §2.5): a no-op unless diagnostics
   * were enabled; otherwise clears the flag, holds the worker if `hold` (reason "post-job
   * diagnostics reported a fault"; a worker event if already held), and recycles it if its job
   * is complete. `Conflict` once deleted.
   */
  const completeDiagnostics = (id: string, hold: boolean) =>
    Effect.gen(function*() {
      const w = yield* get(id)
      if (Option.isNone(w) || w.value.deleted) {
        return yield* Effect.fail(new Conflict({ message: `worker ${id} is deleted` }))
      }
      if (!w.value.diagnostics) return
      const reason = "post-job diagnostics reported a fault"
      if (hold && w.value.hold_time !== null) {
        yield* appendEvents(id, [{ stream: "control", time: now(), payload: `${reason} (already held)` }])
      }
      yield* sql`UPDATE worker SET diagnostics = 0,
          hold_time = CASE WHEN ${hold ? 1 : 0} = 1 AND hold_time IS NULL THEN ${now()} ELSE hold_time END,
          hold_reason = CASE WHEN ${hold ? 1 : 0} = 1 AND hold_time IS NULL THEN ${reason} ELSE hold_reason END,
          recycle = CASE WHEN EXISTS (SELECT 1 FROM job j WHERE j.worker = worker.id AND j.complete = 1)
            THEN 1 ELSE recycle END
        WHERE id = ${id}`.pipe(Effect.orDie)
      yield* hub.notify(workerKey(id))
      yield* signals.provisioner.wake
    })

  /** The workers of a factory that are not deleted. */
  const liveOf = (factory: string) =>
    sql<WorkerRow & { has_job: number }>`
      SELECT w.*, EXISTS (SELECT 1 FROM job j WHERE j.worker = w.id) AS has_job
      FROM worker w WHERE w.factory = ${factory} AND w.deleted = 0 ORDER BY w.id`.pipe(Effect.orDie)

  return {
    create,
    associate,
    bootstrap,
    byToken,
    get,
    jobOf,
    ping,
    pingWait,
    fail,
    recycle,
    markDeleted,
    liveOf,
    appendEvents,
    events,
    enableDiagnostics,
    completeDiagnostics
  } as const
})

/**
 * @since 0.1.0
 * @category context
 */
export class WorkerStore extends Context.Tag("@buildomat/core/server/WorkerStore")<
  WorkerStore,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`, `JobStore`, `EventHub`, `Signals`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scoped(WorkerStore, make)
