/**
 * The agent's side of the wire (buildomat `WorkerBootstrap`, `WorkerPingResult`,
 * `WorkerAppendJobOrTask`, `WorkerAddOutput`, ...).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { StringMap, Timestamp, Uint, Uint32 } from "./Schemas.js"

/**
 * `POST /0/worker/bootstrap` body: the single-use `bootstrap` value the provider handed the
 * machine, and the `token` the agent chose for itself (64 random alphanumerics in buildomat).
 * The first token to bootstrap a worker is bound to it; the same token may retry.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerBootstrap = Schema.Struct({ bootstrap: Schema.String, token: Schema.String }).annotations({
  identifier: "WorkerBootstrap"
})

/** `{ id }` of the worker that bootstrapped. @since 0.1.0 @category schemas */
export const WorkerBootstrapResult = Schema.Struct({ id: Schema.String }).annotations({
  identifier: "WorkerBootstrapResult"
})

/** An output rule as the agent receives it (sigils split out). @since 0.1.0 @category schemas */
export const WorkerPingOutputRule = Schema.Struct({
  rule: Schema.String,
  ignore: Schema.Boolean,
  size_change_ok: Schema.Boolean,
  require_match: Schema.Boolean
}).annotations({ identifier: "WorkerPingOutputRule" })
/** @since 0.1.0 @category models */
export type WorkerPingOutputRule = typeof WorkerPingOutputRule.Type

/**
 * A task as the agent runs it: `id` is its 0-based position; `uid`/`gid` default to 0 and
 * `workdir` to `/`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerPingTask = Schema.Struct({
  id: Uint32,
  name: Schema.String,
  script: Schema.String,
  env_clear: Schema.Boolean,
  env: StringMap,
  uid: Uint32,
  gid: Uint32,
  workdir: Schema.String
}).annotations({ identifier: "WorkerPingTask" })
/** @since 0.1.0 @category models */
export type WorkerPingTask = typeof WorkerPingTask.Type

/**
 * An input file to download before the first task, to `/input/<name>` (`name` may hold `/` for
 * outputs copied from a dependency). `size` (bytes) is our optional addition: when present the
 * agent checks the download against it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerPingInput = Schema.Struct({
  name: Schema.String,
  id: Schema.String,
  size: Schema.optional(Schema.NullOr(Uint))
}).annotations({
  identifier: "WorkerPingInput"
})

/** The job handed to a worker. @since 0.1.0 @category schemas */
export const WorkerPingJob = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  output_rules: Schema.Array(WorkerPingOutputRule),
  tasks: Schema.Array(WorkerPingTask),
  inputs: Schema.Array(WorkerPingInput)
}).annotations({ identifier: "WorkerPingJob" })
/** @since 0.1.0 @category models */
export type WorkerPingJob = typeof WorkerPingJob.Type

/** Which factory made this worker. @since 0.1.0 @category schemas */
export const WorkerPingFactoryInfo = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  private: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "WorkerPingFactoryInfo" })

/**
 * `GET /0/worker/ping` result. `poweroff: true` means the worker has been recycled and the
 * agent should do nothing more; `job` is present once a job is assigned.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerPingResult = Schema.Struct({
  poweroff: Schema.Boolean,
  job: Schema.optional(Schema.NullOr(WorkerPingJob)),
  factory_metadata: Schema.optional(Schema.NullOr(Schema.Unknown)),
  factory_info: Schema.optional(Schema.NullOr(WorkerPingFactoryInfo))
}).annotations({ identifier: "WorkerPingResult" })
/** @since 0.1.0 @category models */
export type WorkerPingResult = typeof WorkerPingResult.Type

/**
 * A stream name: at most 64 bytes of `[A-Za-z0-9._-]` (buildomat's rule; empty allowed).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StreamName = Schema.String.pipe(
  Schema.filter((s) => /^[A-Za-z0-9._-]{0,64}$/.test(s), {
    message: (i) => `a stream name is at most 64 characters of [A-Za-z0-9._-], got ${JSON.stringify(i.actual)}`
  })
)

/**
 * One event sent by the agent: `time` is the agent's clock (stored as `time_remote`), `task`
 * the 0-based task it belongs to, if any.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAppendJobOrTask = Schema.Struct({
  stream: StreamName,
  time: Timestamp,
  payload: Schema.String,
  task: Schema.optional(Schema.NullOr(Uint32))
}).annotations({ identifier: "WorkerAppendJobOrTask" })
/** @since 0.1.0 @category models */
export type WorkerAppendJobOrTask = typeof WorkerAppendJobOrTask.Type

