/**
 * The buildomat HTTP API, defined once. The server implements it, `Client` derives a typed client
 * from it, and the OpenAPI document is generated from it. Paths, methods, JSON field names and
 * status codes follow buildomat's published API (`shared/reference/buildomat-openapi.json`);
 * our additions live under `/ext/` and never change one of buildomat's routes.
 *
 * @since 0.1.0
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "@effect/platform"
import { Context, Schema } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized } from "./Errors.js"
import * as Ids from "./Ids.js"
import {
  Job,
  JobEvent,
  JobListEntryResultsPage,
  JobOutput,
  JobOutputDigest,
  JobSubmit,
  JobSubmitResult,
  Quota,
  UploadedChunk
} from "./Jobs.js"
import { User, UserCreate, UserCreateResult, WhoamiResult } from "./Users.js"
import {
  WorkerAddOutput,
  WorkerAddOutputResult,
  WorkerAppend,
  WorkerAppendBatch,
  WorkerAppendBatchResult,
  WorkerAppendJobOrTask,
  WorkerBootstrap,
  WorkerBootstrapResult,
  WorkerCompleteDiagnostics,
  WorkerCompleteJob,
  WorkerCompleteTask,
  WorkerFail,
  WorkerJobQuota,
  WorkerJobStoreGet,
  WorkerJobStoreValue,
  WorkerPingResult,
  WorkerPingWaitQuery,
  WorkerUploadCommit,
  WorkerUploadPartQuery,
  WorkerUploadPartResult
} from "./Workers.js"

// ---------------------------------------------------------------------------------------------
// Principals and the middleware that resolves bearer tokens to them
// ---------------------------------------------------------------------------------------------

/**
 * The user a request acts as (from a user token).
 *
 * @since 0.1.0
 * @category context
 */
export class CurrentUser extends Context.Tag("@buildomat/core/Api/CurrentUser")<
  CurrentUser,
  { readonly id: Ids.UserId; readonly name: string; readonly privileges: ReadonlyArray<string> }
>() {}

/**
 * Who is administering: the holder of the configured admin token, or a user whose privileges
 * (`admin.<x>`) the handler checks.
 *
 * @since 0.1.0
 * @category context
 */
export class CurrentAdmin extends Context.Tag("@buildomat/core/Api/CurrentAdmin")<
  CurrentAdmin,
  | { readonly _tag: "Root" }
  | { readonly _tag: "User"; readonly id: Ids.UserId; readonly name: string; readonly privileges: ReadonlyArray<string> }
>() {}

/**
 * The worker a request comes from (from the token its agent chose at bootstrap).
 *
 * @since 0.1.0
 * @category context
 */
export class CurrentWorker extends Context.Tag("@buildomat/core/Api/CurrentWorker")<
  CurrentWorker,
  { readonly id: Ids.WorkerId }
>() {}

/**
 * Bearer-token authentication for user routes. Fails with `Unauthorized` (401) when the token
 * is missing or unknown.
 *
 * @since 0.1.0
 * @category middleware
 */
