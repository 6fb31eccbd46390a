/**
 * The job store (buildomat §1.7): named values per job for passing data into a running job, such
 * as a token the job needs. Users set them (`PUT /0/jobs/{job}/store/{name}`, source `user`),
 * the agent reads and sets them (`/0/worker/job/{job}/store/{name}`, source `worker`).
 *
 * Secrets: a value stored as secret stays secret whatever later writes say; users never get a
 * secret value back (it reads as `null`); only the worker running the job does. Values are never
 * logged. `redacted` gives the store with secret values dropped, for archives: buildomat's
 * archive keeps secrets and drops the other values (spec §5.4, a bug); we do the opposite.
 *
 * Limits (buildomat): names `[A-Za-z0-9_]+`, values of at most 10 KiB, at most 100 names per
 * job, no writes once the job is complete.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { BadRequest, Conflict } from "../Errors.js"
import {
  isStoreName,
  type JobStoreValueInfo,
  MAX_STORE_VALUE_BYTES,
  MAX_STORE_VALUES,
  type WorkerJobStoreGet
} from "../JobModel.js"
import { now } from "../Schemas.js"

/**
 * A store entry with its secret dropped, as an archive may keep it: `value` is `null` when
 * `secret` is set.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedactedValue {
  readonly name: string
  readonly value: string | null
  readonly secret: boolean
  readonly source: string
  readonly time_update: string
}

interface Row {
  readonly name: string
  readonly value: string
  readonly secret: number
  readonly source: string
  readonly time_update: string
}

/**
 * Checks a store name and value: 400 with a message if the name is not `[A-Za-z0-9_]+` or the
 * value is longer than 10 KiB (in UTF-8 bytes). The message never includes the value.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkEntry = (name: string, value?: string | undefined) =>
  Effect.gen(function*() {
    if (!isStoreName(name)) {
      return yield* Effect.fail(
        new BadRequest({ message: `invalid store entry name ${JSON.stringify(name)}: use one or more of [A-Za-z0-9_]` })
      )
    }
    if (value !== undefined && Buffer.byteLength(value) > MAX_STORE_VALUE_BYTES) {
      return yield* Effect.fail(
        new BadRequest({ message: `store value ${name} is ${Buffer.byteLength(value)} bytes; the maximum is ${MAX_STORE_VALUE_BYTES} (10 KiB)` })
      )
    }
  })

const redact = (r: Row): RedactedValue => ({
  name: r.name,
  value: r.secret ? null : r.value,
  secret: r.secret === 1,
  source: r.source,
  time_update: r.time_update
})

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const rows = (job: string) =>
    sql<Row>`SELECT name, value, secret, source, time_update FROM job_store WHERE job = ${job} ORDER BY name`.pipe(
      Effect.orDie
    )

  /**
   * Sets `name` of `job` (after `checkEntry`): 409 if the job is complete, or if the store already
   * holds 100 names and this is a new one. A secret stays secret.
   */
  const put = (job: string, name: string, value: string, secret: boolean, source: "user" | "worker") =>
    Effect.gen(function*() {
      yield* checkEntry(name, value)
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${job}`
          if (cur === undefined || cur.complete) return "complete" as const
          const [pre] = yield* sql<{ secret: number }>`SELECT secret FROM job_store WHERE job = ${job} AND name = ${name}`
          const time = now()
          if (pre !== undefined) {
            yield* sql`UPDATE job_store SET value = ${value}, secret = ${pre.secret || secret ? 1 : 0},
              source = ${source}, time_update = ${time} WHERE job = ${job} AND name = ${name}`
            return "ok" as const
          }
          const [{ n }] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM job_store WHERE job = ${job}`
          if (n >= MAX_STORE_VALUES) return "full" as const
          yield* sql`INSERT INTO job_store ${
            sql.insert({ job, name, value, secret: secret ? 1 : 0, source, time_update: time })
          }`
          return "ok" as const
        })
      ).pipe(Effect.orDie)
      if (r === "complete") {
        return yield* Effect.fail(new Conflict({ message: `job ${job} already complete; cannot update store` }))
      }
      if (r === "full") {
        return yield* Effect.fail(
          new Conflict({ message: `job ${job} already has ${MAX_STORE_VALUES} store values; no more can be added` })
        )
      }
    })

  /** `GET /0/jobs/{job}/store`: every entry, secret values as `null`. */
  const list = (job: string) =>
    Effect.map(rows(job), (rs) => {
      const out: Record<string, JobStoreValueInfo> = {}
      for (const r of rs) {
        out[r.name] = { value: r.secret ? null : r.value, secret: r.secret === 1, source: r.source, time_update: r.time_update }
      }
      return out
    })

  /** `GET /0/worker/job/{job}/store/{name}`: the value with its secret flag, for the worker. */
  const get = (job: string, name: string) =>
    Effect.gen(function*() {
      yield* checkEntry(name)
      const [r] = yield* sql<Row>`SELECT * FROM job_store WHERE job = ${job} AND name = ${name}`.pipe(Effect.orDie)
      const out: WorkerJobStoreGet = { value: r === undefined ? null : { value: r.value, secret: r.secret === 1 } }
      return out
    })

  /**
   * The store of a job with every secret value dropped (`value: null`), keyed by name: what an
   * archive of the job may keep.
   */
  const redacted = (job: string) =>
    Effect.map(rows(job), (rs) => Object.fromEntries(rs.map((r) => [r.name, redact(r)])) as Record<string, RedactedValue>)

  return { put, list, get, redacted } as const
})

/**
 * The job store service.
 *
 * @since 0.1.0
 * @category context
 */
export class JobValues extends Context.Tag("@buildomat/core/server/JobValues")<
  JobValues,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(JobValues, make)
