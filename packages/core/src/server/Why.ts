/**
 * Why a job is not running yet (`GET /ext/0/jobs/{job}/why`, an addition to buildomat's API),
 * computed from the scheduler's state (the job, its inputs and dependencies, the queue of its
 * target, the workers) and the factories' (their switches, leases, and the last report of each
 * reconcile loop, in-process or remote).
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Clock, Effect, Option } from "effect"
import type { JobWaitReason, JobWhy } from "../Jobs.js"
import { Control } from "./Control.js"
import { FactoryStore, REPORT_FRESH_MS } from "./FactoryStore.js"
import { type JobRow, stateOf } from "./JobStore.js"

const ago = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`)

/**
 * The reasons `job` waits, most important first (see `Jobs.JobWaitReasonCode`):
 *
 * - a `waiting` job: the inputs not yet uploaded, and the dependencies not yet satisfied (with the
 *   state of the job each one waits for);
 * - a `queued` job at place P among the queued jobs of its target: `ready` if at least P workers
 *   of the target are free; `booting` if free and booting (made, not held, without a job) workers
 *   number at least P, or a factory holds a lease on the job for a worker not made yet or
 *   booting; otherwise every blocking reason that applies
 *   (`hold`, `no_provider`, `factory_disabled`, `factory_hold_workers`, `limit`), then `booting`
 *   if some workers boot, and `queued` when nothing blocks (the next pass makes a worker).
 *
 * A factory serves the job's target when its last report (`POST /ext/0/factory/status`, sent
 * by every reconcile pass) is at most `REPORT_FRESH_MS` old and names the target. Empty reasons
 * once the job is assigned or complete.
 *
 * @since 0.1.0
 * @category queries
 */
