/**
 * Handlers of the job model's routes: inputs (chunks and commits), the job store (user and
 * agent), publishing and signing outputs, public and signed downloads, input downloads by the
 * agent, and buildomat's legacy `GET /0/jobs`.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { SqlClient } from "@effect/sql"
import { Effect, Stream } from "effect"
import { BuildomatApi, CurrentUser, CurrentWorker } from "../../Api.js"
import { BadRequest, Forbidden } from "../../Errors.js"
import { ServerUrl } from "../Config.js"
import { Inputs } from "../Inputs.js"
import { JobStore, type JobRow } from "../JobStore.js"
import { JobArchive } from "../JobArchive.js"
import { JobValues } from "../JobValues.js"
import { ObjectStore } from "../ObjectStore.js"
import { Publishing } from "../Publishing.js"
import { fileKey } from "../Uploads.js"
import { serveFile } from "./Files.js"

const forUser = (job: string) =>
  Effect.flatMap(JobStore, (jobs) => Effect.flatMap(CurrentUser, (u) => jobs.forUser(job, u)))

const bodyOf = (request: { readonly stream: Stream.Stream<Uint8Array, { readonly message: string }> }) =>
  request.stream.pipe(Stream.mapError((e) => new BadRequest({ message: `reading the request body failed: ${e.message}` })))

/**
 * `POST /0/jobs/{job}/chunk`, `POST /1/jobs/{job}/input`, and the legacy `POST /0/jobs/{job}/input`.
 *
 * @since 0.1.0
 * @category handlers
 */
export const JobInputsLive = HttpApiBuilder.group(BuildomatApi, "jobInputs", (handlers) =>
  Effect.gen(function*() {
    const inputs = yield* Inputs
    const jobs = yield* JobStore
    const user = (job: string) => forUser(job).pipe(Effect.provideService(JobStore, jobs))
    return handlers
      .handleRaw("chunk", ({ path, request }) =>
        Effect.gen(function*() {
          const j = yield* user(path.job)
          const { id } = yield* inputs.putChunk(j, bodyOf(request))
          return HttpServerResponse.unsafeJson({ id }, { status: 201 })
        }))
      .handle("addInput", ({ path, payload }) => user(path.job).pipe(Effect.flatMap((j) => inputs.addInput(j, payload))))
      .handle("addInputSync", ({ path, payload }) =>
        user(path.job).pipe(Effect.flatMap((j) => inputs.addInputSync(j, payload))))
  }))

/**
 * `GET /0/jobs/{job}/store` and `PUT /0/jobs/{job}/store/{name}` (source `user`).
 *
 * @since 0.1.0
 * @category handlers
 */
export const JobStoreLive = HttpApiBuilder.group(BuildomatApi, "jobStore", (handlers) =>
  Effect.gen(function*() {
    const values = yield* JobValues
    const jobs = yield* JobStore
    const archives = yield* JobArchive
    const user = (job: string) => forUser(job).pipe(Effect.provideService(JobStore, jobs))
    return handlers
      // An archived job's store is read from its archive (buildomat §5.4), where secret values
      // were never written.
      .handle("list", ({ path }) =>
        user(path.job).pipe(
          Effect.flatMap((j) => j.time_archived !== null ? archives.archivedStore(j.id) : values.list(j.id)),
          Effect.catchTag("ArchiveError", (e) => Effect.die(e))
        ))
      .handle("put", ({ path, payload }) =>
        user(path.job).pipe(Effect.flatMap((j) => values.put(j.id, path.name, payload.value, payload.secret, "user"))))
  }))

/**
 * `POST /0/jobs/{job}/outputs/{output}/publish`, `POST /0/jobs/{job}/outputs/{output}/sign`, and
 * the legacy `GET /0/jobs`.
 *
 * @since 0.1.0
 * @category handlers
 */
