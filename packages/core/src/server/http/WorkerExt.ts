/**
 * Handlers of the agent routes we add under `/ext/` (issue 4): the long-poll ping, numbered
 * idempotent event batches, and in-order output uploads with size and SHA-256 checked.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { BuildomatApi, CurrentWorker, MAX_REQUEST_BODY } from "../../Api.js"
import { PayloadTooLarge } from "../../Errors.js"
import { JobStore } from "../JobStore.js"
import { Uploads } from "../Uploads.js"
import { streamBody } from "./Body.js"
import { WorkerStore } from "../WorkerStore.js"

/** How long `GET /ext/0/worker/ping` holds a request by default, in milliseconds. */
const DEFAULT_WAIT_MS = 30_000

/**
 * The `/ext/` agent routes. Job routes require the job to be assigned to the calling worker
 * (403 otherwise), as buildomat's.
 *
 * @since 0.1.0
 * @category handlers
 */
export const WorkerExtLive = HttpApiBuilder.group(BuildomatApi, "workerExt", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const workers = yield* WorkerStore
    const uploads = yield* Uploads
    const ownJob = (job: string) => Effect.flatMap(CurrentWorker, (w) => jobs.forWorker(job, w.id))
    return handlers
      .handle("ping", ({ urlParams }) =>
        Effect.flatMap(CurrentWorker, (w) =>
          workers.pingWait(w.id, urlParams.job?.toUpperCase() ?? null, urlParams.wait_ms ?? DEFAULT_WAIT_MS)))
      .handle("append", ({ path, payload }) => ownJob(path.job).pipe(Effect.flatMap((j) => jobs.appendBatch(j, payload))))
      .handleRaw("uploadPart", ({ path, request, urlParams }) =>
        Effect.gen(function*() {
          const j = yield* ownJob(path.job)
          const declared = Number(request.headers["content-length"] ?? "0")
          if (declared > MAX_REQUEST_BODY) {
            return yield* Effect.fail(new PayloadTooLarge({ message: `a part is at most ${MAX_REQUEST_BODY} bytes` }))
          }
          // Streamed to disk as it arrives; a part cut short by a dropped connection counts for
          // nothing, and the agent sends it again.
          const r = yield* uploads.putPart(
            j,
            path.commit,
            urlParams.offset,
            urlParams.size,
            (sink) => streamBody(request, MAX_REQUEST_BODY, sink)
          )
          return HttpServerResponse.unsafeJson(r)
        }))
      .handle("uploadCommit", ({ path, payload }) =>
        ownJob(path.job).pipe(Effect.flatMap((j) => uploads.commitUpload(j, path.commit, payload))))
  }))
