/**
 * The reconcile loop that drives any `WorkerProvider`, and the factory process built on it.
 *
 * One algorithm (buildomat §4.1, with the reconciliation of its AWS factory, §4.3) runs in two
 * places with the same provider code:
 *
 * - inside the server process: `@buildomat/core/server`'s `Provisioner` layer gives each
 *   in-process provider a `FactoryBackend` that calls the server's stores directly;
 * - as a separate factory process: `run(provider, { url, token })` gives it a backend that speaks
 *   the factory API (`/0/factory/...`) over HTTP with a factory token.
 *
 * Each pass (`makeReconciler(...).once`):
 *
 * 1. Reads the factory's switches, target ids and busy workers (`status`, which also reports how
 *    full the factory is), its live workers (`GET /0/factory/workers`) and the provider's
 *    machines (`list`).
 * 2. For each worker, leaving held ones alone: destroys the machine of a recycled worker and
 *    deletes the worker (`DELETE /0/factory/worker/{w}`); deletes a worker never associated with
 *    a machine (creation crashed); gives up a worker whose agent has not bootstrapped within the
 *    boot timeout (the provider's `bootTimeoutMs`, else the loop's, 30 minutes by default:
 *    buildomat's "never bootstrapped"); gives up a worker whose machine the provider no longer
 *    lists (a control event in its running job says so; the job then fails); and renews the
 *    lease of a worker still booting (`POST /0/factory/lease/{job}`).
 * 3. Destroys machines no live worker owns (orphans: a crash between creation and record, a
 *    worker deleted behind the factory's back).
 * 4. Unless the factory is disabled or creation is on hold: while a target has room (its
 *    `TargetPolicy.limit` and the provider's `limit`), takes a lease (`POST /0/factory/lease`),
 *    creates a worker record (`POST /0/factory/worker`), the machine (`create`, with the lease's
 *    job as a hint), and associates them (`PATCH /0/factory/worker/{w}`); then tops up each
 *    target's warm pool (`TargetPolicy.warm`) with workers made ahead of demand.
 *
 * Any error of the backend aborts the pass (as buildomat's factories); the next pass starts over.
 * A failing `list` skips steps 2's vanished-machine check and step 3, since it cannot tell.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { Data, Effect, Ref, Schema } from "effect"
import * as Client from "./Client.js"
import { FactoryMetadata } from "./Factories.js"
import type { FactoryReport, FactoryStatus, FactoryWorker, FactoryWorkerAssociate } from "./Factories.js"
import * as Ids from "./Ids.js"
import type { WorkerInstance, WorkerProvider } from "./WorkerProvider.js"

/**
 * How long a worker's agent may take to bootstrap when its provider sets no `bootTimeoutMs`, in
 * milliseconds: 30 minutes, buildomat's "never bootstrapped" rule (§5.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_BOOT_TIMEOUT_MS = 30 * 60 * 1000

/**
 * The pause between passes of a factory process, in milliseconds (1 s; buildomat's AWS factory
 * waits 7 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_INTERVAL_MS = 1000

/**
 * A call of the backend failed (the server refused it, or could not be reached). The pass stops
 * there; the next one starts over.
 *
 * @since 0.1.0
 * @category errors
 */
export class FactoryBackendError extends Data.TaggedError("FactoryBackendError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A lease: the factory may make a worker for `target` (an id) on behalf of queued `job`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease {
  readonly job: string
  readonly target: string
}

