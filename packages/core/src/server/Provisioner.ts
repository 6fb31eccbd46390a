/**
 * The provisioning loop: runs the core reconcile loop (`Factory.makeReconciler`, buildomat's
 * factory protocol) for every in-process `WorkerProvider`, the same code a separate factory
 * process runs with `Factory.run`. Here the backend calls the server's stores directly instead
 * of the factory API. Woken by submit, bootstrap and completion (10 ms after the wake-up), and
 * every second.
 *
 * Each provider is a factory: it has a factory record (named after it, without a token), made at
 * start, and its workers refer to that record's id, as in buildomat's schema. So the factory
 * switches apply to it: a disabled factory, or the global hold (`POST /0/control/hold`), stops it
 * creating workers (recycled ones are still destroyed); `hold_workers` makes its new workers start
 * held. It takes leases like any factory (so it leaves alone jobs another factory holds a lease
 * on), keeps each target's warm pool, gives up workers that do not bootstrap within the boot
 * timeout (the provider's `bootTimeoutMs`, else `ServerOptions.bootTimeoutMs`, else 30 minutes)
 * and workers whose machine the provider no longer lists, reaps machines no live worker owns,
 * and never touches a held worker.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as Factory from "../Factory.js"
import * as Ids from "../Ids.js"
import { sleep } from "../internal/wallClock.js"
import { WorkerProviders } from "../WorkerProvider.js"
import { ServerConfig, ServerUrl } from "./Config.js"
import { FactoryStore } from "./FactoryStore.js"
import { Signals } from "./Signals.js"

/**
 * Makes sure a target row exists for every target name a provider serves, and for each name in
 * `ServerConfig.targets`, so that jobs can name them. Existing targets are left as they are.
 *
 * @since 0.1.0
 * @category loops
 */
export const ensureTargets = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const providers = yield* WorkerProviders
  const config = yield* ServerConfig
  const wanted: Array<readonly [string, string]> = providers.flatMap((p) => p.targets.map((t) => [t, `served by ${p.name}`] as const))
  for (const t of config.targets ?? []) wanted.push([t, "served by a factory process"])
  for (const [name, desc] of wanted) {
    const existing = yield* sql`SELECT 1 FROM target WHERE name = ${name}`
    if (existing.length === 0) yield* sql`INSERT INTO target ${sql.insert({ id: Ids.make(), name, desc })}`
  }
}).pipe(Effect.orDie)

const wrap = (what: string) => <A, E extends { readonly message: string }, R>(self: Effect.Effect<A, E, R>) =>
  Effect.mapError(self, (e) => new Factory.FactoryBackendError({ message: `${what}: ${e.message}`, cause: e }))

/**
 * The backend of an in-process provider whose factory record is `factory` (an id): the factory
 * protocol as calls on `FactoryStore`, with the same checks and effects as the HTTP routes
 * (leases, `hold_workers`, write-once association, boot-log lines, deletion).
 *
 * @since 0.1.0
 * @category constructors
 */
export const inProcessBackend = (factory: string) =>
  Effect.map(FactoryStore, (factories): Factory.FactoryBackend => ({
    status: (report) => factories.status(factory, report).pipe(wrap("status")),
    workers: factories.listWorkers(factory),
    lease: (targets) => factories.grant(factory, targets).pipe(wrap("lease")),
    renew: (job) => factories.renew(factory, job),
    createWorker: (target) => factories.createWorker(factory, { target }).pipe(wrap("create worker")),
    associate: (worker, instance) =>
      Effect.flatMap(Factory.association(instance), (body) =>
        factories.associate(factory, worker, body).pipe(wrap(`associate worker ${worker}`))),
    append: (worker, stream, payload) =>
      factories.append(factory, worker, { stream, time: new Date().toISOString(), payload }).pipe(
        Effect.asVoid,
        wrap(`append to worker ${worker}`)
      ),
    destroyWorker: (worker) => factories.destroyWorker(factory, worker).pipe(Effect.asVoid, wrap(`delete worker ${worker}`))
  }))

/**
 * A pass waits 10 ms after its wake-up, to let the dispatch in progress finish and to coalesce
 * wake-ups. Real time, not the `Clock` service's: a scheduling detail, not a timed behaviour.
 */
const passDelay = sleep(10)

/**
 * The loop as a layer: a reconciler per provider (on its factory record, made if missing), one
 * pass over all of them whenever woken and at least every second. A failing pass is logged and
 * the loop goes on. When the layer closes, every worker still alive is destroyed by its
 * provider's own scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const signals = yield* Signals
    const factories = yield* FactoryStore
    const config = yield* ServerConfig
    const url = yield* ServerUrl
    yield* ensureTargets
    const reconcilers: Array<Factory.Reconciler> = []
    for (const p of yield* WorkerProviders) {
      const f = yield* factories.ensureInProcess(p.name)
      const backend = yield* inProcessBackend(f.id)
      reconcilers.push(yield* Factory.makeReconciler(p, backend, { url, bootTimeoutMs: config.bootTimeoutMs }))
    }
    const pass = Effect.forEach(reconcilers, (r) =>
      r.once.pipe(
        Effect.catchAllCause((c) => Effect.logError(`provisioning pass of ${r.provider.name} failed`, c))
      ), { discard: true })
    yield* pass.pipe(
      Effect.zipRight(signals.provisioner.wait("1 second")),
      // A wake-up comes with a submit or an assignment; answering the agent that was assigned a
      // job goes first (a pass takes milliseconds of the one event loop), and the wake-ups of a
      // burst of submits make one pass.
      Effect.zipRight(passDelay),
      Effect.forever,
      Effect.forkScoped
    )
  })
)
