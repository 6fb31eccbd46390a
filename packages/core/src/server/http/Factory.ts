/**
 * Handlers of the factory protocol (`/0/factory/...`, factory token; buildomat §2.6, §4.1).
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { BuildomatApi, CurrentFactory } from "../../Api.js"
import { FactoryStore } from "../FactoryStore.js"

/**
 * The factory routes. Worker routes answer 403 (`not your worker`) for a worker another factory
 * made, and 404 for one that does not exist (but `GET /0/factory/worker/{worker}` answers
 * `{ worker: null }` for a missing or deleted worker, as buildomat). `POST /ext/0/factory/status`
 * is our addition for the reconcile loop (`Factory`).
 *
 * @since 0.1.0
 * @category handlers
 */
export const FactoryLive = HttpApiBuilder.group(BuildomatApi, "factory", (handlers) =>
  Effect.gen(function*() {
    const factories = yield* FactoryStore
    const withFactory = <A, E, R>(f: (factory: string) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(CurrentFactory, (c) => f(c.id))
    return handlers
      .handle("ping", () => withFactory((f) => factories.ping(f)).pipe(Effect.as({ ok: true })))
      .handle("lease", ({ payload }) =>
        withFactory((f) => factories.lease(f, payload.supported_targets)).pipe(Effect.map((lease) => ({ lease }))))
      .handle("leaseRenew", ({ path }) => withFactory((f) => factories.renew(f, path.job)))
      .handle("workerCreate", ({ payload }) => withFactory((f) => factories.createWorker(f, payload)))
      .handle("workers", () => withFactory((f) => factories.listWorkers(f)))
      .handle("workerGet", ({ path }) => withFactory((f) => factories.getWorker(f, path.worker)))
      .handle("workerAssociate", ({ path, payload }) => withFactory((f) => factories.associate(f, path.worker, payload)))
      .handle("workerDestroy", ({ path }) => withFactory((f) => factories.destroyWorker(f, path.worker)))
      .handle("workerAppend", ({ path, payload }) => withFactory((f) => factories.append(f, path.worker, payload)))
      .handle("workerFlush", ({ path }) => withFactory((f) => factories.flush(f, path.worker)))
      .handle("status", ({ payload }) => withFactory((f) => factories.status(f, payload)))
  }))