export const JobOutputsLive = HttpApiBuilder.group(BuildomatApi, "jobOutputs", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const publishing = yield* Publishing
    const store = yield* ObjectStore
    const sql = yield* SqlClient.SqlClient
    const user = (job: string) => forUser(job).pipe(Effect.provideService(JobStore, jobs))
    return handlers
      .handle("publish", ({ path, payload }) =>
        user(path.job).pipe(Effect.flatMap((j) => publishing.publish(j, path.output, payload))))
      .handle("sign", ({ path, payload, request }) =>
        Effect.gen(function*() {
          const contentType = payload.content_type ?? undefined
          const contentDisposition = payload.content_disposition ?? undefined
          yield* publishing.checkSignRequest(payload.expiry_seconds, contentType, contentDisposition)
          const j = yield* user(path.job)
          const f = yield* jobs.outputFile(j.id, path.output)
          if (store.presign !== undefined) {
            const p = yield* store.presign(fileKey(j.id, f.id), {
              expirySeconds: payload.expiry_seconds,
              contentType,
              contentDisposition
            }).pipe(Effect.orDie)
            return { url: p.url, available: p.available, size: f.size }
          }
          const base = yield* Effect.serviceOption(ServerUrl).pipe(
            Effect.map((u) => u._tag === "Some" ? u.value : `http://${request.headers["host"] ?? "localhost"}`)
          )
          const rel = publishing.signedPath(j.id, f.id, payload.expiry_seconds, contentType, contentDisposition)
          return { url: `${base}${rel}`, available: true, size: f.size }
        }))
      .handle("legacyList", () =>
        Effect.gen(function*() {
          const u = yield* CurrentUser
          const rows = yield* sql<JobRow>`SELECT * FROM job WHERE owner = ${u.id} ORDER BY id LIMIT 100000`.pipe(Effect.orDie)
          return yield* Effect.forEach(rows, jobs.view)
        }))
  }))

/**
 * Unauthenticated downloads: published files and server-signed URLs (GET and HEAD, byte ranges).
 *
 * @since 0.1.0
 * @category handlers
 */
export const PublicLive = HttpApiBuilder.group(BuildomatApi, "public", (handlers) =>
  Effect.gen(function*() {
    const publishing = yield* Publishing
    const jobs = yield* JobStore
    const store = yield* ObjectStore
    const publicFile = (
      p: { readonly username: string; readonly series: string; readonly version: string; readonly name: string },
      request: Parameters<typeof serveFile>[1]
    ) =>
      publishing.publicFile(p.username, p.series, p.version, p.name).pipe(
        Effect.map((f) =>
          serveFile(store, request, { key: fileKey(f.job, f.id), size: f.size, sha256: f.sha256, filename: p.name })
        )
      )
    return handlers
      .handleRaw("file", ({ path, request }) => publicFile(path, request))
      .handleRaw("fileHead", ({ path, request }) => publicFile(path, request))
      .handleRaw("signedDownload", ({ path, request, urlParams }) =>
        Effect.gen(function*() {
          const problem = publishing.verify(path.job, path.output, urlParams)
          if (problem !== undefined) return yield* Effect.fail(new Forbidden({ message: problem }))
          const f = yield* jobs.outputFile(path.job, path.output)
          return serveFile(store, request, {
            key: fileKey(path.job, f.id),
            size: f.size,
            sha256: f.sha256,
            contentType: urlParams.content_type,
            contentDisposition: urlParams.content_disposition,
            filename: f.path.split("/").pop() || "output"
          })
        }))
  }))

/**
 * Agent routes of inputs and the store; the job must be assigned to the calling worker (403),
 * and store writes are refused once it is complete (409).
 *
 * @since 0.1.0
 * @category handlers
 */
export const WorkerJobLive = HttpApiBuilder.group(BuildomatApi, "workerJob", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const inputs = yield* Inputs
    const values = yield* JobValues
    const store = yield* ObjectStore
    const ownJob = (job: string) => Effect.flatMap(CurrentWorker, (w) => jobs.forWorker(job, w.id))
    return handlers
      .handleRaw("input", ({ path, request }) =>
        Effect.gen(function*() {
          const j = yield* ownJob(path.job)
          const f = yield* inputs.inputFile(j.id, path.input)
          return serveFile(store, request, { key: fileKey(f.job, f.id), size: f.size, sha256: f.sha256 })
        }))
      .handle("storeGet", ({ path }) => ownJob(path.job).pipe(Effect.flatMap((j) => values.get(j.id, path.name))))
      .handle("storePut", ({ path, payload }) =>
        ownJob(path.job).pipe(Effect.flatMap((j) => values.put(j.id, path.name, payload.value, payload.secret, "worker"))))
  }))
