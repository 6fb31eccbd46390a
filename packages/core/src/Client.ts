/**
 * The typed client, derived from `BuildomatApi`, plus the raw calls a derived client cannot do
 * well: following a job's SSE watch stream, and streaming a download with byte ranges.
 *
 * @since 0.1.0
 */
import { HttpApiClient, HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import * as Sse from "@effect/experimental/Sse"
import { Effect, Option, Schema, Stream } from "effect"
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

/**
 * Makes the client for one server and token.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ClientOptions) =>
  Effect.gen(function*() {
    const base = yield* HttpClient.HttpClient
    const http = base.pipe(
      HttpClient.mapRequest((req) => {
        let r = HttpClientRequest.prependUrl(req, options.url.replace(/\/+$/, ""))
        if (options.token !== undefined) r = HttpClientRequest.bearerToken(r, options.token)
        if (options.headers !== undefined) r = HttpClientRequest.setHeaders(r, options.headers)
        return r
      })
    )
    const api = yield* HttpApiClient.make(BuildomatApi, {
      transformClient: () => http
    })

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