export class UserAuth extends HttpApiMiddleware.Tag<UserAuth>()("@buildomat/core/Api/UserAuth", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * Bearer-token authentication for administrative routes: the admin token from the server's
 * configuration, or a user token (the handler then checks the user's `admin.*` privilege).
 *
 * @since 0.1.0
 * @category middleware
 */
export class AdminAuth extends HttpApiMiddleware.Tag<AdminAuth>()("@buildomat/core/Api/AdminAuth", {
  failure: Unauthorized,
  provides: CurrentAdmin,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * Bearer-token authentication for agent routes: a worker token bound at bootstrap, valid until
 * the worker is deleted.
 *
 * @since 0.1.0
 * @category middleware
 */
export class WorkerAuth extends HttpApiMiddleware.Tag<WorkerAuth>()("@buildomat/core/Api/WorkerAuth", {
  failure: Unauthorized,
  provides: CurrentWorker,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

const job = HttpApiSchema.param("job", Ids.JobId)
const output = HttpApiSchema.param("output", Ids.FileId)
const user = HttpApiSchema.param("user", Ids.UserId)
const task = HttpApiSchema.param(
  "task",
  Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 4_294_967_295))
)

const commit = HttpApiSchema.param("commit", Ids.Ulid)
const storeName = HttpApiSchema.param("name", Schema.String)

const BooleanParam = Schema.transformLiterals(["true", true], ["false", false])
const UintParam = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())

/**
 * Query of `GET /0/jobs/{job}/events` and `.../watch`: events with `seq >= minseq`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const MinSeqQuery = Schema.Struct({ minseq: Schema.optional(UintParam) })

/**
 * Query of `GET /1/jobs`: Dropshot pagination (`limit`, `page_token`) and the scan parameters
 * `recent_first` and `tag` (`k=v|k2=v2`, every pair must match).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobsListQuery = Schema.Struct({
  limit: Schema.optional(UintParam),
  page_token: Schema.optional(Schema.String),
  recent_first: Schema.optional(BooleanParam),
  tag: Schema.optional(Schema.String)
})

const Sse = HttpApiSchema.Text({ contentType: "text/event-stream" })
const Octets = HttpApiSchema.Uint8Array({ contentType: "application/octet-stream" })

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

/**
 * User routes: submit and follow jobs, download outputs.
 *
 * @since 0.1.0
 * @category groups
 */
export class JobsGroup extends HttpApiGroup.make("jobs")
  .add(HttpApiEndpoint.get("whoami", "/0/whoami").addSuccess(WhoamiResult))
  .add(HttpApiEndpoint.get("quota", "/0/quota").addSuccess(Quota))
  .add(
    HttpApiEndpoint.post("submit", "/0/jobs")
      .setPayload(JobSubmit)
      .addSuccess(JobSubmitResult, { status: 201 })
      .addError(Forbidden)
  )
  .add(HttpApiEndpoint.get("get")`/0/job/${job}`.addSuccess(Job))
  .add(HttpApiEndpoint.get("list", "/1/jobs").setUrlParams(JobsListQuery).addSuccess(JobListEntryResultsPage))
  .add(HttpApiEndpoint.get("events")`/0/jobs/${job}/events`.setUrlParams(MinSeqQuery).addSuccess(Schema.Array(JobEvent)))
  .add(HttpApiEndpoint.get("watch")`/0/jobs/${job}/watch`.setUrlParams(MinSeqQuery).addSuccess(Sse))
  .add(HttpApiEndpoint.get("outputs")`/0/jobs/${job}/outputs`.addSuccess(Schema.Array(JobOutput)))
  .add(HttpApiEndpoint.get("download")`/0/jobs/${job}/outputs/${output}`.addSuccess(Octets))
  .add(HttpApiEndpoint.post("cancel")`/0/jobs/${job}/cancel`.addSuccess(HttpApiSchema.NoContent).addError(Conflict))
  .add(
    HttpApiEndpoint.get("outputDigests")`/ext/0/jobs/${job}/outputs`
      .addSuccess(Schema.Array(JobOutputDigest))
      .annotate(OpenApi.Description, "Outputs with their SHA-256 (an addition to buildomat's API).")
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(BadRequest)
  .middleware(UserAuth)
{}

/**
 * Administrative user routes (`admin.user.create`, `admin.user.read`).
 *
 * @since 0.1.0
 * @category groups
 */
export class UsersGroup extends HttpApiGroup.make("users")
  .add(
    HttpApiEndpoint.post("create", "/0/users")
      .setPayload(UserCreate)
      .addSuccess(UserCreateResult, { status: 201 })
      .addError(Conflict)
  )
  .add(
    HttpApiEndpoint.get("list", "/0/users")
      .setUrlParams(Schema.Struct({ name: Schema.optional(Schema.String) }))
      .addSuccess(Schema.Array(User))
  )
  .add(HttpApiEndpoint.get("get")`/0/users/${user}`.addSuccess(User).addError(NotFound))
  .addError(BadRequest)
  .middleware(AdminAuth)
{}

/**
 * `POST /0/worker/bootstrap`: unauthenticated; the bootstrap value is the credential.
 *
 * @since 0.1.0
 * @category groups
 */
export class BootstrapGroup extends HttpApiGroup.make("bootstrap")
  .add(
    HttpApiEndpoint.post("bootstrap", "/0/worker/bootstrap")
      .setPayload(WorkerBootstrap)
      .addSuccess(WorkerBootstrapResult, { status: 201 })
      .addError(Unauthorized)
  )
{}

/**
 * Agent routes (worker token).
 *
 * @since 0.1.0
 * @category groups
 */
export class WorkerGroup extends HttpApiGroup.make("worker")
  .add(HttpApiEndpoint.get("ping", "/0/worker/ping").addSuccess(WorkerPingResult))
  .add(HttpApiEndpoint.post("fail", "/0/worker/fail").setPayload(WorkerFail).addSuccess(HttpApiSchema.NoContent))
  .add(
    HttpApiEndpoint.post("append")`/1/worker/job/${job}/append`
      .setPayload(Schema.Array(WorkerAppendJobOrTask))
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(
    HttpApiEndpoint.post("taskComplete")`/0/worker/job/${job}/task/${task}/complete`
      .setPayload(WorkerCompleteTask)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(
    HttpApiEndpoint.post("jobComplete")`/0/worker/job/${job}/complete`
      .setPayload(WorkerCompleteJob)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(
    HttpApiEndpoint.post("chunk")`/0/worker/job/${job}/chunk`
      .setPayload(Octets)
      .addSuccess(UploadedChunk, { status: 201 })
      .addError(PayloadTooLarge)
  )
  .add(HttpApiEndpoint.get("quota")`/0/worker/job/${job}/quota`.addSuccess(WorkerJobQuota))
  .add(
    HttpApiEndpoint.post("addOutput")`/1/worker/job/${job}/output`
      .setPayload(WorkerAddOutput)
      .addSuccess(WorkerAddOutputResult)
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(WorkerAuth)
{}

/**
 * Agent routes we add to buildomat's (worker token), for agents that must lose nothing and pick
 * up work at once:
 *
 * - `GET /ext/0/worker/ping?wait_ms=&job=`: the ping as a long-poll (see `WorkerPingWaitQuery`).
 * - `POST /ext/0/worker/job/{job}/append`: numbered batches of runs of events, each stored exactly
 *   once however often it is resent (see `WorkerAppendBatch`).
 * - `PUT /ext/0/worker/job/{job}/upload/{commit}?offset=&size=`: one part (at most 10 MiB) of an
 *   output, in order; a resent part is acknowledged, not stored twice. The server hashes the
 *   bytes as they arrive and writes them once, straight into the object store.
 * - `POST /ext/0/worker/job/{job}/upload/{commit}/commit`: records the upload as an output once
 *   its size and SHA-256 match what the agent read; answers like `POST /1/worker/job/{job}/output`
 *   (poll until `complete`).
 *
 * @since 0.1.0
 * @category groups
 */
export class WorkerExtGroup extends HttpApiGroup.make("workerExt")
  .add(
    HttpApiEndpoint.get("ping", "/ext/0/worker/ping")
      .setUrlParams(WorkerPingWaitQuery)
      .addSuccess(WorkerPingResult)
      .annotate(OpenApi.Description, "GET /0/worker/ping as a long-poll (an addition to buildomat's API).")
  )
  .add(
    HttpApiEndpoint.post("append")`/ext/0/worker/job/${job}/append`
      .setPayload(WorkerAppendBatch)
      .addSuccess(WorkerAppendBatchResult)
      .annotate(OpenApi.Description, "Numbered, idempotent batches of job events (an addition to buildomat's API).")
  )
  .add(
    HttpApiEndpoint.put("uploadPart")`/ext/0/worker/job/${job}/upload/${commit}`
      .setUrlParams(WorkerUploadPartQuery)
      .setPayload(Octets)
      .addSuccess(WorkerUploadPartResult)
      .addError(PayloadTooLarge)
      .annotate(OpenApi.Description, "One part of an output, in order (an addition to buildomat's API).")
  )
  .add(
    HttpApiEndpoint.post("uploadCommit")`/ext/0/worker/job/${job}/upload/${commit}/commit`
      .setPayload(WorkerUploadCommit)
      .addSuccess(WorkerAddOutputResult)
      .annotate(OpenApi.Description, "Commit an uploaded output, size and SHA-256 checked (an addition).")
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(WorkerAuth)
{}

/**
 * buildomat's worker-level routes: worker events (`POST /0/worker/append`) and the post-job
 * diagnostics handshake (`POST /0/worker/diagnostics/enable`, `.../complete`, buildomat §3.9).
 *
 * @since 0.1.0
 * @category groups
 */
export class WorkerDiagnosticsGroup extends HttpApiGroup.make("workerDiagnostics")
  .add(
    HttpApiEndpoint.post("append", "/0/worker/append")
      .setPayload(Schema.Array(WorkerAppend))
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(HttpApiEndpoint.post("enable", "/0/worker/diagnostics/enable").addSuccess(HttpApiSchema.NoContent))
  .add(
    HttpApiEndpoint.post("complete", "/0/worker/diagnostics/complete")
      .setPayload(WorkerCompleteDiagnostics)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(WorkerAuth)
{}

/**
 * INTERIM (issue 4, to be replaced by the job store of issue 3): buildomat's worker job store
 * routes, `GET` and `PUT /0/worker/job/{job}/store/{name}`, so that `bmat store` can be used and
 * tested. Same paths and bodies as buildomat (`WorkerJobStoreGet`, `WorkerJobStoreValue`).
 *
 * @since 0.1.0
 * @category groups
 */
export class WorkerJobStoreGroup extends HttpApiGroup.make("workerJobStore")
  .add(HttpApiEndpoint.get("get")`/0/worker/job/${job}/store/${storeName}`.addSuccess(WorkerJobStoreGet))
  .add(
    HttpApiEndpoint.put("put")`/0/worker/job/${job}/store/${storeName}`
      .setPayload(WorkerJobStoreValue)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(WorkerAuth)
{}

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class BuildomatApi extends HttpApi.make("buildomat")
  .add(JobsGroup)
  .add(UsersGroup)
  .add(BootstrapGroup)
  .add(WorkerGroup)
  .add(WorkerExtGroup)
  .add(WorkerDiagnosticsGroup)
  .add(WorkerJobStoreGroup)
  .annotate(OpenApi.Title, "Buildomat")
  .annotate(OpenApi.Version, "1.0.0")
{}

/**
 * The largest request body the server reads, in bytes (10 MiB, as buildomat).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_REQUEST_BODY = 10 * 1024 * 1024

/**
 * The chunk size clients upload files in, in bytes (5 MiB, as buildomat's clients).
 *
 * @since 0.1.0
 * @category constants
 */
export const CHUNK_SIZE = 5 * 1024 * 1024

