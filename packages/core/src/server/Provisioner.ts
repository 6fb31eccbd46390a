/**
 * The provisioning loop: drives every `WorkerProvider` (buildomat's factory protocol, run
 * in-process). It destroys recycled workers, asks for a new worker when a job is queued for a
 * target and no worker of that target is free or booting (never more than the provider's limit),
 * and destroys machines that no live worker owns. Woken by submit and completion, and every
 * second.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as Ids from "../Ids.js"
import { type WorkerProvider, WorkerProviders } from "../WorkerProvider.js"
import { ServerUrl } from "./Config.js"
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
    const url = yield* ServerUrl

    const live = yield* workers.liveOf(p.name)
    let count = 0
    for (const w of live) {
      if (w.recycle && w.hold_time === null && !w.diagnostics) {
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

    for (const name of p.targets) {
      const [t] = yield* sql<{ id: string }>`SELECT id FROM target WHERE name = ${name}`
      if (t === undefined) continue
      const [{ queued }] = yield* sql<{ queued: number }>`
        SELECT count(*) AS queued FROM job
        WHERE complete = 0 AND waiting = 0 AND worker IS NULL AND cancelled = 0 AND target_id = ${t.id}`
      const spare = live.filter((w) => w.target === t.id && !w.recycle && !w.has_job && w.hold_time === null).length
      let need = queued - spare
      while (need > 0 && count < p.limit) {
        const w = yield* workers.create(p.name, t.id)
        const made = yield* p.create({ worker: w.id, target: name, url, bootstrap: w.bootstrap }).pipe(Effect.either)
        if (made._tag === "Left") {
          yield* Effect.logWarning(`provider ${p.name}: could not create a worker for ${name}: ${made.left.message}`)
          yield* workers.markDeleted(w.id)
          break
        }
        yield* workers.associate(w.id, made.right.instanceId, made.right.ip, made.right.metadata)
        count++
        need--
      }
    }

    // Reap machines no live worker owns (a crash between create and record, or a lost delete).
    const instances = yield* p.list.pipe(Effect.catchAll(() => Effect.succeed([])))
    for (const inst of instances) {
      const [w] = yield* sql<{ deleted: number }>`SELECT deleted FROM worker WHERE id = ${inst.worker}`
      if (w === undefined || w.deleted) {
        yield* p.destroy(inst.instanceId).pipe(Effect.catchAll(() => Effect.void))
      }
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
    yield* ensureTargets
    yield* provisionOnce.pipe(
      Effect.catchAllCause((c) => Effect.logError("provisioning pass failed", c)),
      Effect.zipRight(signals.provisioner.wait("1 second")),
      Effect.forever,
      Effect.forkScoped
    )
  })
)
