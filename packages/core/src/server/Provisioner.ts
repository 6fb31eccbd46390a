/**
 * The provisioning loop: drives every `WorkerProvider` (buildomat's factory protocol, run
 * in-process). It destroys recycled workers, asks for a new worker when a job is queued for a
 * target and no worker of that target is free or booting (never more than the provider's limit),
 * and destroys machines that no live worker owns. It gives up workers whose agent does not
 * bootstrap within the provider's `bootTimeoutMs`, and workers whose machine the provider no
 * longer lists (their running job fails with a control event that says so). Woken by submit and
 * completion, and every second.
 *
 * Each provider is a factory: it has a factory record (named after it, without a token), made at
 * start, and its workers refer to that record's id, as in buildomat's schema. So the factory
 * switches apply to it: a disabled factory, or the global hold (`POST /0/control/hold`), stops it
 * creating workers (recycled ones are still destroyed); `hold_workers` makes its new workers start
 * held. It leaves alone jobs an out-of-process factory holds a lease on, and never destroys a held
 * worker.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Option } from "effect"
import * as Ids from "../Ids.js"
import { type WorkerProvider, WorkerProviders } from "../WorkerProvider.js"
import { ServerUrl } from "./Config.js"
import { Control } from "./Control.js"
import { FactoryStore, HOLD_WORKERS_REASON } from "./FactoryStore.js"
import { JobStore } from "./JobStore.js"
import { Signals } from "./Signals.js"
import { WorkerStore } from "./WorkerStore.js"

/**
 * Makes sure a target row exists for every target name a provider serves, so that jobs can
 * name them. Existing targets are left as they are.
 *
 * @since 0.1.0
 * @category loops
 */
export const ensureTargets = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const providers = yield* WorkerProviders
  for (const p of providers) {
    for (const name of p.targets) {
      const existing = yield* sql`SELECT 1 FROM target WHERE name = ${name}`
      if (existing.length === 0) {
        yield* sql`INSERT INTO target ${sql.insert({ id: Ids.make(), name, desc: `served by ${p.name}` })}`
      }
    }
  }
}).pipe(Effect.orDie)

