/**
 * Workers: ephemeral machines that each run at most one job, ever (buildomat). A worker is
 * created by the provisioner with a bootstrap secret, associated with the provider's instance,
 * bootstrapped by its agent (which binds its own token), assigned a job, recycled when the job
 * ends, and deleted once the provider has destroyed the machine.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import * as Ids from "../Ids.js"
import { currentTime, now } from "../Schemas.js"
import type { WorkerPingResult } from "../Workers.js"
import { EventHub } from "./EventHub.js"
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

  /** Records the provider's instance id; the agent can bootstrap only after this. */
  const associate = (id: string, instance: string, ip: string | undefined) =>
    sql`UPDATE worker SET factory_private = ${instance}, factory_ip = ${ip ?? null} WHERE id = ${id}`.pipe(
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
  const ping = (id: string) =>
    Effect.gen(function*() {
      yield* sql`UPDATE worker SET lastping = ${yield* currentTime} WHERE id = ${id}`.pipe(Effect.orDie)
      const w = yield* get(id)
      if (Option.isNone(w)) return { poweroff: true } satisfies WorkerPingResult
      const poweroff = (w.value.recycle === 1 || w.value.deleted === 1) && w.value.hold_time === null
      const j = yield* jobOf(id)
      // The job is withheld while the factory still forwards boot logs (`wait_for_flush`).
      const job = Option.isSome(j) && !j.value.complete && !w.value.wait_for_flush ? yield* jobs.pingJob(j.value) : null
      const [f] = yield* sql<{ id: string; name: string }>`SELECT id, name FROM factory WHERE id = ${w.value.factory}`.pipe(
        Effect.orDie
      )
      return {
        poweroff,
        job,
        factory_metadata: w.value.factory_metadata != null ? JSON.parse(w.value.factory_metadata) : null,
        factory_info: f !== undefined ? { id: f.id, name: f.name, private: w.value.factory_private } : null
      } satisfies WorkerPingResult
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
      yield* signals.wakeAll
    })

  /** Marks a worker recycled: its provider destroys it and its agent is told to power off. */
  const recycle = (id: string) =>
    sql`UPDATE worker SET recycle = 1 WHERE id = ${id} AND deleted = 0`.pipe(
      Effect.zipRight(signals.provisioner.wake),
      Effect.orDie
    )

  /** Marks a worker deleted (its machine is gone); its token stops working. */
  const markDeleted = (id: string) =>
    sql`UPDATE worker SET deleted = 1, recycle = 1 WHERE id = ${id}`.pipe(Effect.asVoid, Effect.orDie)

  /** The workers of a factory that are not deleted. */
  const liveOf = (factory: string) =>
    sql<WorkerRow & { has_job: number }>`
      SELECT w.*, EXISTS (SELECT 1 FROM job j WHERE j.worker = w.id) AS has_job
      FROM worker w WHERE w.factory = ${factory} AND w.deleted = 0 ORDER BY w.id`.pipe(Effect.orDie)

  return { create, associate, bootstrap, byToken, get, jobOf, ping, fail, recycle, markDeleted, liveOf } as const
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
export const layer = Layer.effect(WorkerStore, make)
