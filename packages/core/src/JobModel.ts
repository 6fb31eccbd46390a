/**
 * The job model's sub-objects on the wire, beyond the job itself: inputs uploaded by the user,
 * the job store (named values passed into a running job), published files and signed URLs.
 * Shapes follow buildomat's OpenAPI document (`JobAddInput`, `JobAddInputResult`,
 * `JobStoreValue`, `JobStoreValueInfo`, `WorkerJobStoreGet`, `WorkerJobStoreValue`,
 * `JobOutputPublish`, `JobOutputSignedUrl`, `JobOutputSignedUrlResult`); the validation rules are
 * buildomat's (spec §1.7 and §7), shared here so that clients can check before they send.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Timestamp, Uint } from "./Schemas.js"

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/**
 * The body of `POST /1/jobs/{job}/input`: commit the uploaded `chunks` (ids from
 * `POST /0/jobs/{job}/chunk`, in order) as the input file `name` of `size` bytes. `commit_id` is
 * a ULID chosen by the client: sending the same body again polls the same commit.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobAddInput = Schema.Struct({
  name: Schema.String,
  size: Uint,
  chunks: Schema.Array(Schema.String),
  commit_id: Schema.String
}).annotations({ identifier: "JobAddInput" })
/** @since 0.1.0 @category models */
export type JobAddInput = typeof JobAddInput.Type

/**
 * The state of an input commit: poll until `complete`; a non-null `error` is final (the client
 * must not retry the same commit).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobAddInputResult = Schema.Struct({
  complete: Schema.Boolean,
  error: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "JobAddInputResult" })
/** @since 0.1.0 @category models */
export type JobAddInputResult = typeof JobAddInputResult.Type

/**
 * The body of buildomat's legacy synchronous `POST /0/jobs/{job}/input` (unpublished): like
 * `JobAddInput` without a commit id; the request returns once the file is stored.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobAddInputSync = Schema.Struct({
  name: Schema.String,
  size: Uint,
  chunks: Schema.Array(Schema.String)
}).annotations({ identifier: "JobAddInputSync" })

/**
 * The most inputs a job may declare (buildomat: 25).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_INPUTS = 25

/**
 * The most dependencies a job may have (buildomat: 8).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_DEPENDS = 8

/**
 * Checks the name of an input or of a dependency: it becomes a file or directory name under
 * `/input` on the worker, so it must not be blank, contain `/` or NUL, be `.` or `..`, or be
 * longer than 255 bytes. buildomat checks "non-blank, no `/`"; the rest keeps the name from
 * escaping `/input`. Returns the problem, or `undefined` if the name is fine.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkInputName = (what: string, name: string): string | undefined => {
  if (name.trim().length === 0) return `${what} name must not be blank`
  if (name.includes("/")) return `${what} name ${JSON.stringify(name)} must not contain "/"`
  if (name.includes("\0")) return `${what} name ${JSON.stringify(name)} must not contain NUL`
  if (name === "." || name === "..") return `${what} name must not be ${JSON.stringify(name)}`
  if (new TextEncoder().encode(name).length > 255) return `${what} name is longer than 255 bytes`
  return undefined
}

// ---------------------------------------------------------------------------------------------
// The job store
// ---------------------------------------------------------------------------------------------

/**
 * The body of `PUT /0/jobs/{job}/store/{name}`: a value, and whether it is secret. Once a name
 * holds a secret it stays secret, whatever later writes say.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobStoreValue = Schema.Struct({
  value: Schema.String,
  secret: Schema.Boolean
}).annotations({ identifier: "JobStoreValue" })
/** @since 0.1.0 @category models */
export type JobStoreValue = typeof JobStoreValue.Type

/**
 * One entry of `GET /0/jobs/{job}/store`: `value` is `null` for a secret (users never get secrets
 * back); `source` is `user` or `worker` (who wrote it last); `time_update` when.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobStoreValueInfo = Schema.Struct({
  value: Schema.optional(Schema.NullOr(Schema.String)),
  secret: Schema.Boolean,
  source: Schema.String,
  time_update: Timestamp
}).annotations({ identifier: "JobStoreValueInfo" })
/** @since 0.1.0 @category models */
export type JobStoreValueInfo = typeof JobStoreValueInfo.Type