export const why = (job: JobRow) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const factories = yield* FactoryStore
    const control = yield* Control
    const state = stateOf(job)
    const [t] = yield* sql<{ name: string }>`SELECT name FROM target WHERE id = ${job.target_id}`
    const target = t?.name ?? job.target
    const base = { id: job.id, state, target, position: null, reasons: [] as Array<JobWaitReason> }
    if (job.complete || job.worker !== null || job.cancelled) return base satisfies JobWhy

    if (job.waiting) {
      const reasons: Array<JobWaitReason> = []
      const inputs = yield* sql<{ name: string }>`SELECT name FROM job_input WHERE job = ${job.id} AND id IS NULL ORDER BY name`
      if (inputs.length > 0) {
        reasons.push({
          code: "waiting_inputs",
          message: `waiting for ${inputs.length} input${inputs.length === 1 ? "" : "s"} to be uploaded: ${
            inputs.map((i) => i.name).join(", ")
          }`
        })
      }
      const depends = yield* sql<{ name: string; prior_job: string; state: string | null }>`
        SELECT d.name, d.prior_job,
          CASE WHEN p.id IS NULL THEN NULL WHEN p.failed = 1 THEN 'failed' WHEN p.complete = 1 THEN 'completed'
               WHEN p.worker IS NOT NULL THEN 'running' WHEN p.waiting = 1 THEN 'waiting' ELSE 'queued' END AS state
        FROM job_depend d LEFT JOIN job p ON p.id = d.prior_job
        WHERE d.job = ${job.id} AND d.satisfied = 0 ORDER BY d.name`
      for (const d of depends) {
        reasons.push({
          code: "waiting_dependencies",
          message: `waiting for job ${d.prior_job} (dependency ${JSON.stringify(d.name)}) to finish; it is ${d.state ?? "gone"}`
        })
      }
      return { ...base, reasons } satisfies JobWhy
    }

    // Queued.
    const now = yield* Clock.currentTimeMillis
    const [pos] = yield* sql<{ n: number }>`
      SELECT count(*) AS n FROM job
      WHERE complete = 0 AND waiting = 0 AND worker IS NULL AND cancelled = 0
        AND target_id = ${job.target_id} AND id <= ${job.id}`
    const position = Number(pos?.n ?? 1)
    const workers = yield* sql<{ id: string; online: number; factory: string; time_create: string }>`
      SELECT w.id, w.token_hash IS NOT NULL AS online, coalesce(f.name, w.factory) AS factory, w.time_create
      FROM worker w LEFT JOIN factory f ON f.id = w.factory
      WHERE w.target = ${job.target_id} AND w.deleted = 0 AND w.recycle = 0 AND w.hold_time IS NULL
        AND NOT EXISTS (SELECT 1 FROM job j WHERE j.worker = w.id)
      ORDER BY w.id`
    const free = workers.filter((w) => w.online)
    const booting = workers.filter((w) => !w.online)
    const lease = yield* factories.leaseOf(job.id)
    const factoryRows = yield* sql<{ id: string; name: string; enable: number; hold_workers: number }>`
      SELECT id, name, enable, hold_workers FROM factory`
    const nameOf = new Map(factoryRows.map((f) => [f.id, f.name]))
    const out = (reasons: Array<JobWaitReason>) => ({ ...base, position, reasons }) satisfies JobWhy
    const bootingReason = (): JobWaitReason => {
      const b = booting[0]
      const leased = Option.isSome(lease)
        ? `; factory ${nameOf.get(lease.value.factory) ?? lease.value.factory} holds a lease on it`
        : ""
      return {
        code: "booting",
        message: b === undefined
          ? `a worker is being made for it${leased}`
          : `${booting.length} worker${booting.length === 1 ? " is" : "s are"} booting for target ${target} (${b.id} of factory ${b.factory}, made ${
            ago(Math.max(0, Date.now() - Date.parse(b.time_create)))
          } ago)${leased}; the job takes the first that is up`
      }
    }

    if (position <= free.length) {
      return out([{
        code: "ready",
        message: `worker ${free[position - 1]!.id} (factory ${free[position - 1]!.factory}) is free; the scheduler assigns the job within a second`
      }])
    }
    // A lease whose worker is not made yet, or is booting, is a worker on its way.
    const coming = Option.isSome(lease) &&
      (lease.value.worker === undefined || booting.some((b) => b.id === lease.value.worker))
    if (position <= free.length + booting.length || coming) return out([bootingReason()])

    const reasons: Array<JobWaitReason> = []
    if (yield* control.held) {
      reasons.push({
        code: "hold",
        message: "new worker creation is on hold (admin.hold, or POST /0/control/hold); resume with: buildomat admin control resume"
      })
    }
    const reports = (yield* factories.reportsNow).filter((r) => [...r.targetIds.values()].includes(job.target_id))
    const fresh = reports.filter((r) => now - r.time <= REPORT_FRESH_MS)
    const rowOf = new Map(factoryRows.map((f) => [f.id, f]))
    if (fresh.length === 0) {
      const stale = reports.map((r) => `${nameOf.get(r.factory) ?? r.factory} (last report ${ago(now - r.time)} ago)`)
      reasons.push({
        code: "no_provider",
        message: stale.length > 0
          ? `no running factory serves target ${target}: ${stale.join(", ")}; is it running?`
          : `no provider or factory serves target ${target}`
      })
    } else {
      const enabled = fresh.filter((r) => rowOf.get(r.factory)?.enable === 1)
      if (enabled.length === 0) {
        reasons.push({
          code: "factory_disabled",
          message: `every factory serving target ${target} is disabled: ${
            fresh.map((r) => nameOf.get(r.factory) ?? r.factory).join(", ")
          }; enable one with: buildomat admin factory enable FACTORY`
        })
      } else {
        if (enabled.every((r) => rowOf.get(r.factory)?.hold_workers === 1)) {
          const [held] = yield* sql<{ n: number }>`
            SELECT count(*) AS n FROM worker WHERE target = ${job.target_id} AND deleted = 0 AND hold_time IS NOT NULL`
          reasons.push({
            code: "factory_hold_workers",
            message: `the workers made for target ${target} start held (hold_workers on ${
              enabled.map((r) => nameOf.get(r.factory) ?? r.factory).join(", ")
            }; ${Number(held?.n ?? 0)} held now); release them with: buildomat admin worker release WORKER`
          })
        }
        const full = enabled.map((r) => {
          const tr = r.report.targets.find((x) => r.targetIds.get(x.name) === job.target_id)
          const name = nameOf.get(r.factory) ?? r.factory
          if (r.report.workers >= r.report.limit) return `${name} has ${r.report.workers} of ${r.report.limit} workers`
          if (tr !== undefined && tr.workers >= tr.limit) {
            return `${name} has ${tr.workers} of ${tr.limit} workers for target ${target}`
          }
          return undefined
        })
        if (full.every((x) => x !== undefined)) {
          reasons.push({
            code: "limit",
            message: `the limit is reached: ${full.join("; ")}; the job waits for a worker to finish`
          })
        }
      }
    }
    if (booting.length > 0) reasons.push(bootingReason())
    if (reasons.length === 0) {
      reasons.push({
        code: "queued",
        message: position > 1
          ? `${position - 1} older job${position === 2 ? "" : "s"} of target ${target} go first`
          : `a worker will be made for it on the next pass of the factory serving target ${target}`
      })
    }
    return out(reasons)
  })
