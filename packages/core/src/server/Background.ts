/**
 * The server's background loops besides assignment and provisioning (buildomat §5): worker
 * cleanup, file archiving, job archiving, purge and chunk cleanup. Each loop is an Effect that runs
 * one pass, then waits its interval (on the `Clock`, so tests drive them with `TestClock`); a pass
 * that fails is logged and the loop goes on, as buildomat's do.
 *
 * | loop | interval | module |
 * |---|---|---|
 * | worker cleanup | 47 s | `WorkerCleanup` |
 * | file archiving and local cleanup | 15 s | `FileArchive` |
 * | job archiving | 1 s (1 min when not automatic), at once after a success or on a request | `JobArchive` |
 * | purge | 1 s (1 min when not automatic); `purgeDelay` after each purge; at once on a request | `Purge` |
 * | chunk cleanup | 73 s | `ChunkCleanup` |
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer } from "effect"
import { currentTime } from "../Schemas.js"

/**
 * What the loops do on their own (buildomat's `[job]` and `[file]` configuration):
 *
 * - `jobAutoArchive`: archive every completed job (`job.auto_archive`, default false); without it
 *   only jobs an operator asks for are archived.
 * - `jobAutoPurge`: purge archived jobs once `purgeAfter` has passed (`job.auto_purge`, default
 *   false); without it only jobs an operator asks for are purged.
 * - `purgeAfter`: how long a job stays archived before it is purged automatically (buildomat:
 *   14 days).
 * - `purgeDelay`: the pause after each purge (`job.purge_delay_msec`, default 500 ms), so that
 *   purging a backlog does not monopolise the database.
 * - `fileAutoArchive`: copy the files of completed jobs to the archive tier
 *   (`file.auto_archive`, default true); it matters only when an archive tier is configured.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackgroundOptions {
  readonly jobAutoArchive: boolean
  readonly jobAutoPurge: boolean
  readonly purgeAfter: Duration.DurationInput
  readonly purgeDelay: Duration.DurationInput
  readonly fileAutoArchive: boolean
}

/**
 * buildomat's defaults.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: BackgroundOptions = {
  jobAutoArchive: false,
  jobAutoPurge: false,
  purgeAfter: Duration.days(14),
  purgeDelay: Duration.millis(500),
  fileAutoArchive: true
}

/**
 * @since 0.1.0
 * @category context
 */
export class BackgroundConfig extends Context.Tag("@buildomat/core/server/Background/BackgroundConfig")<
  BackgroundConfig,
  BackgroundOptions
>() {}

/**
 * When the server started, in milliseconds since the epoch on the `Clock`. The worker liveness
 * check waits until the server has been up for the ping timeout, so that agents get a chance to
 * ping after a restart (buildomat §5.2).
 *
 * @since 0.1.0
 * @category context
 */
export class ServerStart extends Context.Tag("@buildomat/core/server/Background/ServerStart")<ServerStart, number>() {}

/**
 * `BackgroundConfig` from options (missing ones take buildomat's defaults) and `ServerStart` from
 * the clock.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options?: Partial<BackgroundOptions>): Layer.Layer<BackgroundConfig | ServerStart> =>
  Layer.merge(
    Layer.succeed(BackgroundConfig, { ...defaults, ...options }),
    Layer.effect(ServerStart, Clock.currentTimeMillis)
  )

/**
 * The current time on the `Clock`, as buildomat writes timestamps (RFC 3339, `Z`).
 *
 * @since 0.1.0
 * @category utils
 */
export const clockNow = currentTime

/**
 * Runs `pass` forever in the scope: after each pass, waits `next(result)` (a pass that fails
 * waits `interval`). The loop runs until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loop = <A, E, R, R2 = never>(
  name: string,
  pass: Effect.Effect<A, E, R>,
  interval: Duration.DurationInput,
  next?: (result: A) => Effect.Effect<void, never, R2>
) =>
  pass.pipe(
    Effect.matchCauseEffect({
      onFailure: (cause) =>
        Effect.logError(`${name} pass failed`, cause).pipe(Effect.zipRight(Effect.sleep(interval))),
      onSuccess: (a) => (next !== undefined ? next(a) : Effect.sleep(interval))
    }),
    Effect.forever,
    Effect.annotateLogs("loop", name),
    Effect.forkScoped,
    Effect.asVoid
  )
