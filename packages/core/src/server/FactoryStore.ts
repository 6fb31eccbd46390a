/**
 * Factories: the records (`factory` table, tokens stored as SHA-256), the in-memory leases, and
 * the factory's side of the worker lifecycle (buildomat §2.6, §4.1): create a worker record
 * (optionally bound to a job, optionally held until the boot logs are flushed), associate it with
 * the factory's machine, forward boot-log lines into the job, and destroy it.
 *
 * Every worker belongs to a factory. In-process providers (`WorkerProvider`s a server runs as
 * layers) have factory records too, made at start with no token (`ensureInProcess`), so that
 * enabling, disabling and `hold_workers` apply to them the same way. Both kinds run the same
 * reconcile loop (`Factory.reconcileOnce`): the in-process one calls this store directly, a
 * separate factory process reaches it through the factory API. Each pass reports how full the
 * factory is (`status`); the reports, kept in memory, say why a job waits.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Clock, Context, Effect, Layer, Option, Ref, Schema } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound } from "../Errors.js"
import type { Factory, FactoryReport, FactoryStatus, FactoryWorker } from "../Factories.js"
import { FactoryMetadata } from "../Factories.js"
import * as Ids from "../Ids.js"
import { now } from "../Schemas.js"
import { Control } from "./Control.js"
import { EventHub } from "./EventHub.js"
import * as Tokens from "./internal/tokens.js"
import { JobStore } from "./JobStore.js"
import { Signals } from "./Signals.js"
import { type WorkerRow, WorkerStore } from "./WorkerStore.js"

/**
 * A `factory` row. `token_hash` is null for the record of an in-process provider.
 *
 * @since 0.1.0
 * @category models
 */
export interface FactoryRow {
  readonly id: string
  readonly name: string
  readonly token_hash: string | null
  readonly lastping: string | null
  readonly enable: number
  readonly hold_workers: number
}

/**
 * How long a lease lasts unless renewed, in milliseconds (buildomat: 60 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const LEASE_MS = 60_000

/**
 * The hold reason of workers made by a factory with `hold_workers` set (buildomat's words).
 *
 * @since 0.1.0
 * @category constants
 */
export const HOLD_WORKERS_REASON = "factory is configured to hold all created workers"

/** What the worker rows this module reads carry beyond `WorkerRow`. */
type FullWorkerRow = WorkerRow & {
  readonly wait_for_flush: number
  readonly factory_metadata: string | null
}

/**
 * A lease in memory: held by `factory` (an id) until `expiry` (epoch ms), on a job of `target`
 * (an id). `worker` is the worker the factory made after taking it, if it made one yet (the lease
 * "covers" that worker until the worker gets a job or stops coming; see `grant`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease {
  readonly factory: string
  readonly expiry: number
  readonly target: string
  readonly worker?: string | undefined
}

/**
 * The last report of a factory's reconcile loop (`status`), with the target ids its target
 * names resolved to and when it came (epoch ms).
 *
 * @since 0.1.0
 * @category models
 */
export interface FactoryReportEntry {
  readonly factory: string
  readonly report: FactoryReport
  readonly targetIds: ReadonlyMap<string, string>
  readonly time: number
}

/**
 * How long a factory's report counts as current, in milliseconds (2 minutes): a factory that has
 * not reported for longer is taken as not running when saying why a job waits.
 *
 * @since 0.1.0
 * @category constants
 */
export const REPORT_FRESH_MS = 120_000

