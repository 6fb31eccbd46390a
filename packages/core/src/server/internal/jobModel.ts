/**
 * Submit-time rules for a job's inputs and dependencies (buildomat §1.7, §7), and the rows that
 * record them. Used by `JobStore.submit`, inside its transaction.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Either } from "effect"
import * as Ids from "../../Ids.js"
import { checkInputName, MAX_DEPENDS, MAX_INPUTS } from "../../JobModel.js"
import type { JobSubmit } from "../../Jobs.js"

/** A dependency as validated: the prior job id normalised to upper case. */
export interface Depend {
  readonly name: string
  readonly prior_job: string
  readonly copy_outputs: boolean
  readonly on_failed: boolean
  readonly on_completed: boolean
}

/** The inputs and dependencies of a submission, checked. */
export interface JobModelSubmit {
  readonly inputs: ReadonlyArray<string>
  readonly depends: ReadonlyArray<Depend>
}

/**
 * Checks the inputs and dependencies of a submission without touching the database: at most 25
 * inputs and 8 dependencies, names that cannot leave `/input` (`checkInputName`), no input listed
 * twice, at least one of `on_completed`/`on_failed` per dependency, prior job ids that are ULIDs,
 * and no dependency copying outputs into a directory named like an input file (both would be
 * `/input/<name>`).
 */
export const validate = (body: JobSubmit): Either.Either<JobModelSubmit, string> => {
  const inputs = body.inputs ?? []
  if (inputs.length > MAX_INPUTS) return Either.left(`a job has at most ${MAX_INPUTS} inputs, got ${inputs.length}`)
  const seen = new Set<string>()
  for (const name of inputs) {
    const problem = checkInputName("input", name)
    if (problem !== undefined) return Either.left(problem)
    if (seen.has(name)) return Either.left(`input ${JSON.stringify(name)} is listed twice`)
    seen.add(name)
  }
  const entries = Object.entries(body.depends ?? {})
  if (entries.length > MAX_DEPENDS) {
    return Either.left(`a job has at most ${MAX_DEPENDS} dependencies, got ${entries.length}`)
  }
  const depends: Array<Depend> = []
  for (const [name, d] of entries) {
    const problem = checkInputName("dependency", name)
    if (problem !== undefined) return Either.left(problem)
    if (!d.on_completed && !d.on_failed) {
      return Either.left(`dependency ${JSON.stringify(name)} must set at least one of on_completed and on_failed`)
    }
    if (!Ids.isUlid(d.prior_job)) {
      return Either.left(`dependency ${JSON.stringify(name)}: prior_job ${JSON.stringify(d.prior_job)} is not a job id (a ULID)`)
    }
    if (d.copy_outputs && seen.has(name)) {
      return Either.left(
        `dependency ${JSON.stringify(name)} copies outputs to /input/${name}/, where input ${JSON.stringify(name)} would be`
      )
    }
    depends.push({
      name,
      prior_job: d.prior_job.toUpperCase(),
      copy_outputs: d.copy_outputs,
      on_failed: d.on_failed,
      on_completed: d.on_completed
    })
  }
  return Either.right({ inputs, depends })
}

/**
 * The first dependency whose prior job does not exist or belongs to someone else, if any.
 * buildomat answers both cases with "prior job does not exist", so as not to leak other users'
 * job ids.
 */
export const missingPrior = (sql: SqlClient.SqlClient, owner: string, depends: ReadonlyArray<Depend>) =>
  Effect.gen(function*() {
    for (const d of depends) {
      const rows = yield* sql`SELECT 1 FROM job WHERE id = ${d.prior_job} AND owner = ${owner}`
      if (rows.length === 0) return d
    }
    return undefined
  })

/** Inserts the input and dependency rows of a new job (inside the caller's transaction). */
export const insert = (sql: SqlClient.SqlClient, job: string, model: JobModelSubmit) =>
  Effect.gen(function*() {
    if (model.inputs.length > 0) {
      yield* sql`INSERT INTO job_input ${sql.insert(model.inputs.map((name) => ({ job, name, id: null, other_job: null })))}`
    }
    if (model.depends.length > 0) {
      yield* sql`INSERT INTO job_depend ${
        sql.insert(model.depends.map((d) => ({
          job,
          name: d.name,
          prior_job: d.prior_job,
          copy_outputs: d.copy_outputs ? 1 : 0,
          on_failed: d.on_failed ? 1 : 0,
          on_completed: d.on_completed ? 1 : 0,
          satisfied: 0
        })))
      }`
    }
  })

/**
 * A duration as buildomat renders it (`common::DurationExt::render`): `"5 s"`, `"2 m 5 s"`,
 * `"1 h 0 m 5 s"`.
 */
export const renderDuration = (ms: number): string => {
  let secs = Math.max(0, Math.floor(ms / 1000))
  const hours = Math.floor(secs / 3600)
  let out = ""
  if (hours > 0) {
    secs -= hours * 3600
    out += ` ${hours} h`
  }
  const minutes = Math.floor(secs / 60)
  if (minutes > 0 || hours > 0) {
    secs -= minutes * 60
    out += ` ${minutes} m`
  }
  out += ` ${secs} s`
  return out.trim()
}
