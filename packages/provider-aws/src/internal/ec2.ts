/**
 * Calls to the EC2 API through `@aws-sdk/client-ec2`, as Effects: errors classified by their
 * EC2 error code, throttling and transient server errors retried with jittered exponential
 * backoff (the SDK's own retries are turned off, so that the policy is in one place, visible in
 * the logs and testable).
 *
 * @internal
 */
import { Data, Duration, Effect } from "effect"

/**
 * An EC2 call failed. `code` is the EC2 error code (`InsufficientInstanceCapacity`,
 * `RequestLimitExceeded`, `InvalidInstanceID.NotFound`, ...; see "Error codes for the Amazon EC2
 * API" in the EC2 API reference), or the Node error code (`ECONNREFUSED`) or `Unknown` when the
 * request did not get an EC2 answer. `status` is the HTTP status, if there was a response.
 *
 * @internal
 */
export class Ec2Error extends Data.TaggedError("Ec2Error")<{
  readonly action: string
  readonly code: string
  readonly status: number | undefined
  readonly message: string
  readonly cause: unknown
}> {}

/**
 * Error codes that mean "slow down": EC2's `RequestLimitExceeded` (HTTP 503), and the generic AWS
 * throttling codes.
 *
 * @internal
 */
export const THROTTLING_CODES: ReadonlySet<string> = new Set([
  "RequestLimitExceeded",
  "Throttling",
  "ThrottlingException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException"
])

/**
 * Transient server-side codes (EC2 "server error codes", HTTP 5xx), and network failures:
 * worth another try. Capacity errors are not here: they are answered by trying another subnet.
 */
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "Unavailable",
  "TimeoutError",
  "RequestTimeout",
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "UND_ERR_SOCKET"
])

/**
 * Whether a failed call is worth repeating as is.
 *
 * @internal
 */
export const isRetryable = (e: Ec2Error): boolean => THROTTLING_CODES.has(e.code) || TRANSIENT_CODES.has(e.code)

const toEc2Error = (action: string, cause: unknown): Ec2Error => {
  const e = cause as {
    readonly name?: string
    readonly code?: string
    readonly Code?: string
    readonly message?: string
    readonly $metadata?: { readonly httpStatusCode?: number }
  }
  const status = e?.$metadata?.httpStatusCode
  // Service errors carry the EC2 code as `name` (and `Code`); network errors carry a Node `code`.
  const code = e?.$metadata !== undefined
    ? (e.Code ?? e.name ?? "Unknown")
    : (e?.code ?? (e?.name === "TimeoutError" ? "TimeoutError" : e?.name) ?? "Unknown")
  const message = e?.message ?? String(cause)
  return new Ec2Error({ action, code, status, message, cause })
}

/**
 * How EC2 calls are retried.
 *
 * - `attempts`: how many times a call is made at most (>= 1).
 * - `baseDelayMs`: the first pause; it doubles each time, with jitter (0.8-1.2x).
 * - `maxDelayMs`: the longest pause.
 *
 * @internal
 */
export interface RetryPolicy {
  readonly attempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
}

/**
 * Runs one EC2 request (`send`, given an abort signal for `client.send`), retrying throttling
 * and transient errors by `policy`, each retry logged as a warning with the code and the delay.
 * The request is aborted if the fiber is interrupted.
 *
 * @internal
 */
export const call = <A>(
  action: string,
  send: (abortSignal: AbortSignal) => Promise<A>,
  policy: RetryPolicy
): Effect.Effect<A, Ec2Error> => {
  const once = Effect.tryPromise({
    try: send,
    catch: (cause) => toEc2Error(action, cause)
  })
  const loop = (attempt: number): Effect.Effect<A, Ec2Error> =>
    Effect.catchAll(once, (e) => {
      if (!isRetryable(e) || attempt >= policy.attempts) return Effect.fail(e)
      const delay = Math.round(
        Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4)
      )
      return Effect.logWarning(
        `EC2 ${action}: ${e.code}: ${e.message}; retry ${attempt} of ${policy.attempts - 1} in ${delay} ms`
      ).pipe(Effect.zipRight(Effect.sleep(Duration.millis(delay))), Effect.zipRight(loop(attempt + 1)))
    })
  return loop(1).pipe(Effect.withSpan(`EC2.${action}`))
}