/**
 * A store value as the agent sends and receives it (`PUT`/`GET /0/worker/job/{job}/store/{name}`);
 * secrets included.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerJobStoreValue = Schema.Struct({
  value: Schema.String,
  secret: Schema.Boolean
}).annotations({ identifier: "WorkerJobStoreValue" })

/**
 * `GET /0/worker/job/{job}/store/{name}`: the value, or `null` if the name is not set.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerJobStoreGet = Schema.Struct({
  value: Schema.optional(Schema.NullOr(WorkerJobStoreValue))
}).annotations({ identifier: "WorkerJobStoreGet" })
/** @since 0.1.0 @category models */
export type WorkerJobStoreGet = typeof WorkerJobStoreGet.Type

/**
 * The most values a job's store holds (buildomat: 100).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_STORE_VALUES = 100

/**
 * The largest store value, in bytes of UTF-8 (buildomat: 10 KiB).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_STORE_VALUE_BYTES = 10 * 1024

/**
 * Whether a store name is valid: one or more of `[A-Za-z0-9_]` (buildomat).
 *
 * @since 0.1.0
 * @category validation
 */
export const isStoreName = (name: string): boolean => /^[A-Za-z0-9_]+$/.test(name)

// ---------------------------------------------------------------------------------------------
// Published files and signed URLs
// ---------------------------------------------------------------------------------------------

/**
 * The body of `POST /0/jobs/{job}/outputs/{output}/publish`: the output becomes public at
 * `/0/public/file/{owner name}/{series}/{version}/{name}`. Each part is 2–48 characters of
 * `[A-Za-z0-9._-]` (see `isPublishId`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobOutputPublish = Schema.Struct({
  series: Schema.String,
  version: Schema.String,
  name: Schema.String
}).annotations({ identifier: "JobOutputPublish" })
/** @since 0.1.0 @category models */
export type JobOutputPublish = typeof JobOutputPublish.Type

/**
 * Whether a published file identifier (series, version or name) is valid: 2 to 48 characters of
 * `[A-Za-z0-9._-]` (buildomat `JobOutputPublish::safe`).
 *
 * @since 0.1.0
 * @category validation
 */
export const isPublishId = (s: string): boolean => /^[A-Za-z0-9._-]{2,48}$/.test(s)

/**
 * The body of `POST /0/jobs/{job}/outputs/{output}/sign`: how long the URL lasts, in seconds
 * (at most 3600), and the `Content-Type` and `Content-Disposition` the download should carry.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobOutputSignedUrl = Schema.Struct({
  expiry_seconds: Uint,
  content_type: Schema.optional(Schema.NullOr(Schema.String)),
  content_disposition: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "JobOutputSignedUrl" })
/** @since 0.1.0 @category models */
export type JobOutputSignedUrl = typeof JobOutputSignedUrl.Type

/**
 * The longest a signed URL may last, in seconds (buildomat: one hour).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_SIGNED_URL_SECONDS = 3600

/**
 * A signed URL for an output: anyone holding `url` can download the file (no token) until it
 * expires. `available`: whether the file is already where the URL points (buildomat: uploaded to
 * S3); `size`: the file's size in bytes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobOutputSignedUrlResult = Schema.Struct({
  url: Schema.String,
  available: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  size: Schema.optionalWith(Uint, { default: () => 0 })
}).annotations({ identifier: "JobOutputSignedUrlResult" })
/** @since 0.1.0 @category models */
export type JobOutputSignedUrlResult = typeof JobOutputSignedUrlResult.Type

/**
 * The query of a server-signed download, `GET /ext/0/jobs/{job}/outputs/{output}/signed`:
 * `expires` (Unix time in seconds), the response headers asked for at signing, and `signature`,
 * an HMAC-SHA256 (hex) the server computed over all of them with a key only it holds.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SignedDownloadQuery = Schema.Struct({
  expires: Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()),
  content_type: Schema.optional(Schema.String),
  content_disposition: Schema.optional(Schema.String),
  signature: Schema.String
})
