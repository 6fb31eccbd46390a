/**
 * Retrying API calls. The agent must ride out a server restart or a flaky network without
 * losing its job, so every call retries transient failures forever (buildomat retries every call
 * at 1 s intervals, §3.10); we back off exponentially with jitter, capped near 1 s, so that a
 * fleet of agents does not hammer a server coming back up in lock-step.
 *
 * @internal
 */
import * as HttpClientError from "@effect/platform/HttpClientError"
import { Cause, Duration, Effect, Predicate, Schedule } from "effect"
import { StatusError } from "./wire.js"

/**
 * Whether a failed call may succeed if repeated: transport errors, timeouts, 5xx and 429.
 * Every other 4xx is a definite answer from the server.
 */
export const isTransient = (error: unknown): boolean => {
  if (Cause.isTimeoutException(error)) return true
  if (error instanceof StatusError) return error.status >= 500 || error.status === 429
  if (HttpClientError.isHttpClientError(error)) {
    if (error._tag === "RequestError") return true
    const status = error.response.status
    return status >= 500 || status === 429
  }
  return false
}

/** A human-readable account of a failure, for logs and `worker` events. */
export const describe = (error: unknown): string => {
  if (Cause.isTimeoutException(error)) return "request timed out"
  if (HttpClientError.isHttpClientError(error)) return error.message
  if (Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== "") {
    return Predicate.hasProperty(error, "_tag") ? `${String(error._tag)}: ${error.message}` : error.message
  }
  if (Predicate.hasProperty(error, "_tag")) return String(error._tag)
  return String(error)
}

/**
 * 50 ms, 100 ms, 200 ms, ... capped at 1 s, each delay jittered (between 80% and 120%); never
 * gives up. The cap keeps an agent quick to notice a server that is back, the jitter keeps a
 * fleet of agents from hammering it in lock-step.
 */
export const backoff: Schedule.Schedule<unknown> = Schedule.exponential("50 millis").pipe(
  Schedule.union(Schedule.spaced("1 second")),
  Schedule.jittered
)

/** How long one attempt of an ordinary call may take before it counts as a transient failure. */
export const DEFAULT_TIMEOUT: Duration.DurationInput = "60 seconds"

/**
 * Runs `self`, retrying while the failure is transient (or `retryAll`: every failure), each
 * attempt bounded by `timeout`. What is left in the error channel is a non-transient failure.
 */
export const retrying = <A, E, R>(
  what: string,
  self: Effect.Effect<A, E, R>,
  options?: { readonly timeout?: Duration.DurationInput; readonly retryAll?: boolean }
): Effect.Effect<A, E, R> =>
  self.pipe(
    Effect.timeout(options?.timeout ?? DEFAULT_TIMEOUT),
    Effect.retry({
      schedule: backoff.pipe(
        Schedule.tapInput((error: unknown) => Effect.logWarning(`${what} failed, retrying: ${describe(error)}`))
      ),
      while: (error) => options?.retryAll === true || isTransient(error)
    }),
    // A timeout is transient, so it was retried away: it cannot reach here.
    Effect.catchIf(Cause.isTimeoutException, (e) => Effect.die(e))
  )
