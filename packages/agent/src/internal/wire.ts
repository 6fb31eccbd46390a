/**
 * Raw calls on the agent's hot paths (event batches, upload parts, input downloads), which skip
 * the typed client's per-field Schema encoding: the body is built once and resent as is.
 *
 * @internal
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Data, Effect } from "effect"

/** The server answered with a status outside 2xx; `tag` is the error's `_tag` if it sent one. */
export class StatusError extends Data.TaggedError("StatusError")<{
  readonly status: number
  readonly message: string
  readonly tag: string | undefined
}> {}

/** Executes `req` and reads the whole answer as text; a status outside 2xx is a `StatusError`. */
export const text = (
  http: HttpClient.HttpClient,
  req: HttpClientRequest.HttpClientRequest
): Effect.Effect<string, StatusError | HttpClientError.HttpClientError> =>
  http.execute(req).pipe(
    Effect.flatMap((res) =>
      res.text.pipe(
        Effect.flatMap((body) => {
          if (res.status >= 200 && res.status < 300) return Effect.succeed(body)
          let message = body
          let tag: string | undefined
          try {
            const j = JSON.parse(body) as { message?: unknown; _tag?: unknown }
            if (typeof j.message === "string") message = j.message
            if (typeof j._tag === "string") tag = j._tag
          } catch {
            // not JSON
          }
          return Effect.fail(new StatusError({ status: res.status, message: `${res.status}: ${message}`, tag }))
        })
      )
    )
  )

/** `text`, parsed as JSON. */
export const json = <A>(
  http: HttpClient.HttpClient,
  req: HttpClientRequest.HttpClientRequest
): Effect.Effect<A, StatusError | HttpClientError.HttpClientError> =>
  Effect.map(text(http, req), (body) => JSON.parse(body) as A)
