/**
 * Workers as operators see and steer them (buildomat §2.4): the worker view with its job, the
 * legacy and paged listings, per-worker events, recycling one worker or all of them, and holds.
 *
 * A held worker (`hold_time` and `hold_reason` set) is never assigned a job, never told to power
 * off, never reported as `recycle` to its factory and never destroyed by the provisioning loop,
 * until an operator releases it.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import type { Worker, WorkerEvent } from "../Admin.js"
import { BadRequest, Conflict, NotFound } from "../Errors.js"
import * as Ids from "../Ids.js"
import { now } from "../Schemas.js"
import { stateOf } from "./JobStore.js"
import { Signals } from "./Signals.js"
import type { WorkerRow } from "./WorkerStore.js"

const PAGE = 1000

const encodeToken = (last: string, active: boolean, factory: string | undefined) =>
  Buffer.from(JSON.stringify({ last, active, factory: factory ?? null })).toString("base64url")

const decodeToken = (token: string): Option.Option<{ last: string; active: boolean; factory: string | undefined }> => {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"))
    if (typeof v?.last !== "string" || !Ids.isUlid(v.last) || typeof v.active !== "boolean") return Option.none()
    return Option.some({
      last: v.last.toUpperCase(),
      active: v.active,
      factory: typeof v.factory === "string" ? v.factory : undefined
    })
  } catch {
    return Option.none()
  }
}

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const signals = yield* Signals

  /** Worker views for rows, with each worker's job (one query for all jobs and one for tags). */
  const views = (rows: ReadonlyArray<WorkerRow>) =>
    Effect.gen(function*() {
      if (rows.length === 0) return []
      const ids = rows.map((w) => w.id)
      const jobRows = yield* sql<{
        id: string
        name: string
        owner: string
        worker: string
        failed: number
        complete: number
        waiting: number
      }>`SELECT id, name, owner, worker, failed, complete, waiting FROM job WHERE ${sql.in("worker", ids)} ORDER BY id`
      const tags = jobRows.length === 0 ? [] : yield* sql<{ job: string; name: string; value: string }>`
        SELECT job, name, value FROM job_tag WHERE ${sql.in("job", jobRows.map((j) => j.id))}`
      return rows.map((w): Worker => ({
        id: w.id,
        factory: w.factory,
        factory_private: w.factory_private,
        factory_ip: w.factory_ip,
        target: w.target,
        bootstrap: w.token_hash !== null,
        deleted: w.deleted === 1,
        recycle: w.recycle === 1,
        lastping: w.lastping,
        jobs: jobRows.filter((j) => j.worker === w.id).map((j) => ({
          id: j.id,
          name: j.name,
          owner: j.owner,
          state: stateOf(j),
          tags: Object.fromEntries(tags.filter((t) => t.job === j.id).map((t) => [t.name, t.value]))
        })),
        hold: w.hold_time !== null ? { time: w.hold_time, reason: w.hold_reason ?? "" } : null,
        diagnostics: w.diagnostics === 1
      }))
    }).pipe(Effect.orDie)

  const row = (id: string) =>
    sql<WorkerRow>`SELECT * FROM worker WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), Effect.orDie)

  const mustExist = (id: string) =>
    Effect.flatMap(
      row(id),
      Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `worker ${id} does not exist` })),
        onSome: Effect.succeed
      })
    )

  /** `GET /0/admin/worker/{worker}`. */
  const get = (id: string) => mustExist(id).pipe(Effect.flatMap((w) => views([w])), Effect.map((v) => v[0]!))

  /** `GET /0/workers?active=`: every worker (or only those not deleted), by id. */
  const listAll = (active: boolean) =>
    (active
      ? sql<WorkerRow>`SELECT * FROM worker WHERE deleted = 0 ORDER BY id`
      : sql<WorkerRow>`SELECT * FROM worker ORDER BY id`).pipe(Effect.orDie, Effect.flatMap(views))

  /**
   * `GET /1/workers`: pages of at most 1000 by id, the scan parameters (`active`, `factory`)
   * carried in `page_token`.
   */
  const page = (q: {
    readonly active?: boolean | undefined
    readonly factory?: string | undefined
    readonly limit?: number | undefined
    readonly page_token?: string | undefined
  }) =>
    Effect.gen(function*() {
      let last: string | undefined
      let active = q.active ?? false
      let factory = q.factory
      if (q.page_token !== undefined) {
        const t = decodeToken(q.page_token)
        if (Option.isNone(t)) return yield* Effect.fail(new BadRequest({ message: "page_token is not a token this server issued" }))
        last = t.value.last
        active = t.value.active
        factory = t.value.factory
      }
      if (factory !== undefined && !Ids.isUlid(factory)) {
        return yield* Effect.fail(new BadRequest({ message: `factory must be a factory id (a ULID), got ${JSON.stringify(factory)}` }))
      }
      const limit = Math.min(Math.max(q.limit ?? PAGE, 1), PAGE)
      const where = [sql`1 = 1`]
      if (active) where.push(sql`deleted = 0`)
      if (factory !== undefined) where.push(sql`factory = ${factory.toUpperCase()}`)
      if (last !== undefined) where.push(sql`id > ${last}`)
      const rows = yield* sql<WorkerRow>`SELECT * FROM worker WHERE ${sql.and(where)} ORDER BY id LIMIT ${limit}`.pipe(
        Effect.orDie
      )
      const items = yield* views(rows)
      const next = rows.length === limit ? encodeToken(rows[rows.length - 1]!.id, active, factory) : null
      return { items, next_page: next }
    })

  /** Appends events to a worker's event stream inside the caller's transaction (seq from 1). */
  const insertEvents = (
    worker: string,
    events: ReadonlyArray<{ readonly stream: string; readonly time_remote: string | null; readonly payload: string }>
  ) =>
    Effect.gen(function*() {
      const [{ last }] = yield* sql<{ last: number }>`
        SELECT coalesce(max(seq), 0) AS last FROM worker_event WHERE worker = ${worker}`
      const time = now()
      let seq = last
      for (const e of events) {
        yield* sql`INSERT INTO worker_event ${
          sql.insert({ worker, seq: ++seq, stream: e.stream, time, time_remote: e.time_remote, payload: e.payload })
        }`
      }
      return seq
    })

  /** A `control` event of the worker, inside the caller's transaction. */
  const control = (worker: string, payload: string) => insertEvents(worker, [{ stream: "control", time_remote: null, payload }])

  /** `GET /0/admin/worker/{worker}/events?minseq=`: at most 1000 events with `seq >= minseq`. */
  const events = (id: string, minseq: number) =>
    Effect.gen(function*() {
      yield* mustExist(id)
      return yield* sql<WorkerEvent>`
        SELECT seq, stream, time, time_remote, payload FROM worker_event
        WHERE worker = ${id} AND seq >= ${minseq} ORDER BY seq LIMIT 1000`.pipe(Effect.orDie)
    })

  /**
   * `POST /0/admin/worker/{worker}/recycle`: marks the worker recycled (a no-op once deleted).
   * Its factory destroys the machine unless the worker is held; a job running on it is failed.
   */
  const recycle = (id: string) =>
    Effect.gen(function*() {
      yield* mustExist(id)
      yield* sql`UPDATE worker SET recycle = 1 WHERE id = ${id} AND deleted = 0`.pipe(Effect.orDie)
      yield* Effect.logInfo(`ADMIN: recycled worker ${id}`)
      yield* signals.wakeAll
    })

  /** `POST /0/workers/recycle`: recycles every worker not yet deleted. */
  const recycleAll = Effect.gen(function*() {
    yield* sql`UPDATE worker SET recycle = 1 WHERE deleted = 0`.pipe(Effect.orDie)
    yield* Effect.logInfo("ADMIN: recycled all workers")
    yield* signals.wakeAll
  })

  /**
   * `POST /0/admin/worker/{worker}/hold`: holds the worker with `reason` (400 if blank), and
   * records `marked held: <reason>` in its events. 409 if it is deleted or already held.
   */
  const hold = (id: string, reason: string) =>
    Effect.gen(function*() {
      if (reason.trim().length === 0) return yield* Effect.fail(new BadRequest({ message: "a hold needs a reason" }))
      yield* mustExist(id)
      const problem = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [w] = yield* sql<WorkerRow>`SELECT * FROM worker WHERE id = ${id}`
          if (w === undefined || w.deleted) return `worker ${id} is deleted; cannot be held`
          if (w.hold_time !== null) return `worker ${id} is already on hold: ${w.hold_reason ?? ""}`
          yield* sql`UPDATE worker SET hold_time = ${now()}, hold_reason = ${reason} WHERE id = ${id} AND hold_time IS NULL`
          yield* control(id, `marked held: ${reason}`)
          return undefined
        })
      ).pipe(Effect.orDie)
      if (problem !== undefined) return yield* Effect.fail(new Conflict({ message: problem }))
      yield* Effect.logInfo(`ADMIN: marked worker ${id} as on hold (${reason})`)
    })

  /**
   * `POST /0/admin/worker/{worker}/release`: clears the hold and records `hold released`; a
   * no-op for a worker not held. Returns whether it was held. A released worker can be assigned
   * a job again, or, if it was recycled meanwhile, destroyed.
   */
  const release = (id: string) =>
    Effect.gen(function*() {
      yield* mustExist(id)
      const was = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [w] = yield* sql<WorkerRow>`SELECT * FROM worker WHERE id = ${id}`
          if (w === undefined || w.hold_time === null) return false
          yield* control(id, "hold released")
          yield* sql`UPDATE worker SET hold_time = NULL, hold_reason = NULL WHERE id = ${id}`
          return true
        })
      ).pipe(Effect.orDie)
      if (was) {
        yield* Effect.logInfo(`ADMIN: released hold on worker ${id}`)
        yield* signals.wakeAll
      }
      return was
    })

  return { get, listAll, page, events, insertEvents, control, recycle, recycleAll, hold, release } as const
})

/**
 * The worker administration service.
 *
 * @since 0.1.0
 * @category context
 */
export class WorkerAdmin extends Context.Tag("@buildomat/core/server/WorkerAdmin")<
  WorkerAdmin,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient` and `Signals`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(WorkerAdmin, make)