/** JSON with object keys sorted, so that equal values give equal text. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_, x) =>
    x !== null && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, (x as Record<string, unknown>)[k]]))
      : x)

const encodeMetadata = Schema.encodeSync(FactoryMetadata)

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobStore
  const workers = yield* WorkerStore
  const hub = yield* EventHub
  const signals = yield* Signals
  const control = yield* Control
  const leases = yield* Ref.make(new Map<string, Lease>())
  const reports = yield* Ref.make(new Map<string, FactoryReportEntry>())

  const view = (f: FactoryRow): Factory => ({
    id: f.id,
    name: f.name,
    last_ping: f.lastping,
    enable: f.enable === 1,
    hold_workers: f.hold_workers === 1
  })

  const row = (id: string) =>
    sql<FactoryRow>`SELECT * FROM factory WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  /** The factory, or `NotFound`. */
  const get = (id: string) =>
    Effect.flatMap(
      row(id),
      Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `factory ${id} does not exist` })),
        onSome: Effect.succeed
      })
    )

  /** `GET /0/admin/factories`, ordered by id. */
  const list = sql<FactoryRow>`SELECT * FROM factory ORDER BY id`.pipe(Effect.map((r) => r.map(view)), Effect.orDie)

  /** `POST /0/admin/factory`: a new factory with a fresh 64-character token (409 if the name is taken). */
  const create = (name: string) =>
    Effect.gen(function*() {
      const token = Tokens.generate(64)
      const id = Ids.make()
      const taken = yield* sql.withTransaction(
        Effect.gen(function*() {
          if ((yield* sql`SELECT 1 FROM factory WHERE name = ${name}`).length > 0) return true
          yield* sql`INSERT INTO factory ${sql.insert({ id, name, token_hash: Tokens.hash(token) })}`
          return false
        })
      ).pipe(Effect.orDie)
      if (taken) return yield* Effect.fail(new Conflict({ message: `a factory named ${JSON.stringify(name)} already exists` }))
      return { id, name, token }
    })

  /**
   * The record of the in-process provider called `name`, made (enabled, without a token) if
   * missing. Dies if an out-of-process factory (one with a token) already has that name: the two
   * would share workers.
   */
  const ensureInProcess = (name: string) =>
    Effect.gen(function*() {
      const find = sql<FactoryRow>`SELECT * FROM factory WHERE name = ${name}`
      let [f] = yield* find
      if (f === undefined) {
        yield* sql`INSERT OR IGNORE INTO factory ${sql.insert({ id: Ids.make(), name, token_hash: null })}`
        ;[f] = yield* find
      }
      if (f!.token_hash !== null) {
        return yield* Effect.dieMessage(
          `the in-process provider ${JSON.stringify(name)} has the name of a factory that has a token; ` +
            `rename the provider or the factory`
        )
      }
      return f!
    }).pipe(Effect.catchTag("SqlError", Effect.die))

  /** The factory a bearer token belongs to. */
  const byToken = (token: string) =>
    Effect.gen(function*() {
      const h = Tokens.hash(token)
      const [f] = yield* sql<FactoryRow>`SELECT * FROM factory WHERE token_hash = ${h}`
      return f !== undefined && f.token_hash !== null && Tokens.hashesEqual(f.token_hash, h)
        ? Option.some(f)
        : Option.none<FactoryRow>()
    }).pipe(Effect.orDie)

  /** `POST /0/admin/factory/{factory}/enable`: enables it and sets `hold_workers`. */
  const enable = (id: string, holdWorkers: boolean) =>
    Effect.gen(function*() {
      yield* get(id)
      yield* sql`UPDATE factory SET enable = 1, hold_workers = ${holdWorkers ? 1 : 0} WHERE id = ${id}`.pipe(Effect.orDie)
      yield* signals.provisioner.wake
    })

  /** `POST /0/admin/factory/{factory}/disable`: it gets no more leases (its workers carry on). */
  const disable = (id: string) =>
    Effect.gen(function*() {
      yield* get(id)
      yield* sql`UPDATE factory SET enable = 0 WHERE id = ${id}`.pipe(Effect.orDie)
    })

  /** Records that the factory is alive (`GET /0/factory/ping`, and every lease request). */
  const ping = (id: string) => sql`UPDATE factory SET lastping = ${now()} WHERE id = ${id}`.pipe(Effect.asVoid, Effect.orDie)

  // -------------------------------------------------------------------------------------------
  // Leases
  // -------------------------------------------------------------------------------------------

  /** Jobs that may be leased: not complete, not waiting, not cancelled, not assigned. */
  const leasable = sql<{ id: string; target_id: string }>`
    SELECT id, target_id FROM job
    WHERE complete = 0 AND waiting = 0 AND cancelled = 0 AND worker IS NULL ORDER BY id LIMIT 10000`.pipe(Effect.orDie)

  /**
   * Drops leases that expired, whose job no longer needs a worker, or whose worker is no longer
   * coming (recycled, deleted, held by an operator, or it took another job): the job may be
   * leased again. A worker held because its factory holds all it makes (`hold_workers`) keeps
   * its lease until it expires, as in buildomat, so that such a factory does not make a held
   * worker per pass.
   */
  const prune = (open: ReadonlySet<string>, t: number, coming: ReadonlySet<string>) =>
    Ref.update(leases, (m) =>
      new Map([...m].filter(([job, l]) => l.expiry > t && open.has(job) && (l.worker === undefined || coming.has(l.worker)))))

  /**
   * Workers without a job that are neither deleted nor recycled, of every factory, with their
   * target: `spare` ones (not held), and the ones held only by their factory's `hold_workers`.
   */
  const idleWorkers = Effect.map(
    sql<{ id: string; target: string; held: number }>`
      SELECT w.id, w.target, w.hold_time IS NOT NULL AS held FROM worker w
      WHERE w.deleted = 0 AND w.recycle = 0 AND (w.hold_time IS NULL OR w.hold_reason = ${HOLD_WORKERS_REASON})
        AND NOT EXISTS (SELECT 1 FROM job j WHERE j.worker = w.id)`,
    (rows) => ({ spare: rows.filter((w) => !w.held), coming: new Set(rows.map((w) => w.id)) })
  ).pipe(Effect.orDie)

  /**
   * A lease for `factory` without recording a ping: the oldest queued job whose resolved target
   * is one of `targets`, that no factory holds a lease on, and that is not already provided for.
   * A job of target T is provided for while T has no more queued jobs than spare workers
   * (booting or free, of any factory) plus leases whose worker is not made yet: those jobs get
   * the workers already coming, so no factory makes one more (buildomat grants a lease for every
   * queued job; this stops a warm pool or a booting worker from drawing a surplus one). A lease
   * whose worker stops coming (see `prune`) is dropped, so that its job can be leased again at
   * once.
   * None while the factory is disabled or creation is on hold.
   */
  const grant = (factory: string, targets: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const f = yield* get(factory)
      if (!f.enable || (yield* control.held)) return null
      const open = yield* leasable
      const t = yield* Clock.currentTimeMillis
      const { coming, spare } = yield* idleWorkers
      yield* prune(new Set(open.map((j) => j.id)), t, coming)
      const supported = new Set(targets.map((s) => s.toUpperCase()))
      return yield* Ref.modify(leases, (m) => {
        const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
        const queued = new Map<string, number>()
        for (const j of open) count(queued, j.target_id)
        const provided = new Map<string, number>()
        for (const w of spare) count(provided, w.target)
        for (const l of m.values()) if (l.worker === undefined) count(provided, l.target)
        for (const j of open) {
          if (!supported.has(j.target_id) || m.has(j.id)) continue
          if ((queued.get(j.target_id) ?? 0) <= (provided.get(j.target_id) ?? 0)) continue
          const next = new Map(m)
          next.set(j.id, { factory, expiry: t + LEASE_MS, target: j.target_id })
          return [{ job: j.id, target: j.target_id }, next] as const
        }
        return [null, m] as const
      })
    })

  /**
   * `POST /0/factory/lease`: records a ping, then `grant`s a lease (which lasts `LEASE_MS`), or
   * null.
   */
  const lease = (factory: string, targets: ReadonlyArray<string>) =>
    Effect.zipRight(ping(factory), grant(factory, targets))

  /**
   * `POST /0/factory/lease/{job}`: extends the factory's own lease by `LEASE_MS`; false if it
   * holds none (never had one, it expired, or the job got a worker or was cancelled).
   */
  const renew = (factory: string, job: string) =>
    Effect.gen(function*() {
      const open = yield* leasable
      const t = yield* Clock.currentTimeMillis
      yield* prune(new Set(open.map((j) => j.id)), t, (yield* idleWorkers).coming)
      return yield* Ref.modify(leases, (m) => {
        const l = m.get(job)
        if (l === undefined || l.factory !== factory) return [false, m] as const
        const next = new Map(m)
        next.set(job, { ...l, expiry: t + LEASE_MS })
        return [true, next] as const
      })
    })

  /** The live lease on a job, if any. */
  const leaseOf = (job: string) =>
    Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      const l = (yield* Ref.get(leases)).get(job)
      return l !== undefined && l.expiry > t ? Option.some(l) : Option.none<Lease>()
    })

  // -------------------------------------------------------------------------------------------
  // Reports of the reconcile loops
  // -------------------------------------------------------------------------------------------

  /**
   * `POST /ext/0/factory/status`: keeps the loop's report (in memory) and answers with the
   * factory's switches, the global hold, the ids of the reported target names, and which of its
   * workers have a job. Records a ping at most every 10 seconds.
   */
  const status = (factory: string, report: FactoryReport) =>
    Effect.gen(function*() {
      const f = yield* get(factory)
      const t = yield* Clock.currentTimeMillis
      const names = report.targets.map((x) => x.name)
      const found = names.length === 0
        ? []
        : yield* sql<{ id: string; name: string }>`SELECT id, name FROM target WHERE ${sql.in("name", names)}`.pipe(
          Effect.orDie
        )
      const ids = new Map(found.map((r) => [r.name, r.id]))
      yield* Ref.update(reports, (m) => new Map(m).set(factory, { factory, report, targetIds: ids, time: t }))
      if (f.lastping === null || Date.parse(f.lastping) < Date.now() - 10_000) yield* ping(factory)
      const jobs = yield* sql<{ worker: string; job: string }>`
        SELECT j.worker AS worker, j.id AS job FROM job j JOIN worker w ON w.id = j.worker
        WHERE w.factory = ${factory} AND w.deleted = 0 ORDER BY j.id`.pipe(Effect.orDie)
      return {
        id: f.id,
        name: f.name,
        enable: f.enable === 1,
        hold_workers: f.hold_workers === 1,
        hold: yield* control.held,
        targets: names.map((name) => ({ name, id: ids.get(name) ?? null })),
        jobs
      } satisfies FactoryStatus
    })

  /** The last report of every factory (current or not; see `REPORT_FRESH_MS`). */
  const reportsNow = Effect.map(Ref.get(reports), (m) => [...m.values()])

  // -------------------------------------------------------------------------------------------
  // The factory's workers
  // -------------------------------------------------------------------------------------------

  const factoryWorker = (w: FullWorkerRow, bootstrap = ""): FactoryWorker => ({
    id: w.id,
    private: w.factory_private,
    // Not while held, nor while the agent still runs post-job diagnostics it promised.
    recycle: w.recycle === 1 && w.hold_time === null && !w.diagnostics,
    bootstrap,
    online: w.token_hash !== null,
    hold: w.hold_time !== null,
    target: w.target
  })

  const workerRow = (id: string) =>
    sql<FullWorkerRow>`SELECT * FROM worker WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  /** The worker, if it exists; 403 if another factory made it. */
  const ownedOpt = (factory: string, id: string) =>
    Effect.gen(function*() {
      const w = yield* workerRow(id)
      if (Option.isSome(w) && w.value.factory !== factory) {
        return yield* Effect.fail(new Forbidden({ message: "not your worker" }))
      }
      return w
    })

  /** The worker; 404 if it does not exist, 403 if another factory made it. */
  const owned = (factory: string, id: string) =>
    Effect.flatMap(
      ownedOpt(factory, id),
      Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `worker ${id} does not exist` })),
        onSome: Effect.succeed
      })
    )

  /**
   * Binds `job` to the new worker `worker` inside the caller's transaction, as the scheduler
   * would (buildomat `i_worker_assign_job`): 400 if the job does not exist, 409 if it is complete
   * or already has a worker.
   */
  const assign = (worker: string, factoryName: string, job: string) =>
    Effect.gen(function*() {
      const [j] = yield* sql<{ id: string; worker: string | null; complete: number }>`
        SELECT id, worker, complete FROM job WHERE id = ${job}`
      if (j === undefined) return yield* Effect.fail(new BadRequest({ message: `job ${job} does not exist` }))
      if (j.complete) return yield* Effect.fail(new Conflict({ message: `job ${job} is already complete` }))
      if (j.worker !== null) {
        return yield* Effect.fail(new Conflict({ message: `job ${job} already assigned to worker ${j.worker}` }))
      }
      yield* sql`UPDATE job SET worker = ${worker} WHERE id = ${job} AND worker IS NULL`
      const t = now()
      yield* jobs.setTime(job, "assigned", t)
      const waited = Date.parse(t) - Ids.timestamp(job)
      yield* jobs.control(job, `job assigned to worker ${worker} [factory ${factoryName}] (queued for ${waited} ms)`)
    })

  /**
   * `POST /0/factory/worker`: a worker record for `target` (an existing target id), held if the
   * factory has `hold_workers`, optionally bound to `job` in the same transaction. Returns the
   * worker with its bootstrap secret (the only time the secret is given out).
   */
  const createWorker = (
    factory: string,
    body: {
      readonly target: string
      readonly job?: string | null | undefined
      readonly wait_for_flush?: boolean | undefined
    }
  ) =>
    Effect.gen(function*() {
      const f = yield* get(factory)
      const [t] = yield* sql<{ id: string }>`SELECT id FROM target WHERE id = ${body.target}`.pipe(Effect.orDie)
      if (t === undefined) return yield* Effect.fail(new BadRequest({ message: `target ${body.target} does not exist` }))
      const made = yield* sql.withTransaction(
        Effect.gen(function*() {
          const w = yield* workers.create(f.id, t.id, {
            waitForFlush: body.wait_for_flush ?? false,
            hold: f.hold_workers ? HOLD_WORKERS_REASON : undefined
          })
          if (body.job != null) yield* assign(w.id, f.name, body.job)
          return w
        })
      ).pipe(Effect.catchTag("SqlError", Effect.die))
      if (body.job != null) {
        yield* hub.notify(body.job)
        yield* Ref.update(leases, (m) => new Map([...m].filter(([job]) => job !== body.job)))
      } else {
        // The worker is what the factory's oldest uncovered lease on this target was for.
        yield* Ref.update(leases, (m) => {
          const entry = [...m].find(([, l]) => l.factory === factory && l.target === t.id && l.worker === undefined)
          return entry === undefined ? m : new Map(m).set(entry[0], { ...entry[1], worker: made.id })
        })
      }
      yield* signals.wakeAll
      const w = yield* workerRow(made.id)
      return factoryWorker(Option.getOrThrow(w), made.bootstrap)
    })

  /** `GET /0/factory/workers`: the factory's workers not yet deleted, by id. */
  const listWorkers = (factory: string) =>
    sql<FullWorkerRow>`SELECT * FROM worker WHERE factory = ${factory} AND deleted = 0 ORDER BY id`.pipe(
      Effect.map((rows) => rows.map((w) => factoryWorker(w))),
      Effect.orDie
    )

  /** `GET /0/factory/worker/{worker}`: null if missing or deleted; 403 if not the factory's. */
  const getWorker = (factory: string, id: string) =>
    Effect.map(ownedOpt(factory, id), (w) => ({
      worker: Option.isSome(w) && !w.value.deleted ? factoryWorker(w.value) : null
    }))

  /**
   * `PATCH /0/factory/worker/{worker}` (buildomat `worker_associate`), in one transaction:
   * `private` is write-once (the same value again is fine), `ip` may change, `metadata` is
   * write-once compared as JSON. 409 if the worker is deleted or a write-once value differs.
   */
  const associate = (
    factory: string,
    id: string,
    body: {
      readonly private: string
      readonly ip?: string | null | undefined
      readonly metadata?: FactoryMetadata | null | undefined
    }
  ) =>
    Effect.gen(function*() {
      yield* owned(factory, id)
      const metadata = body.metadata == null ? null : canonical(encodeMetadata(body.metadata))
      const problem = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [w] = yield* sql<FullWorkerRow>`SELECT * FROM worker WHERE id = ${id}`
          if (w === undefined || w.deleted) return `worker ${id} already deleted, cannot associate`
          if (w.factory_private !== null && w.factory_private !== body.private) {
            return `worker ${id} already associated with instance ${w.factory_private} not ${body.private}`
          }
          if (w.factory_metadata !== null && metadata !== null && canonical(JSON.parse(w.factory_metadata)) !== metadata) {
            return `worker ${id} factory metadata mismatch: ${w.factory_metadata} != ${metadata}`
          }
          yield* sql`UPDATE worker SET
            factory_private = ${body.private},
            factory_ip = ${body.ip ?? w.factory_ip},
            factory_metadata = ${w.factory_metadata ?? metadata}
            WHERE id = ${id}`
          return undefined
        })
      ).pipe(Effect.orDie)
      if (problem !== undefined) return yield* Effect.fail(new Conflict({ message: problem }))
    })

  /**
   * `DELETE /0/factory/worker/{worker}`: the factory destroyed the machine; the worker is marked
   * deleted (and `diagnostics` cleared: they will never arrive). A job still running on it is
   * failed by the scheduler. Returns true.
   */
  const destroyWorker = (factory: string, id: string) =>
    Effect.gen(function*() {
      yield* owned(factory, id)
      yield* sql`UPDATE worker SET deleted = 1, diagnostics = 0 WHERE id = ${id}`.pipe(Effect.orDie)
      yield* signals.wakeAll
      return true
    })

  /** `POST /0/factory/worker/{worker}/flush`: releases the job to the agent. */
  const flush = (factory: string, id: string) =>
    Effect.gen(function*() {
      const w = yield* owned(factory, id)
      if (w.wait_for_flush) yield* sql`UPDATE worker SET wait_for_flush = 0 WHERE id = ${id}`.pipe(Effect.orDie)
      const j = yield* workers.jobOf(id)
      if (Option.isSome(j)) yield* hub.notify(j.value.id)
    })

  /**
   * `POST /0/factory/worker/{worker}/append`: a boot-log line becomes an event of the worker's
   * job (task null; `time` stored as `time_remote`). Ignored (`retry: false`) once the job is
   * complete, or when the worker was recycled or deleted without a job; `retry: true` while the
   * worker has no job yet.
   */
  const append = (
    factory: string,
    id: string,
    body: { readonly stream: string; readonly time: string; readonly payload: string }
  ) =>
    Effect.gen(function*() {
      const w = yield* owned(factory, id)
      const j = yield* workers.jobOf(id)
      if (Option.isNone(j)) return { retry: !(w.recycle || w.deleted) }
      if (j.value.complete) return { retry: false }
      const done = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${j.value.id}`
          if (cur?.complete) return true
          yield* jobs.insertEvents(j.value.id, [
            { task: null, stream: body.stream, time_remote: body.time, payload: body.payload }
          ])
          return false
        })
      ).pipe(Effect.orDie)
      if (!done) yield* hub.notify(j.value.id)
      return { retry: false }
    })

  return {
    get,
    list,
    create,
    ensureInProcess,
    byToken,
    enable,
    disable,
    ping,
    lease,
    grant,
    renew,
    leaseOf,
    status,
    reportsNow,
    createWorker,
    listWorkers,
    getWorker,
    associate,
    destroyWorker,
    flush,
    append
  } as const
})

/**
 * The factory store.
 *
 * @since 0.1.0
 * @category context
 */
export class FactoryStore extends Context.Tag("@buildomat/core/server/FactoryStore")<
  FactoryStore,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`, `JobStore`, `WorkerStore`, `EventHub`, `Signals` and `Control`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(FactoryStore, make)
