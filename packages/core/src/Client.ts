/**
 * The typed client, derived from `BuildomatApi`, plus the raw calls a derived client cannot do
 * well: following a job's SSE watch stream, and streaming a download with byte ranges.
 *
 * @since 0.1.0
 */
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as Sse from "@effect/experimental/Sse"
import { Effect, FiberRef, Option, Schema, Stream } from "effect"
import { BuildomatApi } from "./Api.js"
import type { JobId } from "./Ids.js"
import { JobEvent } from "./Jobs.js"

/**
 * Where the server is and how to authenticate. `token` is a user, admin or worker bearer token;
 * `headers` are added to every request (for example `X-Buildomat-Delegate`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  readonly url: string
  readonly token?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/**
 * A watch stream message, as `GET /0/jobs/{job}/watch` sends them: `state` (the job's state
 * changed; `state` holds it), `job` (an event), `complete` (the job is done and every event has
 * been sent), `check` (the server has nothing to follow; poll `GET /0/job/{job}`).
 *
 * @since 0.1.0
 * @category models
 */
export type WatchMessage =
  | { readonly _tag: "state"; readonly state: string }
  | { readonly _tag: "event"; readonly event: JobEvent }
  | { readonly _tag: "complete" }
  | { readonly _tag: "check" }

const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(JobEvent))

/** The token and headers of the `make` whose derived client is being called. */
const currentAuth = FiberRef.unsafeMake<Pick<ClientOptions, "token" | "headers">>({})

const authorize = (req: HttpClientRequest.HttpClientRequest, auth: Pick<ClientOptions, "token" | "headers">) => {
  let r = req
  if (auth.token !== undefined) r = HttpClientRequest.bearerToken(r, auth.token)
  if (auth.headers !== undefined) r = HttpClientRequest.setHeaders(r, auth.headers)
  return r
}

/**
 * Derived clients, per underlying `HttpClient` and server URL. Deriving one builds encoders and
 * decoders for every endpoint (tens of milliseconds of CPU); an agent host runs an agent per
 * worker, each with its own token, so the derivation is shared and the token is applied per call.
 */
const derived = new WeakMap<HttpClient.HttpClient, Map<string, Effect.Effect.Success<ReturnType<typeof derive>>>>()

const derive = (base: HttpClient.HttpClient, url: string) =>
  HttpApiClient.make(BuildomatApi, {
    transformClient: () =>
      base.pipe(
        HttpClient.mapRequestEffect((req) =>
          Effect.map(FiberRef.get(currentAuth), (auth) => authorize(HttpClientRequest.prependUrl(req, url), auth))
        )
      )
  })

/** `api` with every endpoint call run with `auth` as the current token and headers. */
const bindAuth = <A extends object>(api: A, auth: Pick<ClientOptions, "token" | "headers">): A => {
  const wrap = (f: (...args: Array<unknown>) => Effect.Effect<unknown, unknown, unknown>) => (...args: Array<unknown>) =>
    Effect.locally(f(...args), currentAuth, auth)
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(api)) {
    if (typeof value === "function") out[key] = wrap(value as never)
    else {
      const group: Record<string, unknown> = {}
      for (const [name, f] of Object.entries(value as object)) group[name] = wrap(f as never)
      out[key] = group
    }
  }
  return out as A
}

/**
 * Makes the client for one server and token. Clients for the same server over the same
 * `HttpClient` share their derived endpoints; each applies its own token and headers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ClientOptions) =>
  Effect.gen(function*() {
    const base = yield* HttpClient.HttpClient
    const url = options.url.replace(/\/+$/, "")
    const http = base.pipe(HttpClient.mapRequest((req) => authorize(HttpClientRequest.prependUrl(req, url), options)))
    let byUrl = derived.get(base)
    if (byUrl === undefined) derived.set(base, (byUrl = new Map()))
    let shared = byUrl.get(url)
    if (shared === undefined) byUrl.set(url, (shared = yield* derive(base, url)))
    const api = bindAuth(shared, { token: options.token, headers: options.headers })

    /**
     * Follows `GET /0/jobs/{job}/watch` from event `minseq` (1 = the beginning), as a stream of
     * messages that ends when the server closes the stream.
     */
    const watch = (
      job: string,
      opts?: { readonly minseq?: number | undefined; readonly lastEventId?: string | undefined }
    ): Stream.Stream<WatchMessage, HttpClientError.HttpClientError> => {
      let req = HttpClientRequest.get(`/0/jobs/${encodeURIComponent(job)}/watch`)
      if (opts?.minseq !== undefined) req = HttpClientRequest.setUrlParam(req, "minseq", String(opts.minseq))
      if (opts?.lastEventId !== undefined) req = HttpClientRequest.setHeader(req, "last-event-id", opts.lastEventId)
      return http.execute(req).pipe(
        Effect.flatMap(HttpClientResponse.filterStatusOk),
        Effect.map((res) =>
          res.stream.pipe(
            Stream.decodeText(),
            Stream.pipeThroughChannel(Sse.makeChannel()),
            Stream.filterMap((e): Option.Option<WatchMessage> => {
              switch (e.event) {
                case "state":
                  return Option.some({ _tag: "state", state: e.data })
                case "job":
                  return Option.some({ _tag: "event", event: decodeEvent(e.data) })
                case "complete":
                  return Option.some({ _tag: "complete" })
                case "check":
                  return Option.some({ _tag: "check" })
                default:
                  return Option.none()
              }
            })
          )
        ),
        Stream.unwrapScoped
      )
    }

    /**
     * Downloads an output: the response (status 200, or 206 for a range) with its body as a
     * stream. `range` is `[start, end]`, inclusive, in bytes.
     */
    const download = (
      job: string,
      output: string,
      opts?: { readonly range?: readonly [number, number | undefined] | undefined }
    ) => {
      let req = HttpClientRequest.get(`/0/jobs/${encodeURIComponent(job)}/outputs/${encodeURIComponent(output)}`)
      if (opts?.range !== undefined) {
        req = HttpClientRequest.setHeader(req, "range", `bytes=${opts.range[0]}-${opts.range[1] ?? ""}`)
      }
      return http.execute(req).pipe(Effect.flatMap(HttpClientResponse.filterStatusOk))
    }

    /**
     * Every event of a job from `minseq` (default 1) on, reading `GET /0/jobs/{job}/events`
     * page by page (the server answers at most 1000 per call) until a page comes back empty.
     */
    const allEvents = (job: string, minseq = 1) =>
      Effect.gen(function*() {
        const out: Array<JobEvent> = []
        for (;;) {
          const page = yield* api.jobs.events({
            path: { job: job as JobId },
            urlParams: { minseq: out.length === 0 ? minseq : out[out.length - 1]!.seq + 1 }
          })
          if (page.length === 0) return out
          out.push(...page)
        }
      })

    return { api, http, watch, download, allEvents, url: options.url } as const
  })

/**
 * The derived client: one method per endpoint, grouped as in `BuildomatApi`
 * (`api.jobs.submit({ payload })`, `api.worker.ping()`), failing with the endpoint's declared
 * errors.
 *
 * @since 0.1.0
 * @category models
 */
export type ApiClient = Effect.Effect.Success<ReturnType<typeof make>>["api"]

/**
 * The client `make` returns.
 *
 * @since 0.1.0
 * @category models
 */
export type Client = Effect.Effect.Success<ReturnType<typeof make>>