/** `{ failed }` for task and job completion. @since 0.1.0 @category schemas */
export const WorkerCompleteTask = Schema.Struct({ failed: Schema.Boolean }).annotations({
  identifier: "WorkerCompleteTask"
})
/** @since 0.1.0 @category schemas */
export const WorkerCompleteJob = Schema.Struct({ failed: Schema.Boolean }).annotations({
  identifier: "WorkerCompleteJob"
})

/** `POST /0/worker/fail` body. @since 0.1.0 @category schemas */
export const WorkerFail = Schema.Struct({ reason: Schema.optional(Schema.NullOr(Schema.String)) }).annotations({
  identifier: "WorkerFail"
})

/**
 * `POST /1/worker/job/{job}/output` body: commit the uploaded `chunks`, in order, as the output
 * found at `path` (`size` bytes). `commit_id` is a ULID chosen by the agent that makes the
 * commit idempotent: resending it polls the same commit. `sha256` (optional, our addition) is
 * compared with the digest the server computes while assembling the file.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAddOutput = Schema.Struct({
  path: Schema.String,
  size: Uint,
  chunks: Schema.Array(Schema.String),
  commit_id: Schema.String,
  sha256: Schema.optional(Schema.NullOr(Schema.String)).annotations({
    description: "the SHA-256 of the file as the agent read it (lower-case hex); the commit fails if the " +
      "assembled file differs. An addition to buildomat's WorkerAddOutput; older agents omit it."
  })
}).annotations({ identifier: "WorkerAddOutput" })
/** @since 0.1.0 @category models */
export type WorkerAddOutput = typeof WorkerAddOutput.Type

/**
 * The state of a commit: poll until `complete`; a non-null `error` is final.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAddOutputResult = Schema.Struct({
  complete: Schema.Boolean,
  error: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "WorkerAddOutputResult" })

/** The largest output the server accepts, in bytes. @since 0.1.0 @category schemas */
export const WorkerJobQuota = Schema.Struct({ max_bytes_per_output: Uint }).annotations({
  identifier: "WorkerJobQuota"
})

// ---------------------------------------------------------------------------------------------
// Additions for loss-free, fast agents (all on `/ext/` paths, or buildomat's own worker routes)
// ---------------------------------------------------------------------------------------------

/**
 * Query of `GET /ext/0/worker/ping`, the long-poll form of `GET /0/worker/ping`:
 *
 * - `wait_ms`: how long the server may hold the request, in milliseconds (0 to 60000; default
 *   30000). It answers at once when the worker is told to power off, or when the job assigned to
 *   it is not `job`; otherwise when `wait_ms` runs out.
 * - `job`: the job the agent already runs, if any. An idle agent omits it, so the answer comes the
 *   moment a job is assigned; a busy agent passes it, so the answer comes the moment the worker
 *   is recycled (the job cancelled, `max_runtime` exceeded, an operator's recycle).
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerPingWaitQuery = Schema.Struct({
  wait_ms: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 60_000))),
  job: Schema.optional(Schema.String)
})

/**
 * One run of events in an appended batch: `payloads` are consecutive events (one output line
 * each) of the same `stream` and `task`, produced at the agent's time `time`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAppendRun = Schema.Struct({
  task: Schema.optional(Schema.NullOr(Uint32)),
  stream: StreamName,
  time: Timestamp,
  payloads: Schema.Array(Schema.String)
}).annotations({ identifier: "WorkerAppendRun" })
/** @since 0.1.0 @category models */
export type WorkerAppendRun = typeof WorkerAppendRun.Type

