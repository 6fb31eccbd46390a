/**
 * A job's inputs (buildomat §1.7, §2.8): files the user uploads while the job is `waiting`, in
 * chunks, then commits under a name declared at submit; and the files a worker downloads before
 * the first task, including outputs copied from dependencies (stored once, under the job that
 * produced them). Committing the last missing input wakes the scheduler, whose waiters pass then
 * releases the job (`Waiters`).
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option, type Stream } from "effect"
import { BadRequest, Conflict, NotFound } from "../Errors.js"
import { checkInputName, type JobAddInput } from "../JobModel.js"
import { ServerConfig } from "./Config.js"
import { JobStore, type JobRow } from "./JobStore.js"
import { ObjectStore } from "./ObjectStore.js"
import { Signals } from "./Signals.js"
import { fileKey, Uploads } from "./Uploads.js"

/**
 * An input file as the worker downloads it: `job` is the job that holds the file (the
 * dependency's job for a copied output), `id` its file id.
 *
 * @since 0.1.0
 * @category models
 */
export interface InputFile {
  readonly name: string
  readonly job: string
  readonly id: string
  readonly size: number
  readonly sha256: string
}

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* ServerConfig
  const jobs = yield* JobStore
  const uploads = yield* Uploads
  const store = yield* ObjectStore
  const signals = yield* Signals

  const notWaiting = (verb: string) => new Conflict({ message: `cannot ${verb} a job that is not waiting` })

  /**
   * `POST /0/jobs/{job}/chunk`: stores one chunk of at most 10 MiB for a job that is still
   * `waiting` (409 otherwise, as buildomat).
   */
  const putChunk = <E>(job: JobRow, body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function*() {
      const cur = yield* jobs.mustExist(job.id)
      if (!cur.waiting || cur.complete) return yield* Effect.fail(notWaiting("upload chunks for"))
      return yield* uploads.putChunk(job.id, body)
    })

  /**
   * Records a committed input file in one transaction: the job must still be waiting and must
   * have declared the input. An input uploaded again (buildomat allows it while the job waits)
   * replaces the earlier file, which is then removed. Returns a message if refused.
   */
  const recordInput = (job: string, name: string, file: string, size: number, sha256: string) =>
    Effect.gen(function*() {
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [cur] = yield* sql<{ waiting: number; complete: number }>`SELECT waiting, complete FROM job WHERE id = ${job}`
          if (cur === undefined || cur.complete || !cur.waiting) {
            return { error: `job ${job} is no longer waiting for inputs` } as const
          }
          const [input] = yield* sql<{ id: string | null; other_job: string | null }>`
            SELECT id, other_job FROM job_input WHERE job = ${job} AND name = ${name}`
          if (input === undefined || input.other_job !== null) {
            return { error: `job ${job} has no input named ${JSON.stringify(name)}` } as const
          }
          yield* sql`INSERT INTO job_file ${sql.insert({ job, id: file, size, sha256 })}`
          yield* sql`UPDATE job_input SET id = ${file} WHERE job = ${job} AND name = ${name}`
          if (input.id !== null) yield* sql`DELETE FROM job_file WHERE job = ${job} AND id = ${input.id}`
          return { replaced: input.id } as const
        })
      ).pipe(Effect.orDie)
      if ("error" in r) return r.error
      if (r.replaced !== null) yield* store.delete(fileKey(job, r.replaced)).pipe(Effect.ignore)
      yield* signals.scheduler.wake
      return undefined
    })

  /** Checks the parts of a commit request that do not depend on the job's state (400). */
  const checkRequest = (name: string, size: number, commitId: string | undefined, chunks: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const problem = checkInputName("input", name)
      if (problem !== undefined) return yield* Effect.fail(new BadRequest({ message: problem }))
      if (size > config.maxBytesPerFile) {
        return yield* Effect.fail(
          new BadRequest({ message: `input file size ${size} bigger than allowed maximum ${config.maxBytesPerFile} bytes` })
        )
      }
      yield* uploads.checkIds(commitId, chunks)
    })

  /** A new commit is admitted only while the job waits, and only for a declared input. */
  const admit = (job: string, name: string) =>
    Effect.gen(function*() {
      const cur = yield* jobs.mustExist(job)
      if (!cur.waiting || cur.complete) return yield* Effect.fail(notWaiting("add inputs to"))
      const [input] = yield* sql<{ other_job: string | null }>`
        SELECT other_job FROM job_input WHERE job = ${job} AND name = ${name}`.pipe(Effect.orDie)
      if (input === undefined || input.other_job !== null) {
        return yield* Effect.fail(
          new BadRequest({ message: `job ${job} has no input named ${JSON.stringify(name)}; inputs are declared at submit` })
        )
      }
    })

  /**
   * `POST /1/jobs/{job}/input`: starts or polls the commit `commit_id` of an input. A new commit
   * needs the job to be waiting (409) and the name to be declared (400); a reused `commit_id`
   * with other arguments is a 400. Answers within `waitMs` with `complete: false` if the commit is
   * still running.
   */
  const addInput = (job: JobRow, add: JobAddInput, waitMs = 2000) =>
    Effect.gen(function*() {
      yield* checkRequest(add.name, add.size, add.commit_id, add.chunks)
      return yield* uploads.track(
        job.id,
        add.commit_id,
        JSON.stringify(["input", add.name, add.size, add.chunks]),
        admit(job.id, add.name),
        uploads.runCommit(job.id, add.chunks, add.size, (file, sha256) => recordInput(job.id, add.name, file, add.size, sha256)),
        waitMs
      )
    })

  /**
   * The legacy synchronous `POST /0/jobs/{job}/input`: the same checks, then waits for the file
   * to be stored; a failed commit is a 400 with its message.
   */
  const addInputSync = (job: JobRow, add: { readonly name: string; readonly size: number; readonly chunks: ReadonlyArray<string> }) =>
    Effect.gen(function*() {
      yield* checkRequest(add.name, add.size, undefined, add.chunks)
      yield* admit(job.id, add.name)
      const error = yield* uploads.runCommit(
        job.id,
        add.chunks,
        add.size,
        (file, sha256) => recordInput(job.id, add.name, file, add.size, sha256)
      )
      if (error !== null) return yield* Effect.fail(new BadRequest({ message: error }))
    })

  /**
   * The input of `job` whose file id is `file` (`GET /0/worker/job/{job}/inputs/{input}`); a
   * copied output resolves to the job that holds it. NotFound if the job has no such input.
   */
  const inputFile = (job: string, file: string) =>
    sql<InputFile>`
      SELECT i.name AS name, f.job AS job, f.id AS id, f.size AS size, f.sha256 AS sha256
      FROM job_input i JOIN job_file f ON f.id = i.id AND f.job = coalesce(i.other_job, i.job)
      WHERE i.job = ${job} AND i.id = ${file} LIMIT 1`.pipe(
      Effect.orDie,
      Effect.flatMap((r) =>
        Option.match(Option.fromNullable(r[0]), {
          onNone: () => Effect.fail(new NotFound({ message: `job ${job} has no input file ${file}` })),
          onSome: Effect.succeed
        })
      )
    )

  return { putChunk, addInput, addInputSync, inputFile, recordInput } as const
})

/**
 * The inputs service.
 *
 * @since 0.1.0
 * @category context
 */
export class Inputs extends Context.Tag("@buildomat/core/server/Inputs")<
  Inputs,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient`, `ServerConfig`, `JobStore`, `Uploads`, `ObjectStore` and `Signals`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(Inputs, make)
