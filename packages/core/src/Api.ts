/**
 * The buildomat HTTP API, defined once. The server implements it, `Client` derives a typed client
 * from it, and the OpenAPI document is generated from it. Paths, methods, JSON field names and
 * status codes follow buildomat's published API (`shared/reference/buildomat-openapi.json`);
 * our additions live under `/ext/` and never change one of buildomat's routes.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import { Context, Schema } from "effect"
import {
  AdminJobsQuery,
  Worker,
  WorkerEvent,
  WorkerHoldMark,
  WorkerResultsPage,
  WorkersListOldQuery,
  WorkersListQuery,
  WorkersResult
} from "./Admin.js"
import { BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized } from "./Errors.js"
import {
  Factory,
  FactoryCreate,
  FactoryCreateResult,
  FactoryEnable,
  FactoryLeaseResult,
  FactoryPingResult,
  FactoryReport,
  FactoryStatus,
  FactoryWhatsNext,
  FactoryWorker,
  FactoryWorkerAppend,
  FactoryWorkerAppendResult,
  FactoryWorkerAssociate,
  FactoryWorkerCreate,
  FactoryWorkerResult
} from "./Factories.js"
import * as Ids from "./Ids.js"
import {
  Job,
  JobEvent,
  JobListEntryResultsPage,
  JobOutput,
  JobOutputDigest,
  JobSubmit,
  JobSubmitResult,
  JobWhy,
  Quota,
  UploadedChunk
} from "./Jobs.js"
import {
  JobAddInput,
  JobAddInputResult,
  JobAddInputSync,
  JobOutputPublish,
  JobOutputSignedUrl,
  JobOutputSignedUrlResult,
  JobStoreValue,
  JobStoreValueInfo,
  SignedDownloadQuery,
  WorkerJobStoreGet,
  WorkerJobStoreValue
} from "./JobModel.js"
import { Target, TargetCreate, TargetCreateResult, TargetRedirect, TargetRename } from "./Targets.js"
import { User, UserCreate, UserCreateResult, WhoamiResult } from "./Users.js"
import {
  WorkerAddOutput,
  WorkerAddOutputResult,
  WorkerAppendJobOrTask,
  WorkerBootstrap,
  WorkerBootstrapResult,
  WorkerCompleteJob,
  WorkerCompleteTask,
  WorkerAppend,
  WorkerAppendBatch,
  WorkerAppendBatchResult,
  WorkerCompleteDiagnostics,
  WorkerFail,
  WorkerJobQuota,
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
 * The factory a request comes from (from a factory token).
 *
 * @since 0.1.0
 * @category context
 */
export class CurrentFactory extends Context.Tag("@buildomat/core/Api/CurrentFactory")<
  CurrentFactory,
  { readonly id: Ids.FactoryId; readonly name: string }
>() {}

/**
 * Bearer-token authentication for user routes. Fails with `Unauthorized` (401) when the token
 * is missing or unknown. With an `X-Buildomat-Delegate: <user name>` header, a user holding the
 * `delegate` privilege acts as the named user, who is created if missing (buildomat); without
 * the privilege that is a 401, and a name that is not a valid user name a 400.
 *
 * @since 0.1.0
 * @category middleware
 */
