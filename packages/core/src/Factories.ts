/**
 * Factories on the wire: the administrative view (buildomat `Factory`, `FactoryCreate`,
 * `FactoryEnable`) and the factory protocol (`FactoryWhatsNext`, `FactoryLease`,
 * `FactoryWorker`, `FactoryWorkerAssociate`, `FactoryMetadata`, ...), spoken by a process that
 * holds a factory token and makes machines for workers (buildomat §4.1).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Ids from "./Ids.js"
import { Timestamp, Uint32 } from "./Schemas.js"
import * as Workers from "./Workers.js"

// ---------------------------------------------------------------------------------------------
// Administration
// ---------------------------------------------------------------------------------------------

/**
 * A factory name: 1 to 64 characters of `[A-Za-z0-9._-]`, not shaped like a ULID (buildomat
 * refuses ULID-like names so that "id or name" arguments are never ambiguous).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryName = Schema.String.pipe(
  Schema.filter((s) => /^[A-Za-z0-9._-]{1,64}$/.test(s), {
    message: (i) => `a factory name is 1 to 64 characters of [A-Za-z0-9._-], got ${JSON.stringify(i.actual)}`
  }),
  Schema.filter((s) => !/^[A-Za-z0-9]{26}$/.test(s), {
    message: (i) => `a factory name must not look like a ULID, got ${JSON.stringify(i.actual)}`
  })
)

/**
 * A factory as administrators see it (`GET /0/admin/factories`). `enable: false` means it gets
 * no leases; `hold_workers: true` means every worker it creates starts held. `last_ping` is when
 * it last pinged or asked for a lease (for in-process providers: when the provisioning loop last
 * ran for it).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Factory = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  last_ping: Schema.optional(Schema.NullOr(Timestamp)),
  enable: Schema.Boolean,
  hold_workers: Schema.Boolean
}).annotations({ identifier: "Factory" })
/** @since 0.1.0 @category models */
export type Factory = typeof Factory.Type

/** `POST /0/admin/factory` body. @since 0.1.0 @category schemas */
export const FactoryCreate = Schema.Struct({ name: FactoryName }).annotations({ identifier: "FactoryCreate" })

/**
 * `POST /0/admin/factory` result: the factory's bearer `token` is shown once, here, and stored
 * only as a hash.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryCreateResult = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  token: Schema.String
}).annotations({ identifier: "FactoryCreateResult" })

/**
 * `POST /0/admin/factory/{factory}/enable` body: enables the factory and sets `hold_workers`
 * (default false).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryEnable = Schema.Struct({
  hold_workers: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "FactoryEnable" })

// ---------------------------------------------------------------------------------------------
// The factory protocol
// ---------------------------------------------------------------------------------------------

/** `GET /0/factory/ping` result: always `{ ok: true }`. @since 0.1.0 @category schemas */
export const FactoryPingResult = Schema.Struct({ ok: Schema.Boolean }).annotations({ identifier: "FactoryPingResult" })

/**
 * `POST /0/factory/lease` body: the ids of the targets the factory can make workers for.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryWhatsNext = Schema.Struct({
  supported_targets: Schema.Array(Ids.TargetId)
}).annotations({ identifier: "FactoryWhatsNext" })

/**
 * A lease: the factory may make a worker for `target` (an id) on behalf of queued `job`. Leases
 * are advisory and in memory; they last 60 seconds unless renewed.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryLease = Schema.Struct({ job: Schema.String, target: Schema.String }).annotations({
  identifier: "FactoryLease"
})

/** `POST /0/factory/lease` result: a lease, or null. @since 0.1.0 @category schemas */
export const FactoryLeaseResult = Schema.Struct({
  lease: Schema.optional(Schema.NullOr(FactoryLease))
}).annotations({ identifier: "FactoryLeaseResult" })

/**
 * `POST /0/factory/worker` body: make a worker record for `target` (an id), optionally bound to
 * `job` at once, and with `wait_for_flush` the job is withheld from the agent until the factory
 * flushes the boot logs it forwards (`POST /0/factory/worker/{worker}/flush`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryWorkerCreate = Schema.Struct({
  target: Ids.TargetId,
  job: Schema.optional(Schema.NullOr(Ids.JobId)),
  wait_for_flush: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "FactoryWorkerCreate" })

/**
 * A worker as its factory sees it. `bootstrap` is the secret the machine hands to the agent;
 * the server keeps only its hash, so it is given in full only in the response to
 * `POST /0/factory/worker` and is empty elsewhere. `recycle` is true when the factory should
 * destroy the machine (never while the worker is held); `online` once the agent bootstrapped.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryWorker = Schema.Struct({
  id: Schema.String,
  private: Schema.optional(Schema.NullOr(Schema.String)),
  recycle: Schema.Boolean,
  bootstrap: Schema.String,
  online: Schema.Boolean,
  hold: Schema.Boolean,
  target: Schema.String
}).annotations({ identifier: "FactoryWorker" })
/** @since 0.1.0 @category models */
export type FactoryWorker = typeof FactoryWorker.Type