/**
 * The server as a factory sees it: the factory protocol (buildomat §2.6), one method per route.
 * Implementations: `remoteBackend` (HTTP with a factory token) and the server's in-process one
 * (`Provisioner.inProcessBackend`).
 *
 * - `status(report)`: `POST /ext/0/factory/status`: reports how full the factory is; returns its
 *   switches, the ids of its target names and its busy workers.
 * - `workers`: `GET /0/factory/workers`: the factory's workers not yet deleted.
 * - `lease(targets)`: `POST /0/factory/lease` with target ids; null if none.
 * - `renew(job)`: `POST /0/factory/lease/{job}`; false if the lease is gone.
 * - `createWorker(target)`: `POST /0/factory/worker` for a target id, with its bootstrap secret.
 * - `associate(worker, instance)`: `PATCH /0/factory/worker/{w}` with the instance id, IP and
 *   metadata.
 * - `append(worker, stream, payload)`: `POST /0/factory/worker/{w}/append`: a line in the
 *   worker's job.
 * - `destroyWorker(worker)`: `DELETE /0/factory/worker/{w}`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FactoryBackend {
  readonly status: (report: FactoryReport) => Effect.Effect<FactoryStatus, FactoryBackendError>
  readonly workers: Effect.Effect<ReadonlyArray<FactoryWorker>, FactoryBackendError>
  readonly lease: (targets: ReadonlyArray<string>) => Effect.Effect<Lease | null, FactoryBackendError>
  readonly renew: (job: string) => Effect.Effect<boolean, FactoryBackendError>
  readonly createWorker: (target: string) => Effect.Effect<FactoryWorker, FactoryBackendError>
  readonly associate: (worker: string, instance: WorkerInstance) => Effect.Effect<void, FactoryBackendError>
  readonly append: (worker: string, stream: string, payload: string) => Effect.Effect<void, FactoryBackendError>
  readonly destroyWorker: (worker: string) => Effect.Effect<void, FactoryBackendError>
}

/**
 * How a reconciler runs: `url` is the server URL handed to the provider for its agents;
 * `bootTimeoutMs` the boot timeout for providers without their own (default
 * `DEFAULT_BOOT_TIMEOUT_MS`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconcileOptions {
  readonly url: string
  readonly bootTimeoutMs?: number | undefined
}

/**
 * What one pass did: worker ids `created` and `deleted`, orphan instance ids `reaped`, and the
 * number of `live` workers (held ones included) at the end.
 *
 * @since 0.1.0
 * @category models
 */
export interface PassResult {
  readonly created: ReadonlyArray<string>
  readonly deleted: ReadonlyArray<string>
  readonly reaped: ReadonlyArray<string>
  readonly live: number
}

/**
 * A provider's loop: `once` runs one pass (see the module documentation). It keeps, between
 * passes, which lease each booting worker was made for (to renew it) and the last report sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reconciler {
  readonly provider: WorkerProvider
  readonly once: Effect.Effect<PassResult, FactoryBackendError>
}

/** The limit and warm pool size of one target of a provider. */
const policyOf = (provider: WorkerProvider, name: string) => {
  const p = provider.policies?.[name]
  const limit = Math.max(0, Math.min(provider.limit, p?.limit ?? provider.limit))
  return { limit, warm: Math.max(0, Math.min(limit, p?.warm ?? 0)) }
}

const decodeMetadata = Schema.decodeUnknown(FactoryMetadata)

/**
 * What a machine is associated with (`PATCH /0/factory/worker/{worker}`, buildomat's
 * `FactoryWorkerAssociate`): its instance id as `private`, its address, and the provider's
 * metadata if it is valid `FactoryMetadata` (buildomat's, `v: "1"`). Metadata that is not is left
 * out, with a warning in the log that names the instance and says what is wrong (the machine is
 * still associated: it can run jobs, without the diagnostics or keys the metadata would have
 * given it).
 *
 * @since 0.1.0
 * @category utils
 */
export const association = (instance: WorkerInstance): Effect.Effect<typeof FactoryWorkerAssociate.Type> =>
  Effect.map(
    instance.metadata === undefined
      ? Effect.succeed(undefined)
      : decodeMetadata(instance.metadata).pipe(
        Effect.catchAll((e) =>
          Effect.logWarning(
            `the provider's metadata for instance ${instance.instanceId} is not buildomat factory metadata, and is left out: ${e.message}`
          ).pipe(Effect.as(undefined))
        )
      ),
    (metadata) => ({
      private: instance.instanceId,
      ...(instance.ip !== undefined ? { ip: instance.ip } : {}),
      ...(metadata !== undefined ? { metadata } : {})
    })
  )

