/**
 * The HTTP handlers of `BuildomatApi`, the authentication middleware, and the error mapping
 * that gives malformed or oversized bodies a clear 4xx instead of a 500.
 *
 * @since 0.1.0
 */
import { FileSystem, HttpApiBuilder, HttpIncomingMessage, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { HttpServerError } from "@effect/platform"
import { Cause, Chunk, Deferred, Effect, Layer, Option, Redacted, Stream } from "effect"
import {
  AdminAuth,
  BuildomatApi,
  MAX_REQUEST_BODY,
  CurrentAdmin,
  CurrentUser,
  CurrentWorker,
  UserAuth,
  WorkerAuth
} from "../Api.js"
import { BadRequest, Conflict, Forbidden, Unauthorized } from "../Errors.js"
import * as Ids from "../Ids.js"
import { ServerConfig } from "./Config.js"
import { EventHub } from "./EventHub.js"
import * as Tokens from "./internal/tokens.js"
import { JobStore, stateOf } from "./JobStore.js"
import { ObjectStore } from "./ObjectStore.js"
import { fileKey, Uploads } from "./Uploads.js"
import { UserStore } from "./UserStore.js"
import { WorkerStore } from "./WorkerStore.js"

const unauthorized = () => new Unauthorized({ message: "not authorised" })

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/**
 * User tokens, looked up by hash.
 *
 * @since 0.1.0
 * @category middleware
 */
export const UserAuthLive = Layer.effect(
  UserAuth,
  Effect.gen(function*() {
    const users = yield* UserStore
    return {
      bearer: (token) =>
        users.byToken(Redacted.value(token).trim()).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (u) => Effect.succeed({ id: u.id, name: u.name, privileges: u.privileges })
          }))
        )
    }
  })
)

/**
 * The configured admin token (compared in constant time), or a user token.
 *
 * @since 0.1.0
 * @category middleware
 */
export const AdminAuthLive = Layer.effect(
  AdminAuth,
  Effect.gen(function*() {
    const users = yield* UserStore
    const config = yield* ServerConfig
    const adminHash = Tokens.hash(config.adminToken)
    return {
      bearer: (token) => {
        const t = Redacted.value(token).trim()
        if (t.length >= 3 && Tokens.hashesEqual(Tokens.hash(t), adminHash)) {
          return Effect.succeed({ _tag: "Root" } as const)
        }
        return users.byToken(t).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (u) => Effect.succeed({ _tag: "User", id: u.id, name: u.name, privileges: u.privileges } as const)
          }))
        )
      }
    }
  })
)

/**
 * Worker tokens bound at bootstrap; a deleted worker's token no longer works.
 *
 * @since 0.1.0
 * @category middleware
 */
export const WorkerAuthLive = Layer.effect(
  WorkerAuth,
  Effect.gen(function*() {
    const workers = yield* WorkerStore
    return {
      bearer: (token) =>
        workers.byToken(Redacted.value(token).trim()).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(unauthorized()),
            onSome: (w) => Effect.succeed({ id: w.id as Ids.WorkerId })
          }))
        )
    }
  })
)

/**
 * Fails with 401 unless the administrator holds `admin.<privilege>` (or is the admin token).
 *
 * @since 0.1.0
 * @category middleware
 */
export const requireAdmin = (privilege: string) =>
  Effect.flatMap(CurrentAdmin, (a) =>
    a._tag === "Root" || a.privileges.includes(`admin.${privilege}`) ? Effect.void : Effect.fail(unauthorized()))

// ---------------------------------------------------------------------------------------------
// Byte ranges (RFC 9110 §14)
// ---------------------------------------------------------------------------------------------

