/**
 * Global control: the operator's "hold new worker creation" switch (buildomat `admin.hold`,
 * `POST /0/control/hold` and `/0/control/resume`). While held, factories get no leases and the
 * in-process provisioning loop creates no workers; workers that exist carry on. The flag lives in
 * memory, as in buildomat: a restart goes back to the configured value.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Ref } from "effect"
import { ServerConfig } from "./Config.js"
import { Signals } from "./Signals.js"

/**
 * - `held`: whether new worker creation is on hold.
 * - `hold`: puts it on hold.
 * - `resume`: lets creation go on (and wakes the provisioning loop).
 *
 * @since 0.1.0
 * @category models
 */
export interface ControlShape {
  readonly held: Effect.Effect<boolean>
  readonly hold: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category context
 */
export class Control extends Context.Tag("@buildomat/core/server/Control")<Control, ControlShape>() {}

/**
 * Starts from `ServerConfig.hold` (default false). Needs `ServerConfig` and `Signals`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Control, never, ServerConfig | Signals> = Layer.effect(
  Control,
  Effect.gen(function*() {
    const config = yield* ServerConfig
    const signals = yield* Signals
    const flag = yield* Ref.make(config.hold ?? false)
    return {
      held: Ref.get(flag),
      hold: Ref.set(flag, true).pipe(Effect.zipRight(Effect.logInfo("ADMIN: hold new worker creation"))),
      resume: Ref.set(flag, false).pipe(
        Effect.zipRight(Effect.logInfo("ADMIN: resume new worker creation")),
        Effect.zipRight(signals.provisioner.wake)
      )
    }
  })
)
