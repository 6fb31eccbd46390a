/**
 * Error mapping for what happens before a handler runs: unreadable and oversized bodies.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Cause, Effect, Option } from "effect"
import * as NodeHttp from "node:http"
import { MAX_REQUEST_BODY } from "../../Api.js"
import * as Ids from "../../Ids.js"

const tooLarge = () =>
  HttpServerResponse.unsafeJson(
    { _tag: "PayloadTooLarge", message: `the request body is larger than ${MAX_REQUEST_BODY} bytes`, request_id: Ids.make() },
    { status: 413 }
  )

/**
 * Keeps the connection of a request whose body reading was abandoned, so that the error response
 * (a 413) reaches the client. Effect's Node body readers `destroy()` the `IncomingMessage` when they
 * give up (`maxBytes exceeded`, or a handler that stops reading a streamed body), which resets the
 * socket before any response is written: a chunked body over 10 MiB then got no answer at all.
 * Here, destroying an unfinished request without an error instead drops the readers' listeners and
 * discards the rest of the body as it arrives, and Node writes the response as usual.
 */
const keepConnection = (req: HttpServerRequest.HttpServerRequest) => {
  let incoming: unknown
  try {
    incoming = NodeHttpServerRequest.toIncomingMessage(req)
  } catch {
    return
  }
  if (!(incoming instanceof NodeHttp.IncomingMessage)) return
  const msg = incoming
  const destroy = msg.destroy
  msg.destroy = function(this: NodeHttp.IncomingMessage, error?: Error) {
    if (error === undefined && !this.complete && !this.socket?.destroyed) {
      this.removeAllListeners("data")
      this.resume()
      return this
    }
    return destroy.call(this, error)
  }
}

/** Refuses a declared body over the limit at once, and caps what is read of any other. */
const limitBody = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (req) => {
    const declared = Number(req.headers["content-length"] ?? "0")
    if (declared > MAX_REQUEST_BODY) return Effect.succeed(tooLarge())
    if (req.headers["content-length"] === undefined) keepConnection(req)
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
