/**
 * The worker provider port: what the core server asks of a "factory" that makes ephemeral
 * machines. The server's provisioning loop calls `create` when a job is queued for a target the
 * provider serves and no worker is free, and `destroy` once the worker's one job is done (one job
 * per worker, as buildomat). Implementations: `@buildomat/provider-local` (agents as local
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
 * @since 0.1.0
 * @category models
 */
export interface CreateWorkerRequest {
  readonly worker: string
  readonly target: string
  readonly url: string
  readonly bootstrap: string
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
 * - `name`: the factory name shown in worker listings and job events.
 * - `targets`: the target names it can make workers for.
 * - `limit`: the most workers it may have at once; the loop never asks for more.
 * - `create`: start a machine for a worker; resolves once the machine is on its way (the agent
 *   bootstraps by itself).
 * - `destroy`: stop a machine and release everything it held; destroying one already gone
 *   succeeds.
 * - `list`: the machines that exist now, to reap the ones no live worker owns.
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