export class UserAuth extends HttpApiMiddleware.Tag<UserAuth>()("@buildomat/core/Api/UserAuth", {
  failure: Schema.Union(Unauthorized, BadRequest),
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

/**
 * Bearer-token authentication for the factory protocol (`/0/factory/...`): a factory token made
 * by `POST /0/admin/factory`. In-process providers have factory records without a token, which
 * never authenticate.
 *
 * @since 0.1.0
 * @category middleware
 */
export class FactoryAuth extends HttpApiMiddleware.Tag<FactoryAuth>()("@buildomat/core/Api/FactoryAuth", {
  failure: Unauthorized,
  provides: CurrentFactory,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

const job = HttpApiSchema.param("job", Ids.JobId)
const output = HttpApiSchema.param("output", Ids.FileId)
const user = HttpApiSchema.param("user", Ids.UserId)
// A privilege may contain `/`. The router hands the handler the decoded segment; the derived
// client does not escape path parameters, so this schema escapes on the way out.
const privilege = HttpApiSchema.param(
  "privilege",
  Schema.transform(Schema.String, Schema.String, {
    strict: true,
    decode: (s) => s,
    encode: (s) => encodeURIComponent(s)
  })
)
const target = HttpApiSchema.param("target", Ids.TargetId)
const factory = HttpApiSchema.param("factory", Ids.FactoryId)
const worker = HttpApiSchema.param("worker", Ids.WorkerId)
const task = HttpApiSchema.param(
  "task",
  Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 4_294_967_295))
)

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
      .addError(Conflict)
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
  .add(
    HttpApiEndpoint.get("why")`/ext/0/jobs/${job}/why`
      .addSuccess(JobWhy)
      .annotate(OpenApi.Description, "Why a job is not running yet (an addition to buildomat's API).")
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
  .add(
    HttpApiEndpoint.put("grant")`/0/users/${user}/privilege/${privilege}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
  )
  .add(
    HttpApiEndpoint.del("revoke")`/0/users/${user}/privilege/${privilege}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
  )
  .addError(BadRequest)
  .middleware(AdminAuth)
{}

/**
 * Administrative routes for jobs (`admin.job.read`, `admin.job.archive`, `admin.job.purge`),
 * global control (`admin.control`) and workers (`admin.worker.read`, `admin.control`).
 *
 * @since 0.1.0
 * @category groups
 */
export class AdminGroup extends HttpApiGroup.make("admin")
  .add(HttpApiEndpoint.get("jobsGet", "/0/admin/jobs").setUrlParams(AdminJobsQuery).addSuccess(Schema.Array(Job)))
  .add(HttpApiEndpoint.get("jobsList", "/1/admin/jobs").setUrlParams(JobsListQuery).addSuccess(JobListEntryResultsPage))
  .add(HttpApiEndpoint.get("jobGet")`/0/admin/jobs/${job}`.addSuccess(Job))
  .add(HttpApiEndpoint.post("jobArchive")`/0/admin/jobs/${job}/archive`.addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.post("jobPurge")`/0/admin/jobs/${job}/purge`.addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.post("controlHold", "/0/control/hold").addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.post("controlResume", "/0/control/resume").addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.post("workersRecycle", "/0/workers/recycle").addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.get("workersListOld", "/0/workers").setUrlParams(WorkersListOldQuery).addSuccess(WorkersResult))
  .add(HttpApiEndpoint.get("workersList", "/1/workers").setUrlParams(WorkersListQuery).addSuccess(WorkerResultsPage))
  .add(HttpApiEndpoint.get("workerGet")`/0/admin/worker/${worker}`.addSuccess(Worker))
  .add(
    HttpApiEndpoint.get("workerEvents")`/0/admin/worker/${worker}/events`
      .setUrlParams(MinSeqQuery)
      .addSuccess(Schema.Array(WorkerEvent))
  )
  .add(HttpApiEndpoint.post("workerRecycle")`/0/admin/worker/${worker}/recycle`.addSuccess(HttpApiSchema.NoContent))
  .add(
    HttpApiEndpoint.post("workerHold")`/0/admin/worker/${worker}/hold`
      .setPayload(WorkerHoldMark)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(HttpApiEndpoint.post("workerRelease")`/0/admin/worker/${worker}/release`.addSuccess(HttpApiSchema.NoContent))
  .addError(NotFound)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(AdminAuth)
{}

/**
 * Administrative target routes (`admin.target.create`, `admin.target.read`,
 * `admin.target.write`).
 *
 * @since 0.1.0
 * @category groups
 */
export class TargetsGroup extends HttpApiGroup.make("targets")
  .add(
    HttpApiEndpoint.post("create", "/0/admin/target")
      .setPayload(TargetCreate)
      .addSuccess(TargetCreateResult, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list", "/0/admin/targets").addSuccess(Schema.Array(Target)))
  .add(
    HttpApiEndpoint.put("requirePrivilege")`/0/admin/targets/${target}/require/${privilege}`
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(HttpApiEndpoint.del("requireNoPrivilege")`/0/admin/targets/${target}/require`.addSuccess(HttpApiSchema.NoContent))
  .add(
    HttpApiEndpoint.put("redirect")`/0/admin/targets/${target}/redirect`
      .setPayload(TargetRedirect)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(
    HttpApiEndpoint.post("rename")`/0/admin/targets/${target}/rename`
      .setPayload(TargetRename)
      .addSuccess(TargetCreateResult, { status: 201 })
  )
  .addError(NotFound)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(AdminAuth)
{}

/**
 * Administrative factory routes (`admin.factory.create`, `admin.factory.read`,
 * `admin.factory.write`).
 *
 * @since 0.1.0
 * @category groups
 */
export class FactoriesGroup extends HttpApiGroup.make("factories")
  .add(
    HttpApiEndpoint.post("create", "/0/admin/factory")
      .setPayload(FactoryCreate)
      .addSuccess(FactoryCreateResult, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list", "/0/admin/factories").addSuccess(Schema.Array(Factory)))
  .add(
    HttpApiEndpoint.post("enable")`/0/admin/factory/${factory}/enable`
      .setPayload(FactoryEnable)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(HttpApiEndpoint.post("disable")`/0/admin/factory/${factory}/disable`.addSuccess(HttpApiSchema.NoContent))
  .addError(NotFound)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(AdminAuth)
{}

/**
 * The factory protocol (factory token; buildomat §2.6, §4.1): leases, worker records,
 * association with the factory's machine, boot-log forwarding, destruction. Worker routes
 * answer 403 for a worker another factory made.
 *
 * @since 0.1.0
 * @category groups
 */
export class FactoryGroup extends HttpApiGroup.make("factory")
  .add(HttpApiEndpoint.get("ping", "/0/factory/ping").addSuccess(FactoryPingResult))
  .add(HttpApiEndpoint.post("lease", "/0/factory/lease").setPayload(FactoryWhatsNext).addSuccess(FactoryLeaseResult))
  .add(HttpApiEndpoint.post("leaseRenew")`/0/factory/lease/${job}`.addSuccess(Schema.Boolean))
  .add(
    HttpApiEndpoint.post("workerCreate", "/0/factory/worker")
      .setPayload(FactoryWorkerCreate)
      .addSuccess(FactoryWorker, { status: 201 })
  )
  .add(HttpApiEndpoint.get("workers", "/0/factory/workers").addSuccess(Schema.Array(FactoryWorker)))
  .add(HttpApiEndpoint.get("workerGet")`/0/factory/worker/${worker}`.addSuccess(FactoryWorkerResult))
  .add(
    HttpApiEndpoint.patch("workerAssociate")`/0/factory/worker/${worker}`
      .setPayload(FactoryWorkerAssociate)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(HttpApiEndpoint.del("workerDestroy")`/0/factory/worker/${worker}`.addSuccess(Schema.Boolean))
  .add(
    HttpApiEndpoint.post("workerAppend")`/0/factory/worker/${worker}/append`
      .setPayload(FactoryWorkerAppend)
      .addSuccess(FactoryWorkerAppendResult)
  )
  .add(HttpApiEndpoint.post("workerFlush")`/0/factory/worker/${worker}/flush`.addSuccess(HttpApiSchema.NoContent))
  .add(
    HttpApiEndpoint.post("status", "/ext/0/factory/status")
      .setPayload(FactoryReport)
      .addSuccess(FactoryStatus)
      .annotate(
        OpenApi.Description,
        "The reconcile loop reports how full it is and learns its switches, target ids and busy workers (an addition to buildomat's API)."
      )
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(FactoryAuth)
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
 * User routes for a job's inputs (buildomat §2.3, §2.8): upload chunks while the job is
 * `waiting` (`POST /0/jobs/{job}/chunk`, raw octet-stream of at most 10 MiB, 201 `{id}`), then
 * commit them as a declared input (`POST /1/jobs/{job}/input`, polled by `commit_id`). The legacy
 * synchronous `POST /0/jobs/{job}/input` (unpublished in buildomat) is kept for old clients and
 * left out of the OpenAPI document.
 *
 * @since 0.1.0
 * @category groups
 */
export class JobInputsGroup extends HttpApiGroup.make("jobInputs")
  .add(
    HttpApiEndpoint.post("chunk")`/0/jobs/${job}/chunk`
      .setPayload(Octets)
      .addSuccess(UploadedChunk, { status: 201 })
      .addError(PayloadTooLarge)
  )
  .add(HttpApiEndpoint.post("addInput")`/1/jobs/${job}/input`.setPayload(JobAddInput).addSuccess(JobAddInputResult))
  .add(
    HttpApiEndpoint.post("addInputSync")`/0/jobs/${job}/input`
      .setPayload(JobAddInputSync)
      .addSuccess(HttpApiSchema.NoContent)
      .annotate(OpenApi.Exclude, true)
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(UserAuth)
{}

const storeName = HttpApiSchema.param("name", Schema.String)
const commit = HttpApiSchema.param("commit", Ids.Ulid)

/**
 * User routes of the job store (buildomat §1.7): named values passed into a running job.
 * `GET /0/jobs/{job}/store` maps each name to `JobStoreValueInfo` (secret values as `null`);
 * `PUT /0/jobs/{job}/store/{name}` sets one (204; 409 once the job is complete).
 *
 * @since 0.1.0
 * @category groups
 */
export class JobStoreGroup extends HttpApiGroup.make("jobStore")
  .add(
    HttpApiEndpoint.get("list")`/0/jobs/${job}/store`.addSuccess(
      Schema.Record({ key: Schema.String, value: JobStoreValueInfo })
    )
  )
  .add(
    HttpApiEndpoint.put("put")`/0/jobs/${job}/store/${storeName}`
      .setPayload(JobStoreValue)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(UserAuth)
{}

/**
 * User routes that hand an output on: publish it at a stable public URL
 * (`POST /0/jobs/{job}/outputs/{output}/publish`, 204; 409 if the job is not complete or the
 * name is taken by another file), or sign a URL for it
 * (`POST /0/jobs/{job}/outputs/{output}/sign`). Also buildomat's legacy, unpublished
 * `GET /0/jobs` (every job of the user as a `Job`), left out of the OpenAPI document.
 *
 * @since 0.1.0
 * @category groups
 */
export class JobOutputsGroup extends HttpApiGroup.make("jobOutputs")
  .add(
    HttpApiEndpoint.post("publish")`/0/jobs/${job}/outputs/${output}/publish`
      .setPayload(JobOutputPublish)
      .addSuccess(HttpApiSchema.NoContent)
  )
  .add(
    HttpApiEndpoint.post("sign")`/0/jobs/${job}/outputs/${output}/sign`
      .setPayload(JobOutputSignedUrl)
      .addSuccess(JobOutputSignedUrlResult)
  )
  .add(HttpApiEndpoint.get("legacyList", "/0/jobs").addSuccess(Schema.Array(Job)).annotate(OpenApi.Exclude, true))
  .addError(NotFound)
  .addError(Forbidden)
  .addError(Conflict)
  .addError(BadRequest)
  .middleware(UserAuth)
{}

const publicUser = HttpApiSchema.param("username", Schema.String)
const publicSeries = HttpApiSchema.param("series", Schema.String)
const publicVersion = HttpApiSchema.param("version", Schema.String)
const publicName = HttpApiSchema.param("name", Schema.String)

/**
 * Unauthenticated downloads: published files
 * (`GET`/`HEAD /0/public/file/{username}/{series}/{version}/{name}`, byte ranges, 404 when the
 * user or the mapping does not exist), and the server-signed URLs this server hands out when its
 * object store cannot presign (`GET /ext/0/jobs/{job}/outputs/{output}/signed`, an addition;
 * 403 when the signature is wrong or has expired).
 *
 * @since 0.1.0
 * @category groups
 */
export class PublicGroup extends HttpApiGroup.make("public")
  .add(
    HttpApiEndpoint.get("file")`/0/public/file/${publicUser}/${publicSeries}/${publicVersion}/${publicName}`
      .addSuccess(Octets)
  )
  .add(
    HttpApiEndpoint.head("fileHead")`/0/public/file/${publicUser}/${publicSeries}/${publicVersion}/${publicName}`
      .addSuccess(Octets)
  )
  .add(
    HttpApiEndpoint.get("signedDownload")`/ext/0/jobs/${job}/outputs/${output}/signed`
      .setUrlParams(SignedDownloadQuery)
      .addSuccess(Octets)
      .addError(Forbidden)
      .annotate(OpenApi.Description, "Download through a server-signed URL (an addition to buildomat's API).")
  )
  .addError(NotFound)
  .addError(BadRequest)
{}

const inputFile = HttpApiSchema.param("input", Ids.FileId)

/**
 * Agent routes of a job's inputs and store (buildomat §2.5): download an input file by its file
 * id (`GET /0/worker/job/{job}/inputs/{input}`, byte ranges; a copied output is read from the job
 * that produced it), and read or write store values, secrets included
 * (`GET`/`PUT /0/worker/job/{job}/store/{name}`, source `worker`).
 *
 * @since 0.1.0
 * @category groups
 */
export class WorkerJobGroup extends HttpApiGroup.make("workerJob")
  .add(HttpApiEndpoint.get("input")`/0/worker/job/${job}/inputs/${inputFile}`.addSuccess(Octets))
  .add(HttpApiEndpoint.get("storeGet")`/0/worker/job/${job}/store/${storeName}`.addSuccess(WorkerJobStoreGet))
  .add(
    HttpApiEndpoint.put("storePut")`/0/worker/job/${job}/store/${storeName}`
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
  .add(JobInputsGroup)
  .add(JobStoreGroup)
  .add(JobOutputsGroup)
  .add(PublicGroup)
  .add(WorkerJobGroup)
  .add(AdminGroup)
  .add(TargetsGroup)
  .add(FactoriesGroup)
  .add(FactoryGroup)
  .add(WorkerExtGroup)
  .add(WorkerDiagnosticsGroup)
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

