/**
 * Jobs on the wire: submission, the job view, its events and outputs. Field names and shapes
 * follow buildomat's OpenAPI document (`JobSubmit`, `Job`, `JobEvent`, `JobListEntry`,
 * `JobOutput`); see `shared/reference/buildomat-openapi.json`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { StringMap, Timestamp, Uint, Uint32 } from "./Schemas.js"

/**
 * One task of a job submission: a bash script run by the agent. `env_clear: true` starts from an
 * empty environment instead of buildomat's defaults; `uid`/`gid` apply when the agent runs as
 * root; `workdir` defaults to `/` on a dedicated worker machine.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TaskSubmit = Schema.Struct({
  name: Schema.String,
  script: Schema.String,
  env_clear: Schema.Boolean,
  env: StringMap,
  uid: Schema.optional(Schema.NullOr(Uint32)),
  gid: Schema.optional(Schema.NullOr(Uint32)),
  workdir: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "TaskSubmit" })
/** @since 0.1.0 @category models */
export type TaskSubmit = typeof TaskSubmit.Type

/**
 * A dependency on an earlier job of the same owner (buildomat `DependSubmit`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DependSubmit = Schema.Struct({
  prior_job: Schema.String,
  copy_outputs: Schema.Boolean,
  on_failed: Schema.Boolean,
  on_completed: Schema.Boolean
}).annotations({ identifier: "DependSubmit" })
/** @since 0.1.0 @category models */
export type DependSubmit = typeof DependSubmit.Type

/**
 * The body of `POST /0/jobs`. `output_rules` use buildomat's grammar (see `OutputRules`);
 * `target` is a target name, resolved at submit time.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobSubmit = Schema.Struct({
  name: Schema.String,
  target: Schema.String,
  output_rules: Schema.Array(Schema.String),
  tasks: Schema.Array(TaskSubmit),
  inputs: Schema.optional(Schema.Array(Schema.String)),
  tags: Schema.optional(StringMap),
  depends: Schema.optional(Schema.Record({ key: Schema.String, value: DependSubmit }))
}).annotations({ identifier: "JobSubmit" })
/** @since 0.1.0 @category models */
export type JobSubmit = typeof JobSubmit.Type

/** `{ id }` of a new job (buildomat `JobSubmitResult`). @since 0.1.0 @category schemas */
export const JobSubmitResult = Schema.Struct({ id: Schema.String }).annotations({ identifier: "JobSubmitResult" })

/**
 * A job's derived state, first match wins: `failed`, `completed`, `running` (assigned to a
 * worker), `waiting` (inputs or dependencies outstanding), `queued`. A cancelled job ends
 * `failed` with `cancelled: true` (buildomat has no "cancelled" state).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobState = Schema.Literal("queued", "waiting", "running", "completed", "failed")
/** @since 0.1.0 @category models */
export type JobState = typeof JobState.Type

/**
 * Whether a state is final.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTerminal = (state: string): boolean => state === "completed" || state === "failed"

/**
 * A task in the job view; `state` is `pending`, `completed` or `failed`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Task = Schema.Struct({
  name: Schema.String,
  script: Schema.String,
  env_clear: Schema.Boolean,
  env: StringMap,
  uid: Schema.optional(Schema.NullOr(Uint32)),
  gid: Schema.optional(Schema.NullOr(Uint32)),
  workdir: Schema.optional(Schema.NullOr(Schema.String)),
  state: Schema.String
}).annotations({ identifier: "Task" })
/** @since 0.1.0 @category models */
export type Task = typeof Task.Type

/**
 * The job view of `GET /0/job/{job}`. `target` is the name the user asked for, `target_real`
 * the target it resolved to; `output_rules` are rendered back with their sigils; `times` maps
 * `submit`, `ready`, `assigned`, `complete` to timestamps as they happen.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Job = Schema.Struct({
  id: Schema.String,
  owner: Schema.String,
  name: Schema.String,
  target: Schema.String,
  target_real: Schema.String,
  output_rules: Schema.Array(Schema.String),
  tasks: Schema.Array(Task),
  state: Schema.String,
  tags: StringMap,
  cancelled: Schema.Boolean,
  times: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Timestamp }), { default: () => ({}) }),
  time_archived: Schema.optional(Schema.NullOr(Timestamp)),
  time_purged: Schema.optional(Schema.NullOr(Timestamp))
}).annotations({ identifier: "Job" })
/** @since 0.1.0 @category models */
export type Job = typeof Job.Type

/**
 * One row of `GET /1/jobs`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobListEntry = Schema.Struct({
  id: Schema.String,
  owner: Schema.String,
  name: Schema.String,
  state: Schema.String,
  cancelled: Schema.Boolean,
  target: Schema.String,
  target_id: Schema.String
}).annotations({ identifier: "JobListEntry" })
/** @since 0.1.0 @category models */
export type JobListEntry = typeof JobListEntry.Type

