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

/** An input file to download before the first task. @since 0.1.0 @category schemas */
export const WorkerPingInput = Schema.Struct({ name: Schema.String, id: Schema.String }).annotations({
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
 * commit idempotent: resending it polls the same commit.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerAddOutput = Schema.Struct({
  path: Schema.String,
  size: Uint,
  chunks: Schema.Array(Schema.String),
  commit_id: Schema.String
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
