/**
 * Small wire schemas shared by the API modules: timestamps, unsigned integers, string maps.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Schema } from "effect"

/**
 * An RFC 3339 timestamp with `Z`, as buildomat writes them (`2026-11-21T09:31:19.123Z`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Timestamp = Schema.String.annotations({
  identifier: "Timestamp",
  jsonSchema: { type: "string", format: "date-time" }
})

/**
 * A non-negative integer that fits in 32 bits (OpenAPI `format: uint32`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Uint32 = Schema.Int.pipe(Schema.between(0, 4_294_967_295))

/**
 * A non-negative safe integer (OpenAPI `format: uint64`; sizes in bytes, sequence numbers).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Uint = Schema.NonNegativeInt

/**
 * A JSON object of string values (environment variables, tags).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StringMap = Schema.Record({ key: Schema.String, value: Schema.String })

/**
 * The current time as buildomat writes it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const now = (): string => new Date().toISOString()

/**
 * The current time on Effect's `Clock`, as buildomat writes it. Server code that compares
 * timestamps with the clock (the worker cleanup loop's timeouts, for example) writes them with
 * this, so that tests can drive time with `TestClock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const currentTime: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())
