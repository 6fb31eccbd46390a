import { ValidationError } from "@effect/cli"
import * as HttpClientError from "@effect/platform/HttpClientError"
import { Cause, Data, Effect, Option, ParseResult } from "effect"

/** A failure with a message for the user; printed as `ERROR: <message>`, exit status 1. */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}

/** Ends the command with this exit status and nothing more printed (a failed job, for one). */
export class ExitStatus extends Data.TaggedError("ExitStatus")<{ readonly code: number }> {}

/** What buildomat's CLI says when the server does not answer with JSON (nginx's HTML page). */
export const OFFLINE = "invalid response: server may be offline!"

const API_ERRORS = new Set(["BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "PayloadTooLarge"])

const transportDetail = (e: HttpClientError.RequestError): string => {
  const cause = e.cause as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined
  const code = cause?.code ?? cause?.cause?.code
  const msg = typeof code === "string" ? code : typeof cause?.message === "string" ? cause.message : e.reason
  return `${e.request.method} ${e.request.url}: ${msg}`
}

/**
 * The message to print for an error, or undefined for a silent exit. Errors declared by the API
 * carry the server's message; a body that is not what the API promises (an HTML page from a
 * proxy, say) or a refused connection is reported as buildomat does.
 */
export const describe = (error: unknown): Effect.Effect<string> =>
  Effect.gen(function*() {
    if (HttpClientError.isHttpClientError(error)) {
      if (error._tag === "RequestError") return `${OFFLINE} (${transportDetail(error)})`
      // An undeclared status: use the body's `message` when it is buildomat's error shape.
      const body = yield* error.response.json.pipe(Effect.option)
      const message = Option.flatMap(body, (b) =>
        typeof b === "object" && b !== null && typeof (b as { message?: unknown }).message === "string"
          ? Option.some((b as { message: string }).message)
          : Option.none())
      return Option.match(message, {
        onNone: () => `${OFFLINE} (HTTP ${error.response.status} from ${error.request.method} ${error.request.url})`,
        onSome: (m) => m
      })
    }
    if (ParseResult.isParseError(error)) return OFFLINE
    if (typeof error === "object" && error !== null) {
      const tag = (error as { _tag?: unknown })._tag
      const message = (error as { message?: unknown }).message
      if (typeof tag === "string" && API_ERRORS.has(tag) && typeof message === "string") return message
      if (typeof message === "string" && message.length > 0) return message
    }
    return String(error)
  })

/** Prints the error (if it has something to say) on stderr and gives the exit status. */
export const report = <E>(cause: Cause.Cause<E>): Effect.Effect<number> =>
  Effect.gen(function*() {
    if (Cause.isInterruptedOnly(cause)) return 130
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const e: unknown = failure.value
      if (e instanceof ExitStatus) return e.code
      // @effect/cli has already printed its own usage errors.
      if (ValidationError.isValidationError(e)) return 1
      yield* printError(yield* describe(e))
      return 1
    }
    yield* printError(`internal error: ${Cause.pretty(cause)}`)
    return 1
  })

/** `ERROR: message` on stderr, one line per line of the message. */
export const printError = (message: string) => Effect.flatMap(Effect.console, (c) => c.error(`ERROR: ${message}`))