/** `GET /0/factory/worker/{worker}` result: null once the worker is gone. @since 0.1.0 @category schemas */
export const FactoryWorkerResult = Schema.Struct({
  worker: Schema.optional(Schema.NullOr(FactoryWorker))
}).annotations({ identifier: "FactoryWorkerResult" })

/**
 * An IPv4 range a worker may use (buildomat `FactoryAddresses`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryAddresses = Schema.Struct({
  name: Schema.String,
  cidr: Schema.String,
  first: Schema.String,
  count: Uint32,
  routed: Schema.Boolean,
  gateway: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "FactoryAddresses" })

/**
 * What a factory tells the agent about its machine (buildomat `FactoryMetadata`, version `"1"`):
 * address ranges, root credentials, dump device size in MB, pre- and post-job diagnostic
 * scripts, whether to disable ZFS sync. Handed to the agent in `GET /0/worker/ping`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryMetadata = Schema.Struct({
  // The agent's view (`Workers.FactoryMetadata`), with every address checked here: a factory
  // must send well-formed ones, while the agent keeps the good ones of what it is sent.
  ...Workers.FactoryMetadata.fields,
  addresses: Schema.optionalWith(Schema.Array(FactoryAddresses), { default: () => [] })
}).annotations({ identifier: "FactoryMetadata" })
/** @since 0.1.0 @category models */
export type FactoryMetadata = typeof FactoryMetadata.Type

/**
 * `PATCH /0/factory/worker/{worker}` body: associate the worker with the factory's machine.
 * `private` (the machine's id) is write-once; `ip` is diagnostic and may change; `metadata` is
 * write-once (compared as JSON). The agent cannot bootstrap before this.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryWorkerAssociate = Schema.Struct({
  private: Schema.String,
  ip: Schema.optional(Schema.NullOr(Schema.String)),
  metadata: Schema.optional(Schema.NullOr(FactoryMetadata))
}).annotations({ identifier: "FactoryWorkerAssociate" })

/**
 * `POST /0/factory/worker/{worker}/append` body: one line of the machine's console (stream
 * `console`, `panic`, ...), stamped with the factory's clock.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryWorkerAppend = Schema.Struct({
  stream: Workers.StreamName,
  time: Timestamp,
  payload: Schema.String
}).annotations({ identifier: "FactoryWorkerAppend" })

/**
 * `POST /0/factory/worker/{worker}/append` result: `retry: true` when the worker has no job yet
 * to hold the line; the factory keeps it and sends it again later.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryWorkerAppendResult = Schema.Struct({ retry: Schema.Boolean }).annotations({
  identifier: "FactoryWorkerAppendResult"
})

// ---------------------------------------------------------------------------------------------
// Additions: the reconcile loop's report (`POST /ext/0/factory/status`)
// ---------------------------------------------------------------------------------------------

/**
 * How full a factory is for one target, by target name: `workers` live (not deleted) workers of
 * the target, at most `limit`; `warm` spare workers wanted ahead of demand; `spare` of them
 * spare now (not held, no job).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryTargetReport = Schema.Struct({
  name: Schema.String,
  limit: Uint32,
  workers: Uint32,
  warm: Uint32,
  spare: Uint32
}).annotations({ identifier: "FactoryTargetReport" })
/** @since 0.1.0 @category models */
export type FactoryTargetReport = typeof FactoryTargetReport.Type

/**
 * `POST /ext/0/factory/status` body (an addition to buildomat's API): what the factory's
 * reconcile loop serves and how full it is: `limit` and `workers` over all targets, and per
 * target. The server keeps the last report of each factory in memory, to say why a job waits
 * (`GET /ext/0/jobs/{job}/why`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryReport = Schema.Struct({
  limit: Uint32,
  workers: Uint32,
  targets: Schema.Array(FactoryTargetReport)
}).annotations({ identifier: "FactoryReport" })
/** @since 0.1.0 @category models */
export type FactoryReport = typeof FactoryReport.Type

/**
 * `POST /ext/0/factory/status` result: what a reconcile loop needs beyond buildomat's factory
 * routes. `enable` and `hold_workers` are the factory's switches, `hold` the global "hold new
 * worker creation" flag; `targets` maps each reported target name to its id (`id: null` when the
 * server has no target of that name); `jobs` lists the factory's workers that have a job (so
 * that the loop can tell spare workers from busy ones).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryStatus = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  enable: Schema.Boolean,
  hold_workers: Schema.Boolean,
  hold: Schema.Boolean,
  targets: Schema.Array(Schema.Struct({ name: Schema.String, id: Schema.NullOr(Schema.String) })),
  jobs: Schema.Array(Schema.Struct({ worker: Schema.String, job: Schema.String }))
}).annotations({ identifier: "FactoryStatus" })
/** @since 0.1.0 @category models */
export type FactoryStatus = typeof FactoryStatus.Type
