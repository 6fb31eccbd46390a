/**
 * The worker provider port: what the core server asks of a "factory" that makes ephemeral
 * machines. One reconcile loop (`Factory.reconcileOnce`) drives any provider, either inside the
 * server process (`Provisioner`, a layer) or as a separate factory process speaking the factory
 * API (`Factory.run`). It calls `create` when it holds a lease on a queued job of a target the
 * provider serves (or to keep a warm pool), and `destroy` once the worker's one job is done (one
 * job per worker, as buildomat). Implementations: `@buildomat/provider-local` (agents as local
 * processes), `@buildomat/provider-aws` (EC2 instances).
 *
 * @since 0.1.0
 */
import { Context, Data } from "effect"
import type { Effect } from "effect"

/**
 * What a provider needs to start a worker: the worker's id, the target it is for, the core
 * server URL the agent must connect to, and the single-use bootstrap value the agent exchanges
 * for its worker token (`POST /0/worker/bootstrap`). Treat `bootstrap` as a secret.
 *
 * `lease`, when given, is the id of the queued job the worker is being made for (buildomat's
 * lease, recorded by its AWS factory in the `<tag>-lease_id` instance tag). It is a hint for
 * operators, not a binding: any free worker of the target takes the next job, oldest first.
 *
 * @since 0.1.0
 * @category models
 */
export interface CreateWorkerRequest {
  readonly worker: string
  readonly target: string
  readonly url: string
  readonly bootstrap: string
  readonly lease?: string | undefined
}

/**
 * A provider's handle on a machine it made: `instanceId` is the provider's own name for it
 * (an EC2 instance id, a local process id), recorded as the worker's `factory_private`.
 * `metadata` is buildomat's factory metadata for the machine (see `Workers.FactoryMetadata`:
 * diagnostic scripts, root keys), recorded with it and handed to its agent in each ping.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerInstance {
  readonly instanceId: string
  readonly worker: string
  readonly ip?: string | undefined
  readonly metadata?: unknown
}

/**
 * Per-target settings of a provider, honoured by the reconcile loop:
 *
 * - `limit`: the most workers of this target at once (within the provider's `limit`); default:
 *   the provider's `limit`.
 * - `warm`: how many spare workers (made, not held, without a job; booting or bootstrapped) to
 *   keep ahead of demand, so that a job starts on a worker that is already up. Still one job per
 *   worker: each job takes one from the pool and the loop makes another. Within `limit`; default
 *   0 (workers are made only for queued jobs, as buildomat). Not filled while the factory is
 *   disabled, creation is on hold, or the factory holds every worker it makes (`hold_workers`).
 *
 * @since 0.1.0
 * @category models
 */
export interface TargetPolicy {
  readonly limit?: number | undefined
  readonly warm?: number | undefined
}

/**
 * A provider failed to create, destroy or list machines. The loop logs it and tries again later.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProviderError extends Data.TaggedError("ProviderError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A source of ephemeral workers.
 *
 * - `name`: the factory name shown in worker listings and job events (in-process providers; a
 *   separate factory process is known by its factory record's name).
 * - `targets`: the target names it can make workers for.
 * - `limit`: the most workers it may have at once; the loop never asks for more.
 * - `policies` (optional): per-target `limit` and `warm` pool size, by target name (see
 *   `TargetPolicy`).
 * - `create`: start a machine for a worker; resolves once the machine is on its way (the agent
 *   bootstraps by itself).
 * - `destroy`: stop a machine and release everything it held; destroying one already gone
 *   succeeds.
 * - `list`: the machines that exist now. The loop destroys the ones no live worker owns, and
 *   gives up a worker whose machine is no longer listed: its running job fails with a control
 *   event that says so. So `list` must be complete (include machines being created) and fail,
 *   rather than answer short, when it cannot tell.
 * - `bootTimeoutMs` (optional): how long, in milliseconds since the worker was created, its
 *   agent may take to bootstrap. A worker still not bootstrapped after that is given up: its
 *   machine destroyed, its record deleted, and a new worker made if a job still needs one
 *   (buildomat's AWS factory does this after 8 minutes). Without it the loop's default applies
 *   (`Factory.DEFAULT_BOOT_TIMEOUT_MS`, 30 minutes: buildomat's "never bootstrapped" rule; a
 *   server sets it with `ServerOptions.bootTimeoutMs`).
 * - `listIntervalMs` (optional): the least time, in milliseconds, between two calls of `list` by
 *   the reconcile loop, for providers whose listing is a paid or rate-limited API call (the AWS
 *   provider: 7 s, buildomat's AWS factory pass). Passes in between skip the checks that need a
 *   listing (vanished and orphaned machines). Default: every pass.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerProvider {
  readonly name: string
  readonly targets: ReadonlyArray<string>
  readonly limit: number
  readonly create: (request: CreateWorkerRequest) => Effect.Effect<WorkerInstance, ProviderError>
  readonly destroy: (instanceId: string) => Effect.Effect<void, ProviderError>
  readonly list: Effect.Effect<ReadonlyArray<WorkerInstance>, ProviderError>
  readonly bootTimeoutMs?: number | undefined
  readonly listIntervalMs?: number | undefined
  readonly policies?: Readonly<Record<string, TargetPolicy>> | undefined
}

/**
 * The providers a server drives. Compose one or more: `Layer.succeed(WorkerProviders, [p])`, or
 * a provider package's own `layer`.
 *
 * @since 0.1.0
 * @category context
 */
export class WorkerProviders extends Context.Tag("@buildomat/core/WorkerProvider/WorkerProviders")<
  WorkerProviders,
  ReadonlyArray<WorkerProvider>
>() {}
