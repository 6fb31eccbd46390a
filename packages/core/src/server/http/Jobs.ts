/**
 * Handlers of the user routes: submit, view, list, events, the SSE watch, outputs, downloads, cancel.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Chunk, Deferred, Effect, Option, Stream } from "effect"
import { BuildomatApi, CurrentUser } from "../../Api.js"
import { ServerConfig } from "../Config.js"
import { EventHub } from "../EventHub.js"
import { JobArchive } from "../JobArchive.js"
import { JobStore, stateOf } from "../JobStore.js"
import { ObjectStore } from "../ObjectStore.js"
import { Signals } from "../Signals.js"
import { fileKey } from "../Uploads.js"
import { why } from "../Why.js"
import { serveFile } from "./Files.js"

const encoder = new TextEncoder()

/**
 * User routes.
 *
 * @since 0.1.0
 * @category handlers
 */
export const JobsLive = HttpApiBuilder.group(BuildomatApi, "jobs", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const hub = yield* EventHub
    const signals = yield* Signals
    const store = yield* ObjectStore
    const config = yield* ServerConfig
    // Reads of a job go through the archive once it is archived (buildomat §5.4).
    const reads = yield* JobArchive
    const forUser = (job: string) => Effect.flatMap(CurrentUser, (u) => jobs.forUser(job, u))

    return handlers
      .handle("whoami", () => Effect.map(CurrentUser, (u) => ({ id: u.id, name: u.name })))
      .handle("quota", () => Effect.succeed({ max_bytes_per_input: config.maxBytesPerFile }))
      .handle("submit", ({ payload }) => Effect.flatMap(CurrentUser, (u) => jobs.submit(u, payload)))
      .handle("get", ({ path }) => forUser(path.job).pipe(Effect.flatMap(reads.view)))
      .handle("list", ({ urlParams }) => Effect.flatMap(CurrentUser, (u) => jobs.list(u.id, urlParams)))
      .handle("events", ({ path, urlParams }) =>
        forUser(path.job).pipe(Effect.flatMap((j) => reads.events(j, urlParams.minseq ?? 0))))
      .handle("outputs", ({ path }) =>
        forUser(path.job).pipe(Effect.flatMap(reads.outputs), Effect.map((o) => o.outputs)))
      .handle("outputDigests", ({ path }) =>
        forUser(path.job).pipe(Effect.flatMap(reads.outputs), Effect.map((o) => o.digests)))
      .handle("cancel", ({ path }) => forUser(path.job).pipe(Effect.flatMap(jobs.cancel)))
      .handle("why", ({ path }) => forUser(path.job).pipe(Effect.flatMap((j) => Effect.orDie(why(j)))))
      .handleRaw("download", ({ path, request }) =>
        Effect.gen(function*() {
          const j = yield* forUser(path.job)
          const f = yield* reads.outputFile(j, path.output)
          // GET, and HEAD (unpublished in buildomat) with the same headers and no body.
          return serveFile(store, request, {
            key: fileKey(j.id, f.id),
            size: f.size,
            sha256: f.sha256,
            filename: f.path.split("/").pop() || "output"
          })
        }))
      .handleRaw("watch", ({ path, request, urlParams }) =>
        Effect.gen(function*() {
          const j = yield* forUser(path.job)
          // Where to start: after event `seq`. By default only new events (buildomat); `minseq=N`
          // starts at event N; `Last-Event-ID: seq-N` (an EventSource reconnecting) resumes after N
          // and wins over `minseq`, because the client has already seen up to N.
          let seq: number
          const lastId = /^seq-(\d+)$/.exec(request.headers["last-event-id"] ?? "")
          if (lastId !== null) {
            seq = Number(lastId[1])
          } else if (urlParams.minseq !== undefined) {
            seq = Math.max(0, urlParams.minseq - 1)
          } else {
            seq = yield* jobs.lastSeq(j.id)
          }
          let lastState: string | undefined
          let finished = false
          const step = Effect.gen(function*() {
            // The server stopping ends the stream; the client resumes with `Last-Event-ID`.
            if (finished || (yield* Deferred.isDone(signals.stopping))) return yield* Effect.fail(Option.none())
            const sig = yield* hub.signal(j.id)
            const cur = yield* jobs.row(j.id)
            if (Option.isNone(cur)) {
              finished = true
              return Chunk.of(encoder.encode("event: check\ndata: -\n\n"))
            }
            let out = ""
            const state = stateOf(cur.value)
            if (state !== lastState) {
              out += `event: state\nid: seq-${seq}\ndata: ${state}\n\n`
              lastState = state
            }
            const rows = yield* reads.events(cur.value, seq + 1, 1000)
            for (const e of rows) {
              out += `event: job\nid: seq-${e.seq}\ndata: ${JSON.stringify(e)}\n\n`
              seq = e.seq
            }
            if (rows.length === 0) {
              if (cur.value.complete) {
                out += "event: complete\ndata: -\n\n"
                finished = true
              } else {
                if (!(yield* hub.wait(sig, 5_000))) out += ": nothing happens\n\n"
              }
            }
            return Chunk.of(encoder.encode(out))
          })
          return HttpServerResponse.stream(Stream.repeatEffectChunkOption(step), {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
          })
        }))
  }))
