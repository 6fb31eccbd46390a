/**
 * Running one job (buildomat §3.3–3.6): its tasks in order until one fails, then its outputs,
 * then completion. Every event goes through one ordered queue, flushed before each task
 * completion and before the job completion so that the server has a task's whole log when it
 * learns the task is done.
 *
 * @internal
 */
import type { Client, Ids, Workers } from "@buildomat/core"
import { Effect } from "effect"
import * as EventQueue from "./events.js"
import { downloadInputs } from "./inputs.js"
import { describe, retrying } from "./retry.js"
import * as Rules from "./rules.js"
import * as Task from "./task.js"
import { uploadFile } from "./upload.js"

/** What a job needs from the agent. */
export interface JobContext {
  readonly api: Client.ApiClient
  /** The real directory the job's `/` maps to (absolute, normalised). */
  readonly root: string
  readonly identity?: Task.Identity | undefined
}

/** Runs the job and reports its completion. Never fails: problems end up as events. */
export const runJob = (
  job: Workers.WorkerPingJob,
  jobId: Ids.JobId,
  ctx: JobContext
): Effect.Effect<{ readonly failed: boolean }> =>
  Effect.scoped(Effect.gen(function*() {
    const { api, root } = ctx
    const events = yield* EventQueue.make((batch) =>
      retrying("event append", api.worker.append({ path: { job: jobId }, payload: batch })).pipe(
        // The server refused the batch for good (say, the job was cancelled and completed):
        // resending it forever would stall the job, so drop it and carry on.
        Effect.catchAll((e) => Effect.logError(`dropping ${batch.length} events the server refused: ${describe(e)}`))
      )
    )
    const { emit } = events
    // Reported back to the server, but never allowed to stop the agent.
    const report = <E>(what: string, call: Effect.Effect<void, E>) =>
      retrying(what, call).pipe(
        Effect.catchAll((e) => Effect.logError(`${what} refused by the server: ${describe(e)}`))
      )

    let failed = false

    // Inputs (buildomat §3.7): downloaded to `<root>/input/<name>` before the first task; a job
    // whose inputs cannot all be fetched does not run its tasks.
    failed = yield* downloadInputs(api, jobId, job.inputs, root, emit)

    if (!failed) {
      for (const task of job.tasks) {
        const result = yield* Task.runTask(task, { jobId, root, emit, identity: ctx.identity })
        yield* events.flush
        if (result._tag !== "SpawnFailed") {
          yield* report(
            "task complete",
            api.worker.taskComplete({ path: { job: jobId, task: task.id }, payload: { failed: Task.failed(result) } })
          )
        }
        if (Task.failed(result)) {
          failed = true
          break
        }
      }
    }

    // Outputs are uploaded even after a failed task: they are often what explains the failure.
    const found = yield* Rules.scan(job.output_rules, root)
    for (const error of found.errors) yield* emit("worker", `upload error: ${error}`)
    if (found.errors.length > 0) failed = true
    yield* emit("worker", `found ${found.files.length} output files`)
    const used = new Set<number>()
    for (const file of found.files) {
      const result = yield* uploadFile(api, jobId, file, emit)
      if (result === "Failed") failed = true
      if (result === "Uploaded") file.required.forEach((i) => used.add(i))
    }
    for (const error of Rules.unusedRequired(job.output_rules, used)) {
      yield* emit("worker", `upload error: ${error}`)
      failed = true
    }

    yield* events.flush
    yield* report("job complete", api.worker.jobComplete({ path: { job: jobId }, payload: { failed } }))
    return { failed }
  }))