/**
 * Makes the reconcile loop of `provider` against `backend` (see the module documentation for
 * one pass). Never fails to make; `once` fails with `FactoryBackendError` when the backend does.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReconciler = (
  provider: WorkerProvider,
  backend: FactoryBackend,
  options: ReconcileOptions
): Effect.Effect<Reconciler> =>
  Effect.gen(function*() {
    const bootTimeoutMs = provider.bootTimeoutMs ?? options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS
    /** The lease each worker still booting was made for: worker id → job id. */
    const leases = yield* Ref.make(new Map<string, string>())
    let lastListAt = 0
    const lastReport = yield* Ref.make<FactoryReport>({
      limit: provider.limit,
      workers: 0,
      targets: provider.targets.map((name) => ({ name, ...policyOf(provider, name), workers: 0, spare: 0 }))
    })
    const warned = new Set<string>()
    const warnOnce = (key: string, message: string) =>
      warned.has(key) ? Effect.void : Effect.sync(() => warned.add(key)).pipe(Effect.zipRight(Effect.logWarning(message)))

    const once = Effect.gen(function*() {
      const status = yield* backend.status(yield* Ref.get(lastReport))
      const idOf = new Map<string, string>()
      const nameOf = new Map<string, string>()
      for (const t of status.targets) {
        if (t.id === null) {
          yield* warnOnce(
            `target:${t.name}`,
            `target ${JSON.stringify(t.name)} does not exist on the server; ` +
              `no workers for it (create it: buildomat admin target create ${t.name})`
          )
          continue
        }
        idOf.set(t.name, t.id)
        nameOf.set(t.id, t.name)
      }
      const busy = new Set(status.jobs.map((j) => j.worker))
      const workers = yield* backend.workers
      // A listing may cost an API call (EC2 DescribeInstances): at most one per `listIntervalMs`.
      const due = provider.listIntervalMs === undefined || Date.now() - lastListAt >= provider.listIntervalMs
      const listed = due ? yield* Effect.either(provider.list) : undefined
      if (listed?._tag === "Left") {
        yield* Effect.logWarning(`list: ${listed.left.message}; not checking for vanished or orphaned machines`)
      }
      if (due) lastListAt = Date.now()
      const instances = listed?._tag === "Right" ? listed.right : undefined
      const present = instances === undefined ? undefined : new Set(instances.map((i) => i.instanceId))

      const kept: Array<FactoryWorker> = []
      const deleted: Array<string> = []
      const destroyedMachines = new Set<string>()
      const leaseMap = yield* Ref.get(leases)

      /** Destroys the worker's machine, then its record; keeps the worker if the machine stays. */
      const teardown = (w: FactoryWorker) =>
        Effect.gen(function*() {
          if (w.private != null) {
            const gone = yield* provider.destroy(w.private).pipe(
              Effect.as(true),
              Effect.catchAll((e) => Effect.logWarning(`destroy ${w.private} of worker ${w.id}: ${e.message}`).pipe(Effect.as(false)))
            )
            if (!gone) return kept.push(w)
            destroyedMachines.add(w.private)
          }
          yield* backend.destroyWorker(w.id)
          deleted.push(w.id)
        })

      const t = Date.now() // ULIDs carry wall-clock time
      for (const w of workers) {
        if (w.hold) {
          kept.push(w)
          continue
        }
        if (w.recycle) {
          yield* teardown(w)
          continue
        }
        if (w.private == null) {
          yield* Effect.logWarning(`worker ${w.id} was never associated with a machine (creation interrupted); deleting it`)
          yield* backend.destroyWorker(w.id)
          deleted.push(w.id)
          continue
        }
        if (!w.online && t - Ids.timestamp(w.id) > bootTimeoutMs) {
          yield* Effect.logWarning(
            `worker ${w.id} (instance ${w.private}) did not bootstrap within ${bootTimeoutMs} ms; giving it up`
          )
          yield* teardown(w)
          continue
        }
        if (present !== undefined && !present.has(w.private)) {
          const why = `instance ${w.private} of worker ${w.id} is gone from provider ${provider.name}`
          yield* Effect.logWarning(`${why}; deleting the worker`)
          if (busy.has(w.id)) yield* backend.append(w.id, "control", `${why} (terminated outside buildomat?); aborting job`)
          yield* backend.destroyWorker(w.id)
          deleted.push(w.id)
          continue
        }
        const job = leaseMap.get(w.id)
        if (!w.online && job !== undefined && !(yield* backend.renew(job))) leaseMap.delete(w.id)
        kept.push(w)
      }

      // Machines no live worker owns.
      const reaped: Array<string> = []
      if (instances !== undefined) {
        const owned = new Set(kept.map((w) => w.private).filter((p) => p != null))
        for (const i of instances) {
          if (owned.has(i.instanceId) || destroyedMachines.has(i.instanceId)) continue
          yield* Effect.logWarning(`instance ${i.instanceId} (worker ${i.worker}) belongs to no live worker; destroying it`)
          yield* provider.destroy(i.instanceId).pipe(
            Effect.zipRight(Effect.sync(() => reaped.push(i.instanceId))),
            Effect.catchAll((e) => Effect.logWarning(`destroy orphan ${i.instanceId}: ${e.message}`))
          )
        }
      }

      // Counts by target name.
      const live = new Map<string, number>()
      const spare = new Map<string, number>()
      const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)
      for (const w of kept) {
        const name = nameOf.get(w.target) ?? w.target
        add(live, name)
        if (!w.hold && !busy.has(w.id)) add(spare, name)
      }
      let total = kept.length
      const room = (name: string) => Math.min(provider.limit - total, policyOf(provider, name).limit - (live.get(name) ?? 0))

      const created: Array<string> = []
      const create = (name: string, target: string, job: string | undefined) =>
        Effect.gen(function*() {
          const w = yield* backend.createWorker(target)
          const made = yield* Effect.either(
            provider.create({ worker: w.id, target: name, url: options.url, bootstrap: w.bootstrap, lease: job })
          )
          if (made._tag === "Left") {
            yield* Effect.logWarning(`could not create a worker for ${name}: ${made.left.message}`)
            yield* backend.destroyWorker(w.id)
            return false
          }
          const associated = yield* Effect.either(backend.associate(w.id, made.right))
          if (associated._tag === "Left") {
            yield* provider.destroy(made.right.instanceId).pipe(Effect.ignore)
            return yield* associated.left
          }
          if (job !== undefined) leaseMap.set(w.id, job)
          total++
          add(live, name)
          if (!w.hold) add(spare, name)
          created.push(w.id)
          return true
        })

      if (status.enable && !status.hold) {
        // Demand: one worker per lease.
        for (;;) {
          const open = provider.targets.filter((n) => idOf.has(n) && room(n) > 0)
          if (open.length === 0) break
          const lease = yield* backend.lease(open.map((n) => idOf.get(n)!))
          if (lease === null) break
          const name = nameOf.get(lease.target)
          if (name === undefined) {
            yield* Effect.logError(`the server leased job ${lease.job} of target ${lease.target}, which is not ours`)
            break
          }
          if (!(yield* create(name, lease.target, lease.job))) break
        }
        // Warm pools: spare workers made ahead of demand (pointless while they would start held).
        if (!status.hold_workers) {
          pools: for (const name of provider.targets) {
            const target = idOf.get(name)
            if (target === undefined) continue
            const { warm } = policyOf(provider, name)
            while ((spare.get(name) ?? 0) < warm && room(name) > 0) {
              if (!(yield* create(name, target, undefined))) break pools
            }
          }
        }
      }

      const keep = new Set(kept.map((w) => w.id).concat(created))
      for (const w of [...leaseMap.keys()]) if (!keep.has(w)) leaseMap.delete(w)
      yield* Ref.set(leases, leaseMap)

      const report: FactoryReport = {
        limit: provider.limit,
        workers: total,
        targets: provider.targets.map((name) => ({
          name,
          ...policyOf(provider, name),
          workers: live.get(name) ?? 0,
          spare: spare.get(name) ?? 0
        }))
      }
      if (JSON.stringify(report) !== JSON.stringify(yield* Ref.get(lastReport))) {
        yield* backend.status(report)
        yield* Ref.set(lastReport, report)
      }
      return { created, deleted, reaped, live: total } satisfies PassResult
    }).pipe(Effect.annotateLogs({ provider: provider.name }), Effect.withSpan("Factory.reconcile"))

    return { provider, once }
  })