const provisionProvider = (p: WorkerProvider) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const workers = yield* WorkerStore
    const factories = yield* FactoryStore
    const control = yield* Control
    const jobs = yield* JobStore
    const url = yield* ServerUrl

    const f = yield* factories.ensureInProcess(p.name)
    // `last_ping` of an in-process factory: when its loop last ran (written at most every 10 s).
    yield* sql`UPDATE factory SET lastping = ${new Date().toISOString()} WHERE id = ${f.id}
      AND (lastping IS NULL OR lastping < ${new Date(Date.now() - 10_000).toISOString()})`
    const live = yield* workers.liveOf(f.id)
    const givenUp = new Set<string>()
    let count = 0
    for (const w of live) {
      // A hung boot (buildomat's AWS factory: not online 8 minutes after creation) is given up.
      const hung = !w.recycle && w.hold_time === null && w.token_hash === null && p.bootTimeoutMs !== undefined &&
        Date.now() - Date.parse(w.time_create) > p.bootTimeoutMs
      if (hung) {
        yield* Effect.logWarning(
          `provider ${p.name}: worker ${w.id} (instance ${w.factory_private ?? "-"}) did not bootstrap within ${p.bootTimeoutMs} ms; giving it up`
        )
        yield* workers.recycle(w.id)
        givenUp.add(w.id)
      }
      if ((w.recycle || hung) && w.hold_time === null) {
        if (w.factory_private !== null) {
          const destroyed = yield* p.destroy(w.factory_private).pipe(
            Effect.as(true),
            Effect.catchAll((e) => Effect.logWarning(`provider ${p.name}: destroy ${w.id}: ${e.message}`).pipe(Effect.as(false)))
          )
          if (!destroyed) {
            count++
            continue
          }
        }
        yield* workers.markDeleted(w.id)
      } else {
        count++
      }
    }

    const creating = f.enable === 1 && !(yield* control.held)
    const leased = creating ? yield* factories.leasedByOthers(f.id) : new Set<string>()
    for (const name of creating ? p.targets : []) {
      const [t] = yield* sql<{ id: string }>`SELECT id FROM target WHERE name = ${name}`
      if (t === undefined) continue
      const queuedJobs = (yield* sql<{ id: string }>`
        SELECT id FROM job
        WHERE complete = 0 AND waiting = 0 AND worker IS NULL AND cancelled = 0 AND target_id = ${t.id} ORDER BY id`)
        .filter((j) => !leased.has(j.id))
      const queued = queuedJobs.length
      const spare = live.filter((w) =>
        w.target === t.id && !w.recycle && !givenUp.has(w.id) && !w.has_job && w.hold_time === null
      ).length
      let need = queued - spare
      while (need > 0 && count < p.limit) {
        const w = yield* workers.create(f.id, t.id, { hold: f.hold_workers ? HOLD_WORKERS_REASON : undefined })
        const lease = queuedJobs[queued - need]?.id
        const made = yield* p.create({ worker: w.id, target: name, url, bootstrap: w.bootstrap, lease }).pipe(Effect.either)
        if (made._tag === "Left") {
          yield* Effect.logWarning(`provider ${p.name}: could not create a worker for ${name}: ${made.left.message}`)
          yield* workers.markDeleted(w.id)
          break
        }
        yield* workers.associate(w.id, made.right.instanceId, made.right.ip)
        count++
        need--
      }
    }

    // Reap machines no live worker owns (a crash between create and record, or a lost delete).
    const listed = yield* p.list.pipe(Effect.either)
    if (listed._tag === "Left") {
      return yield* Effect.logWarning(`provider ${p.name}: list: ${listed.left.message}`)
    }
    const instances = listed.right
    for (const inst of instances) {
      const [w] = yield* sql<{ deleted: number }>`SELECT deleted FROM worker WHERE id = ${inst.worker}`
      if (w === undefined || w.deleted) {
        yield* p.destroy(inst.instanceId).pipe(Effect.catchAll(() => Effect.void))
      }
    }

    // Give up workers whose machine is gone (terminated behind our back, or crashed): fail the
    // job it was running, with the reason, and delete the worker (buildomat's AWS factory deletes
    // a worker whose instance is terminated or not found).
    const present = new Set(instances.map((i) => i.instanceId))
    for (const w of yield* workers.liveOf(f.id)) {
      if (w.factory_private === null || w.hold_time !== null || present.has(w.factory_private)) continue
      const why = `instance ${w.factory_private} of worker ${w.id} is gone from provider ${p.name}`
      yield* Effect.logWarning(`provider ${p.name}: ${why}; deleting the worker`)
      const j = yield* workers.jobOf(w.id)
      if (Option.isSome(j) && !j.value.complete) {
        yield* jobs.control(j.value.id, `${why} (terminated outside buildomat?); aborting job`).pipe(sql.withTransaction)
        yield* jobs.complete(j.value.id, true).pipe(Effect.catchAll(() => Effect.void))
      }
      yield* workers.markDeleted(w.id)
    }
  }).pipe(Effect.orDie)

/**
 * One pass over every provider.
 *
 * @since 0.1.0
 * @category loops
 */
export const provisionOnce = Effect.gen(function*() {
  const providers = yield* WorkerProviders
  for (const p of providers) yield* provisionProvider(p)
}).pipe(Effect.withSpan("Provisioner.provisionOnce"))

/**
 * The loop as a layer. When the layer closes, every worker still alive is destroyed by its
 * provider's own scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const signals = yield* Signals
    const factories = yield* FactoryStore
    yield* ensureTargets
    for (const p of yield* WorkerProviders) yield* factories.ensureInProcess(p.name)
    yield* provisionOnce.pipe(
      Effect.catchAllCause((c) => Effect.logError("provisioning pass failed", c)),
      Effect.zipRight(signals.provisioner.wait("1 second")),
      Effect.forever,
      Effect.forkScoped
    )
  })
)
