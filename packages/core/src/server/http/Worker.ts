/**
 * Handlers of the agent routes, and the unauthenticated bootstrap.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option, Stream } from "effect"
import { BuildomatApi, CurrentWorker } from "../../Api.js"
import { BadRequest, Conflict } from "../../Errors.js"
import { ServerConfig } from "../Config.js"
import { JobStore } from "../JobStore.js"
import { Uploads } from "../Uploads.js"
import { WorkerStore } from "../WorkerStore.js"
import { unauthorized } from "./Auth.js"

/**
 * `POST /0/worker/bootstrap`.
 *
 * @since 0.1.0
 * @category handlers
 */
export const BootstrapLive = HttpApiBuilder.group(BuildomatApi, "bootstrap", (handlers) =>
  Effect.gen(function*() {
    const workers = yield* WorkerStore
    return handlers.handle("bootstrap", ({ payload }) =>
      workers.bootstrap(payload.bootstrap, payload.token).pipe(
        Effect.flatMap(Option.match({ onNone: () => Effect.fail(unauthorized()), onSome: (id) => Effect.succeed({ id }) }))
      ))
  }))

/**
 * Agent routes. Job routes require the job to be assigned to the calling worker (403 otherwise).
 *
 * @since 0.1.0
 * @category handlers
 */
export const WorkerLive = HttpApiBuilder.group(BuildomatApi, "worker", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const workers = yield* WorkerStore
    const uploads = yield* Uploads
    const config = yield* ServerConfig
    const ownJob = (job: string) => Effect.flatMap(CurrentWorker, (w) => jobs.forWorker(job, w.id))
    return handlers
      .handle("ping", () => Effect.flatMap(CurrentWorker, (w) => workers.ping(w.id)))
      .handle("fail", ({ payload }) =>
        Effect.flatMap(CurrentWorker, (w) => workers.fail(w.id, payload.reason ?? "agent reported failure")))
      .handle("append", ({ path, payload }) => ownJob(path.job).pipe(Effect.flatMap((j) => jobs.append(j, payload))))
      .handle("taskComplete", ({ path, payload }) =>
        ownJob(path.job).pipe(Effect.flatMap((j) => jobs.completeTask(j, path.task, payload.failed))))
      .handle("jobComplete", ({ path, payload }) =>
        Effect.gen(function*() {
          const j = yield* ownJob(path.job)
          if (yield* uploads.pending(j.id)) {
            return yield* Effect.fail(new Conflict({ message: "cannot complete job: output commits are still in progress" }))
          }
          yield* jobs.complete(j.id, payload.failed, { fromWorker: true })
          yield* uploads.forget(j.id)
        }))
      .handle("quota", ({ path }) =>
        ownJob(path.job).pipe(Effect.as({ max_bytes_per_output: config.maxBytesPerFile })))
      .handleRaw("chunk", ({ path, request }) =>
        Effect.gen(function*() {
          const j = yield* ownJob(path.job)
          if (j.complete) return yield* Effect.fail(new Conflict({ message: `job ${j.id} is already complete` }))
          const body = request.stream.pipe(
            Stream.mapError((e) => new BadRequest({ message: `reading the request body failed: ${e.message}` }))
          )
          const { id } = yield* uploads.putChunk(j.id, body)
          return HttpServerResponse.unsafeJson({ id }, { status: 201 })
        }))
      .handle("addOutput", ({ path, payload }) => ownJob(path.job).pipe(Effect.flatMap((j) => uploads.addOutput(j, payload))))
  }))
