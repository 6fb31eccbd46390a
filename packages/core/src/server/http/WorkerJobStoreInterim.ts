/**
 * INTERIM (issue 4): a minimal implementation of buildomat's worker job store routes,
 * `GET`/`PUT /0/worker/job/{job}/store/{name}`, so that `bmat store get|put` works before the
 * job store of issue 3 lands. It follows buildomat's rules (names `[A-Za-z0-9_]+`, values at most
 * 10 KiB, at most 100 names per job, sticky secrets, refused once the job is complete) on the
 * `job_store` table of migration `0003_interim_job_store`. When merging, replace this file and
 * that migration with issue 3's job store.
 *
 * @since 0.1.0
 */
import { HttpApiBuilder } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { BuildomatApi, CurrentWorker } from "../../Api.js"
import { BadRequest, Conflict, Forbidden } from "../../Errors.js"
import { now } from "../../Schemas.js"
import { JobStore } from "../JobStore.js"

const NAME = /^[A-Za-z0-9_]+$/
const MAX_VALUE = 10 * 1024
const MAX_NAMES = 100

/**
 * The interim worker job store handlers.
 *
 * @since 0.1.0
 * @category handlers
 */
export const WorkerJobStoreInterimLive = HttpApiBuilder.group(BuildomatApi, "workerJobStore", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobStore
    const ownJob = (job: string) =>
      Effect.gen(function*() {
        const w = yield* CurrentWorker
        const j = yield* jobs.mustExist(job)
        if (j.worker !== w.id) return yield* Effect.fail(new Forbidden({ message: "not your job" }))
        return j
      })
    const checkName = (name: string) =>
      NAME.test(name) ? Effect.void : Effect.fail(new BadRequest({ message: `store name ${JSON.stringify(name)} must match [A-Za-z0-9_]+` }))
    return handlers
      .handle("get", ({ path }) =>
        Effect.gen(function*() {
          const j = yield* ownJob(path.job)
          yield* checkName(path.name)
          const [row] = yield* sql<{ value: string; secret: number }>`
            SELECT value, secret FROM job_store WHERE job = ${j.id} AND name = ${path.name}`.pipe(Effect.orDie)
          return { value: row === undefined ? null : { value: row.value, secret: row.secret === 1 } }
        }))
      .handle("put", ({ path, payload }) =>
        Effect.gen(function*() {
          const j = yield* ownJob(path.job)
          yield* checkName(path.name)
          if (Buffer.byteLength(payload.value) > MAX_VALUE) {
            return yield* Effect.fail(new BadRequest({ message: `a store value is at most ${MAX_VALUE} bytes` }))
          }
          const r = yield* sql.withTransaction(Effect.gen(function*() {
            const [cur] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${j.id}`
            if (cur === undefined || cur.complete) return "complete" as const
            const [{ n }] = yield* sql<{ n: number }>`
              SELECT count(*) AS n FROM job_store WHERE job = ${j.id} AND name != ${path.name}`
            if (n >= MAX_NAMES) return "full" as const
            yield* sql`INSERT INTO job_store (job, name, value, secret, source, time_update)
              VALUES (${j.id}, ${path.name}, ${payload.value}, ${payload.secret ? 1 : 0}, 'worker', ${now()})
              ON CONFLICT (job, name) DO UPDATE SET value = excluded.value,
                secret = max(job_store.secret, excluded.secret), source = 'worker', time_update = excluded.time_update`
            return "ok" as const
          })).pipe(Effect.orDie)
          if (r === "complete") return yield* Effect.fail(new Conflict({ message: `job ${j.id} is already complete` }))
          if (r === "full") return yield* Effect.fail(new Conflict({ message: `a job has at most ${MAX_NAMES} store names` }))
        }))
  }))
