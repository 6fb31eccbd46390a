/**
 * Handlers of buildomat's worker-level routes: worker events and the post-job diagnostics
 * handshake (buildomat §2.5, §3.9).
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { BuildomatApi, CurrentWorker } from "../../Api.js"
import { WorkerStore } from "../WorkerStore.js"

/**
 * `POST /0/worker/append`, `POST /0/worker/diagnostics/enable`, `POST /0/worker/diagnostics/complete`.
 *
 * @since 0.1.0
 * @category handlers
 */
export const WorkerDiagnosticsLive = HttpApiBuilder.group(BuildomatApi, "workerDiagnostics", (handlers) =>
  Effect.gen(function*() {
    const workers = yield* WorkerStore
    return handlers
      .handle("append", ({ payload }) => Effect.flatMap(CurrentWorker, (w) => workers.appendEvents(w.id, payload)))
      .handle("enable", () => Effect.flatMap(CurrentWorker, (w) => workers.enableDiagnostics(w.id)))
      .handle("complete", ({ payload }) =>
        Effect.flatMap(CurrentWorker, (w) => workers.completeDiagnostics(w.id, payload.hold)))
  }))