/**
 * A page of `GET /1/jobs` (Dropshot's `ResultsPage`): follow `next_page` as `page_token`
 * until it is null.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobListEntryResultsPage = Schema.Struct({
  items: Schema.Array(JobListEntry),
  next_page: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "JobListEntryResultsPage" })

/**
 * One job event. `seq` starts at 1 and has no gaps within a job; `time` is the server's clock
 * when it was stored, `time_remote` the agent's clock when the line was produced. Streams:
 * `control` (server), `stdout`/`stderr` (task output, one line per event), `task`, `worker`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobEvent = Schema.Struct({
  seq: Uint,
  task: Schema.optional(Schema.NullOr(Uint32)),
  stream: Schema.String,
  time: Timestamp,
  time_remote: Schema.optional(Schema.NullOr(Timestamp)),
  payload: Schema.String
}).annotations({ identifier: "JobEvent" })
/** @since 0.1.0 @category models */
export type JobEvent = typeof JobEvent.Type

/**
 * A stored output of a job: `path` is where the agent found it, `size` its length in bytes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobOutput = Schema.Struct({
  id: Schema.String,
  size: Uint,
  path: Schema.String
}).annotations({ identifier: "JobOutput" })
/** @since 0.1.0 @category models */
export type JobOutput = typeof JobOutput.Type

/**
 * The size limits a user's uploads are held to, in bytes (`GET /0/quota`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Quota = Schema.Struct({ max_bytes_per_input: Uint }).annotations({ identifier: "Quota" })

/** `{ id }` of a stored chunk (buildomat `UploadedChunk`). @since 0.1.0 @category schemas */
export const UploadedChunk = Schema.Struct({ id: Schema.String }).annotations({ identifier: "UploadedChunk" })

/**
 * An output with its SHA-256 (lower-case hex), recorded when the output was committed.
 * buildomat does not record digests, so this is served on an additive route
 * (`GET /ext/0/jobs/{job}/outputs`), never on buildomat's own.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobOutputDigest = Schema.Struct({
  id: Schema.String,
  path: Schema.String,
  size: Uint,
  sha256: Schema.String
}).annotations({ identifier: "JobOutputDigest" })
/** @since 0.1.0 @category models */
export type JobOutputDigest = typeof JobOutputDigest.Type

/**
 * Why a job is not running yet, one reason among (an addition to buildomat's API):
 *
 * - `waiting_inputs`: inputs declared at submit are not all uploaded;
 * - `waiting_dependencies`: jobs it depends on have not finished;
 * - `hold`: new worker creation is on hold (`POST /0/control/hold`, or `admin.hold`);
 * - `no_provider`: no provider or factory serves its target (none configured, or none has
 *   reported in the last 2 minutes);
 * - `factory_disabled`: every factory that serves its target is disabled;
 * - `factory_hold_workers`: the workers made for it start held (the factory's `hold_workers`)
 *   and wait for an operator to release them;
 * - `limit`: every factory that serves its target is at its limit (overall or for the target);
 * - `booting`: a worker is being made or is booting for the target (the job takes the next one
 *   that bootstraps);
 * - `ready`: a bootstrapped worker is free; the scheduler assigns the job within a second;
 * - `queued`: it waits its turn behind older jobs of the target, or for the next pass of the
 *   factory that serves it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobWaitReasonCode = Schema.Literal(
  "waiting_inputs",
  "waiting_dependencies",
  "hold",
  "no_provider",
  "factory_disabled",
  "factory_hold_workers",
  "limit",
  "booting",
  "ready",
  "queued"
)
/** @since 0.1.0 @category models */
export type JobWaitReasonCode = typeof JobWaitReasonCode.Type

/**
 * One reason a job waits: a `code` (see `JobWaitReasonCode`) and a sentence for people.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobWaitReason = Schema.Struct({
  code: JobWaitReasonCode,
  message: Schema.String
}).annotations({ identifier: "JobWaitReason" })
/** @since 0.1.0 @category models */
export type JobWaitReason = typeof JobWaitReason.Type

/**
 * `GET /ext/0/jobs/{job}/why` (an addition to buildomat's API): the job's `state` and, while it
 * is `queued` or `waiting`, the `reasons` it is not running yet, most important first, computed
 * from the scheduler's and the factories' state at the time of the call. Empty once the job is
 * assigned or complete. `position` is its place (1 = next) among the queued jobs of its target,
 * oldest first, while it is queued.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JobWhy = Schema.Struct({
  id: Schema.String,
  state: Schema.String,
  target: Schema.String,
  position: Schema.optional(Schema.NullOr(Uint32)),
  reasons: Schema.Array(JobWaitReason)
}).annotations({ identifier: "JobWhy" })
/** @since 0.1.0 @category models */
export type JobWhy = typeof JobWhy.Type