/**
 * Parses a `Range` header against a representation of `size` bytes. buildomat serves a single
 * range; several ranges, or one that is malformed or starts past the end, are unsatisfiable.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseRange = (
  header: string | undefined,
  size: number
): { readonly _tag: "Full" } | { readonly _tag: "Partial"; readonly start: number; readonly end: number } | { readonly _tag: "Unsatisfiable" } => {
  if (header === undefined) return { _tag: "Full" }
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m === null) return { _tag: "Unsatisfiable" }
  const [, a, b] = m
  if (a === "" && b === "") return { _tag: "Unsatisfiable" }
  if (a === "") {
    const n = Number(b)
    if (n === 0 || size === 0) return { _tag: "Unsatisfiable" }
    return { _tag: "Partial", start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(a)
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1)
  if (start >= size || end < start) return { _tag: "Unsatisfiable" }
  return { _tag: "Partial", start, end }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

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
    const store = yield* ObjectStore
    const config = yield* ServerConfig
    const forUser = (job: string) => Effect.flatMap(CurrentUser, (u) => jobs.forUser(job, u))

    return handlers
      .handle("whoami", () => Effect.map(CurrentUser, (u) => ({ id: u.id, name: u.name })))
      .handle("quota", () => Effect.succeed({ max_bytes_per_input: config.maxBytesPerFile }))
      .handle("submit", ({ payload }) => Effect.flatMap(CurrentUser, (u) => jobs.submit(u, payload)))
      .handle("get", ({ path }) => forUser(path.job).pipe(Effect.flatMap(jobs.view)))
      .handle("list", ({ urlParams }) => Effect.flatMap(CurrentUser, (u) => jobs.list(u.id, urlParams)))
      .handle("events", ({ path, urlParams }) =>
        forUser(path.job).pipe(Effect.flatMap((j) => jobs.events(j.id, urlParams.minseq ?? 0))))
      .handle("outputs", ({ path }) =>
        forUser(path.job).pipe(Effect.flatMap((j) => jobs.outputs(j.id)), Effect.map((o) => o.outputs)))
      .handle("outputDigests", ({ path }) =>
        forUser(path.job).pipe(Effect.flatMap((j) => jobs.outputs(j.id)), Effect.map((o) => o.digests)))
      .handle("cancel", ({ path }) => forUser(path.job).pipe(Effect.flatMap(jobs.cancel)))
      .handleRaw("download", ({ path, request }) =>
        Effect.gen(function*() {
          const j = yield* forUser(path.job)
          const f = yield* jobs.outputFile(j.id, path.output)
          const digest = `sha-256=:${Buffer.from(f.sha256, "hex").toString("base64")}:`
          const range = parseRange(request.headers["range"], f.size)
          const common = {
            "accept-ranges": "bytes",
            "repr-digest": digest,
            "content-disposition": `attachment; filename="${(f.path.split("/").pop() ?? "output").replace(/["\\\r\n]/g, "_")}"`
          }
          if (range._tag === "Unsatisfiable") {
            return HttpServerResponse.empty({ status: 416, headers: { ...common, "content-range": `bytes */${f.size}` } })
          }
          if (range._tag === "Full") {
            return HttpServerResponse.stream(store.get(fileKey(j.id, f.id)), {
              contentType: "application/octet-stream",
              contentLength: f.size,
              headers: common
            })
          }
          return HttpServerResponse.stream(store.get(fileKey(j.id, f.id), { start: range.start, end: range.end }), {
            status: 206,
            contentType: "application/octet-stream",
            contentLength: range.end - range.start + 1,
            headers: { ...common, "content-range": `bytes ${range.start}-${range.end}/${f.size}` }
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
            if (finished) return yield* Effect.fail(Option.none())
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
            const rows = yield* jobs.events(j.id, seq + 1, 1000)
            for (const e of rows) {
              out += `event: job\nid: seq-${e.seq}\ndata: ${JSON.stringify(e)}\n\n`
              seq = e.seq
            }
            if (rows.length === 0) {
              if (cur.value.complete) {
                out += "event: complete\ndata: -\n\n"
                finished = true
              } else {
                const woke = yield* Deferred.await(sig).pipe(Effect.timeoutOption("5 seconds"))
                if (Option.isNone(woke)) out += ": nothing happens\n\n"
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

/**
 * Administrative user routes.
 *
 * @since 0.1.0
 * @category handlers
 */
export const UsersLive = HttpApiBuilder.group(BuildomatApi, "users", (handlers) =>
  Effect.gen(function*() {
    const users = yield* UserStore
    return handlers
      .handle("create", ({ payload }) => requireAdmin("user.create").pipe(Effect.zipRight(users.create(payload.name))))
      .handle("list", ({ urlParams }) => requireAdmin("user.read").pipe(Effect.zipRight(users.list(urlParams.name))))
      .handle("get", ({ path }) => requireAdmin("user.read").pipe(Effect.zipRight(users.get(path.user))))
  }))

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
    const ownJob = (job: string) =>
      Effect.gen(function*() {
        const w = yield* CurrentWorker
        const j = yield* jobs.mustExist(job)
        if (j.worker !== w.id) return yield* Effect.fail(new Forbidden({ message: "not your job" }))
        return j
      })
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

// ---------------------------------------------------------------------------------------------
// Error mapping for what happens before a handler runs
// ---------------------------------------------------------------------------------------------

const tooLarge = () =>
  HttpServerResponse.unsafeJson(
    { _tag: "PayloadTooLarge", message: `the request body is larger than ${MAX_REQUEST_BODY} bytes`, request_id: Ids.make() },
    { status: 413 }
  )

/** Refuses a declared body over the limit at once, and caps what is read of any other. */
const limitBody = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (req) => {
    const declared = Number(req.headers["content-length"] ?? "0")
    if (declared > MAX_REQUEST_BODY) return Effect.succeed(tooLarge())
    return Effect.provideService(app, HttpIncomingMessage.MaxBodySize, Option.some(FileSystem.Size(MAX_REQUEST_BODY)))
  })

const requestError = (cause: Cause.Cause<unknown>): Option.Option<HttpServerError.RequestError> => {
  for (const d of [...Cause.defects(cause), ...Cause.failures(cause)]) {
    if (HttpServerError.isServerError(d) && (d as HttpServerError.HttpServerError)._tag === "RequestError") {
      return Option.some(d as HttpServerError.RequestError)
    }
  }
  return Option.none()
}

/**
 * Turns a request body that cannot be read into a JSON error: 413 when it is larger than
 * 10 MiB, 400 with the parser's message when it is not valid JSON. (Without this, Effect's
 * HttpApi answers such bodies with a 500.)
 *
 * @since 0.1.0
 * @category middleware
 */
export const errorMapping = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.catchAllCause(limitBody(app), (cause) =>
    Option.match(requestError(cause), {
      onNone: () => Effect.failCause(cause),
      onSome: (e) => {
        const msg = String((e.cause as Error | undefined)?.message ?? e.description ?? e.message)
        if (msg.includes("maxBytes")) return Effect.succeed(tooLarge())
        return Effect.succeed(
          HttpServerResponse.unsafeJson(
            {
              _tag: "BadRequest",
              message: `the request body could not be read as JSON: ${msg}`,
              request_id: Ids.make()
            },
            { status: 400 }
          )
        )
      }
    }))