/**
 * `POST /ext/0/worker/job/{job}/append` body: batch number `batch` (1, 2, 3, ... per job, chosen
 * by the agent) holding `runs` of events, stored in order. A batch whose number was already
 * stored is acknowledged without being stored again, so an agent that lost the answer can resend
 * it safely; a batch that skips a number is refused (409), because one before it is missing.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAppendBatch = Schema.Struct({
  batch: Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)),
  runs: Schema.Array(WorkerAppendRun)
}).annotations({ identifier: "WorkerAppendBatch" })
/** @since 0.1.0 @category models */
export type WorkerAppendBatch = typeof WorkerAppendBatch.Type

/**
 * What `POST /ext/0/worker/job/{job}/append` answers: the highest batch number stored for the
 * job, and whether this batch was a resend of one already stored.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAppendBatchResult = Schema.Struct({
  last_batch: Uint,
  duplicate: Schema.Boolean
}).annotations({ identifier: "WorkerAppendBatchResult" })

/**
 * Query of `PUT /ext/0/worker/job/{job}/upload/{commit}`: the body is the part of the file that
 * starts at byte `offset`; the whole file is `size` bytes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerUploadPartQuery = Schema.Struct({
  offset: Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()),
  size: Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())
})

/**
 * The bytes the server holds of an upload (the next `offset` to send).
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerUploadPartResult = Schema.Struct({ offset: Uint }).annotations({
  identifier: "WorkerUploadPartResult"
})

/**
 * `POST /ext/0/worker/job/{job}/upload/{commit}/commit` body: record the uploaded bytes as the
 * output found at `path`. The server checks that it received exactly `size` bytes and that their
 * SHA-256 is `sha256` (lower-case hex) before it records the output.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerUploadCommit = Schema.Struct({
  path: Schema.String,
  size: Uint,
  sha256: Schema.String
}).annotations({ identifier: "WorkerUploadCommit" })
/** @since 0.1.0 @category models */
export type WorkerUploadCommit = typeof WorkerUploadCommit.Type

/**
 * One worker event (`POST /0/worker/append`, buildomat `WorkerAppend`): `time` is the agent's
 * clock. Streams: `diag.pre`, `diag.post` (diagnostic scripts), `agent`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAppend = Schema.Struct({
  stream: StreamName,
  time: Timestamp,
  payload: Schema.String
}).annotations({ identifier: "WorkerAppend" })
/** @since 0.1.0 @category models */
export type WorkerAppend = typeof WorkerAppend.Type

/**
 * `POST /0/worker/diagnostics/complete` body: `hold` asks for the worker to be held for an
 * operator (the post-job diagnostic script reported a fault).
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerCompleteDiagnostics = Schema.Struct({ hold: Schema.Boolean }).annotations({
  identifier: "WorkerCompleteDiagnostics"
})

/**
 * Factory metadata (buildomat `FactoryMetadata` version 1), handed to the agent in its ping. The
 * agent applies each item once: `root_authorized_keys` and `root_password_hash` for the worker's
 * root account, and runs `pre_job_diagnostic_script` before its job and
 * `post_job_diagnostic_script` after it (buildomat §3.9). `addresses` (IPv4 ranges, see
 * `Factories.FactoryAddresses`) are shown to tasks by `bmat address list`, which checks each
 * one; `dump_to_rpool` and `rpool_disable_sync` are illumos matters, accepted and ignored on other
 * systems.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryMetadata = Schema.Struct({
  v: Schema.Literal("1"),
  addresses: Schema.optional(Schema.Array(Schema.Unknown)),
  root_password_hash: Schema.optional(Schema.NullOr(Schema.String)),
  root_authorized_keys: Schema.optional(Schema.NullOr(Schema.String)),
  dump_to_rpool: Schema.optional(Schema.NullOr(Uint32)),
  pre_job_diagnostic_script: Schema.optional(Schema.NullOr(Schema.String)),
  post_job_diagnostic_script: Schema.optional(Schema.NullOr(Schema.String)),
  rpool_disable_sync: Schema.optional(Schema.NullOr(Schema.Boolean))
}).annotations({ identifier: "FactoryMetadata" })
/** @since 0.1.0 @category models */
export type FactoryMetadata = typeof FactoryMetadata.Type
