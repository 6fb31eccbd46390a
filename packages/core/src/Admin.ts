/**
 * Administration on the wire: workers as operators see them (buildomat `Worker`, `WorkerJob`,
 * `WorkerHold`, `WorkerEvent`, `WorkersResult`, `WorkerResultsPage`, `WorkerHoldMark`) and the
 * query parameters of the administrative listings.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { StringMap, Timestamp, Uint } from "./Schemas.js"

const BooleanParam = Schema.transformLiterals(["true", true], ["false", false])
const UintParam = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())

/**
 * A job a worker ran (or runs): its id, name, owner (user id), state and tags.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerJob = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  owner: Schema.String,
  state: Schema.String,
  tags: StringMap
}).annotations({ identifier: "WorkerJob" })

/** Why and since when a worker is held. @since 0.1.0 @category schemas */
export const WorkerHold = Schema.Struct({ time: Timestamp, reason: Schema.String }).annotations({
  identifier: "WorkerHold"
})

/**
 * A worker as administrators see it. `factory` is the id of the factory that made it,
 * `factory_private` the factory's name for the machine; `bootstrap` is true once the agent
 * bound its token; `jobs` holds at most one job (one job per worker, ever); `hold` is set while
 * an operator (or a failure) holds the worker: it is then never assigned a job, never told to
 * power off and never destroyed.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Worker = Schema.Struct({
  id: Schema.String,
  factory: Schema.String,
  factory_private: Schema.optional(Schema.NullOr(Schema.String)),
  factory_ip: Schema.optional(Schema.NullOr(Schema.String)),
  target: Schema.String,
  bootstrap: Schema.Boolean,
  deleted: Schema.Boolean,
  recycle: Schema.Boolean,
  lastping: Schema.optional(Schema.NullOr(Timestamp)),
  jobs: Schema.Array(WorkerJob),
  hold: Schema.optional(Schema.NullOr(WorkerHold)),
  diagnostics: Schema.Boolean
}).annotations({ identifier: "Worker" })
/** @since 0.1.0 @category models */
export type Worker = typeof Worker.Type

/** `GET /0/workers` result. @since 0.1.0 @category schemas */
export const WorkersResult = Schema.Struct({ workers: Schema.Array(Worker) }).annotations({
  identifier: "WorkersResult"
})

/**
 * A page of `GET /1/workers`: follow `next_page` as `page_token` until it is null.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerResultsPage = Schema.Struct({
  items: Schema.Array(Worker),
  next_page: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "WorkerResultsPage" })

/**
 * A worker event: `seq` from 1, gap-free per worker; streams `control` (holds, releases),
 * `diag.pre`, `diag.post`, `agent`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkerEvent = Schema.Struct({
  seq: Uint,
  stream: Schema.String,
  time: Timestamp,
  time_remote: Schema.optional(Schema.NullOr(Timestamp)),
  payload: Schema.String
}).annotations({ identifier: "WorkerEvent" })
/** @since 0.1.0 @category models */
export type WorkerEvent = typeof WorkerEvent.Type

/** `POST /0/admin/worker/{worker}/hold` body. @since 0.1.0 @category schemas */
export const WorkerHoldMark = Schema.Struct({ reason: Schema.String }).annotations({ identifier: "WorkerHoldMark" })

/**
 * Query of `GET /0/admin/jobs`: `active=true` lists the running, queued and waiting jobs;
 * `completed=N` the N most recently completed ones (oldest first). One of the two is required.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AdminJobsQuery = Schema.Struct({
  active: Schema.optional(BooleanParam),
  completed: Schema.optional(UintParam)
})

/** Query of `GET /0/workers`: `active=true` leaves out deleted workers. @since 0.1.0 @category schemas */
export const WorkersListOldQuery = Schema.Struct({ active: Schema.optional(BooleanParam) })

/**
 * Query of `GET /1/workers`: Dropshot pagination (`limit`, `page_token`) and the scan parameters
 * `active` (leave out deleted workers) and `factory` (a factory id).
 *
 * @since 0.1.0
 * @category schemas
 */
export const WorkersListQuery = Schema.Struct({
  active: Schema.optional(BooleanParam),
  factory: Schema.optional(Schema.String),
  limit: Schema.optional(UintParam),
  page_token: Schema.optional(Schema.String)
})
