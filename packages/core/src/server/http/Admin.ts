/**
 * Handlers of the administrative routes: jobs, global control and workers (`admin` group),
 * targets and factories. Each checks the `admin.<x>` privilege buildomat requires for it (the
 * admin token has them all) and answers 401 without it.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { BuildomatApi } from "../../Api.js"
import { BadRequest } from "../../Errors.js"
import { ArchiveQueue } from "../ArchiveQueue.js"
import { Control } from "../Control.js"
import { FactoryStore } from "../FactoryStore.js"
import { JobStore } from "../JobStore.js"
import { TargetStore } from "../TargetStore.js"
import { WorkerAdmin } from "../WorkerAdmin.js"
import { requireAdmin } from "./Auth.js"

/**
 * Jobs (`admin.job.read`, `admin.job.archive`, `admin.job.purge`), control (`admin.control`)
 * and workers (`admin.worker.read` to look, `admin.control` to recycle, hold and release).
 *
 * @since 0.1.0
 * @category handlers
 */
export const AdminLive = HttpApiBuilder.group(BuildomatApi, "admin", (handlers) =>
  Effect.gen(function*() {
    const jobs = yield* JobStore
    const queue = yield* ArchiveQueue
    const control = yield* Control
    const workers = yield* WorkerAdmin
    const views = (rows: ReadonlyArray<Parameters<typeof jobs.view>[0]>) => Effect.forEach(rows, jobs.view)
    return handlers
      .handle("jobsGet", ({ urlParams }) =>
        requireAdmin("job.read").pipe(
          Effect.zipRight(
            urlParams.active === true
              ? jobs.listActive
              : urlParams.completed !== undefined
              ? jobs.listCompleted(urlParams.completed)
              : Effect.fail(new BadRequest({ message: "cannot list jobs without a filter (active=true or completed=N)" }))
          ),
          Effect.flatMap(views)
        ))
      .handle("jobsList", ({ urlParams }) => requireAdmin("job.read").pipe(Effect.zipRight(jobs.list(undefined, urlParams))))
      .handle("jobGet", ({ path }) =>
        requireAdmin("job.read").pipe(Effect.zipRight(jobs.mustExist(path.job)), Effect.flatMap(jobs.view)))
      .handle("jobArchive", ({ path }) => requireAdmin("job.archive").pipe(Effect.zipRight(queue.requestArchive(path.job))))
      .handle("jobPurge", ({ path }) => requireAdmin("job.purge").pipe(Effect.zipRight(queue.requestPurge(path.job))))
      .handle("controlHold", () => requireAdmin("control").pipe(Effect.zipRight(control.hold)))
      .handle("controlResume", () => requireAdmin("control").pipe(Effect.zipRight(control.resume)))
      .handle("workersRecycle", () => requireAdmin("control").pipe(Effect.zipRight(workers.recycleAll)))
      .handle("workersListOld", ({ urlParams }) =>
        requireAdmin("worker.read").pipe(
          Effect.zipRight(workers.listAll(urlParams.active ?? false)),
          Effect.map((ws) => ({ workers: ws }))
        ))
      .handle("workersList", ({ urlParams }) => requireAdmin("worker.read").pipe(Effect.zipRight(workers.page(urlParams))))
      .handle("workerGet", ({ path }) => requireAdmin("worker.read").pipe(Effect.zipRight(workers.get(path.worker))))
      .handle("workerEvents", ({ path, urlParams }) =>
        requireAdmin("worker.read").pipe(Effect.zipRight(workers.events(path.worker, urlParams.minseq ?? 0))))
      .handle("workerRecycle", ({ path }) => requireAdmin("control").pipe(Effect.zipRight(workers.recycle(path.worker))))
      .handle("workerHold", ({ path, payload }) =>
        requireAdmin("control").pipe(Effect.zipRight(workers.hold(path.worker, payload.reason))))
      .handle("workerRelease", ({ path }) =>
        requireAdmin("control").pipe(Effect.zipRight(workers.release(path.worker)), Effect.asVoid))
  }))

/**
 * Targets: create (`admin.target.create`), list (`admin.target.read`), require a privilege,
 * redirect and rename (`admin.target.write`).
 *
 * @since 0.1.0
 * @category handlers
 */
export const TargetsLive = HttpApiBuilder.group(BuildomatApi, "targets", (handlers) =>
  Effect.gen(function*() {
    const targets = yield* TargetStore
    return handlers
      .handle("create", ({ payload }) =>
        requireAdmin("target.create").pipe(Effect.zipRight(targets.create(payload.name, payload.desc))))
      .handle("list", () => requireAdmin("target.read").pipe(Effect.zipRight(targets.list)))
      .handle("requirePrivilege", ({ path }) =>
        requireAdmin("target.write").pipe(Effect.zipRight(targets.require(path.target, path.privilege))))
      .handle("requireNoPrivilege", ({ path }) =>
        requireAdmin("target.write").pipe(Effect.zipRight(targets.require(path.target, null))))
      .handle("redirect", ({ path, payload }) =>
        requireAdmin("target.write").pipe(Effect.zipRight(targets.redirect(path.target, payload.redirect ?? null))))
      .handle("rename", ({ path, payload }) =>
        requireAdmin("target.write").pipe(
          Effect.zipRight(targets.rename(path.target, payload.new_name, payload.signpost_description))
        ))
  }))

/**
 * Factories: create (`admin.factory.create`), list (`admin.factory.read`), enable and disable
 * (`admin.factory.write`).
 *
 * @since 0.1.0
 * @category handlers
 */
export const FactoriesLive = HttpApiBuilder.group(BuildomatApi, "factories", (handlers) =>
  Effect.gen(function*() {
    const factories = yield* FactoryStore
    return handlers
      .handle("create", ({ payload }) => requireAdmin("factory.create").pipe(Effect.zipRight(factories.create(payload.name))))
      .handle("list", () => requireAdmin("factory.read").pipe(Effect.zipRight(factories.list)))
      .handle("enable", ({ path, payload }) =>
        requireAdmin("factory.write").pipe(Effect.zipRight(factories.enable(path.factory, payload.hold_workers ?? false))))
      .handle("disable", ({ path }) => requireAdmin("factory.write").pipe(Effect.zipRight(factories.disable(path.factory))))
  }))
