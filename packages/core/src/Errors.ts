/**
 * Errors that cross the wire. Each encodes as buildomat's error body
 * `{ "message", "error_code"?, "request_id" }` (OpenAPI `Error` schema), plus Effect's `_tag`,
 * with the HTTP status given on each class.
 *
 * @since 0.1.0
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import * as Ids from "./Ids.js"

const fields = {
  message: Schema.String,
  error_code: Schema.optional(Schema.String),
  request_id: Schema.optionalWith(Schema.String, { default: () => Ids.make() })
}

/**
 * 400: the request was understood but is invalid (a field out of range, an unknown target,
 * a malformed output rule). buildomat: `HttpError::for_bad_request`.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  fields,
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * 401: no bearer token, or one that names no principal allowed on this route. The message never
 * says which (buildomat answers `not authorised`).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  fields,
  HttpApiSchema.annotations({ status: 401 })
) {}

/**
 * 403: authenticated, but the object belongs to someone else (`not your job`, `not your worker`).
 *
 * @since 0.1.0
 * @category errors
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  fields,
  HttpApiSchema.annotations({ status: 403 })
) {}

/**
 * 404: the named object does not exist. buildomat answers 409 here; both are 4xx and its
 * clients treat them alike, and 404 says what happened (docs/compatibility.md).
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  fields,
  HttpApiSchema.annotations({ status: 404 })
) {}

/**
 * 409: the request conflicts with the object's state (cancelling a completed job, appending to
 * a completed job, completing a job with uploads pending). buildomat: `error_code: "conflict"`.
 *
 * @since 0.1.0
 * @category errors
 */
export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  fields,
  HttpApiSchema.annotations({ status: 409 })
) {}

/**
 * 413: the request body is larger than the server accepts (10 MiB, as buildomat).
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  fields,
  HttpApiSchema.annotations({ status: 413 })
) {}

/**
 * Any error the API declares.
 *
 * @since 0.1.0
 * @category errors
 */
export type ApiError = BadRequest | Unauthorized | Forbidden | NotFound | Conflict | PayloadTooLarge