const describe = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const o = e as { _tag?: unknown; message?: unknown }
    const tag = typeof o._tag === "string" ? o._tag : undefined
    const message = typeof o.message === "string" && o.message !== "" ? o.message : undefined
    if (tag !== undefined && message !== undefined) return `${tag}: ${message}`
    if (message !== undefined) return message
    if (tag !== undefined) return tag
  }
  return String(e)
}

const wrap = (what: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.mapError(self, (e) => new FactoryBackendError({ message: `${what}: ${describe(e)}`, cause: e }))

/**
 * A backend that speaks the factory API over HTTP, through `api` (a client made with a factory
 * token: `Client.make({ url, token })`). Every failure (transport, refusal, a response that does
 * not decode) becomes a `FactoryBackendError` naming the route.
 *
 * @since 0.1.0
 * @category constructors
 */
export const remoteBackend = (api: Client.ApiClient): FactoryBackend => ({
  status: (report) => api.factory.status({ payload: report }).pipe(wrap("POST /ext/0/factory/status")),
  workers: api.factory.workers().pipe(wrap("GET /0/factory/workers")),
  lease: (targets) =>
    api.factory.lease({ payload: { supported_targets: targets as ReadonlyArray<Ids.TargetId> } }).pipe(
      Effect.map((r) => r.lease ?? null),
      wrap("POST /0/factory/lease")
    ),
  renew: (job) => api.factory.leaseRenew({ path: { job: job as Ids.JobId } }).pipe(wrap(`POST /0/factory/lease/${job}`)),
  createWorker: (target) =>
    api.factory.workerCreate({ payload: { target: target as Ids.TargetId } }).pipe(wrap("POST /0/factory/worker")),
  associate: (worker, instance) =>
    Effect.flatMap(association(instance), (payload) =>
      api.factory.workerAssociate({ path: { worker: worker as Ids.WorkerId }, payload }).pipe(
        wrap(`PATCH /0/factory/worker/${worker}`)
      )),
  append: (worker, stream, payload) =>
    api.factory.workerAppend({
      path: { worker: worker as Ids.WorkerId },
      payload: { stream, time: new Date().toISOString(), payload }
    }).pipe(Effect.asVoid, wrap(`POST /0/factory/worker/${worker}/append`)),
  destroyWorker: (worker) =>
    api.factory.workerDestroy({ path: { worker: worker as Ids.WorkerId } }).pipe(
      Effect.asVoid,
      wrap(`DELETE /0/factory/worker/${worker}`)
    )
})

/**
 * How to run a factory process:
 *
 * - `url`: the core server's URL.
 * - `token`: the factory's bearer token (`buildomat admin factory create NAME` shows it once).
 * - `agentUrl`: the URL the provider's agents reach the server at, if not `url`.
 * - `intervalMs`: the pause between passes; default `DEFAULT_INTERVAL_MS` (1 s).
 * - `bootTimeoutMs`: the boot timeout for a provider without its own; default
 *   `DEFAULT_BOOT_TIMEOUT_MS` (30 min).
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  readonly url: string
  readonly token: string
  readonly agentUrl?: string | undefined
  readonly intervalMs?: number | undefined
  readonly bootTimeoutMs?: number | undefined
}

/**
 * Runs `provider` as a separate factory process: the reconcile loop against the server's factory
 * API at `url` with a factory `token`, a pass every `intervalMs`, forever. A failing pass (the
 * server away, the token refused) is logged and the next one starts over. Interrupt it to stop;
 * the provider's machines live as long as its own scope.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const provider = yield* LocalProvider.make({ scratchRoot: "/var/tmp/buildomat" })
 *   return yield* Factory.run(provider, { url: "http://ci.example:9979", token })
 * })
 * program.pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici), NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const run = (provider: WorkerProvider, options: RunOptions): Effect.Effect<never, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url: options.url, token: options.token })
    const reconciler = yield* makeReconciler(provider, remoteBackend(client.api), {
      url: options.agentUrl ?? options.url,
      bootTimeoutMs: options.bootTimeoutMs
    })
    yield* Effect.logInfo(`factory process for provider ${provider.name} (targets ${provider.targets.join(", ")}) on ${options.url}`)
    return yield* reconciler.once.pipe(
      Effect.catchAllCause((cause) => Effect.logError("factory pass failed", cause)),
      Effect.zipRight(Effect.sleep(options.intervalMs ?? DEFAULT_INTERVAL_MS)),
      Effect.forever
    )
  })
