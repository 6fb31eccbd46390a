/**
 * V8's heap growing factor for a process that runs a server (issue 4's upload target).
 *
 * Node hands each piece of a request body (up to 64 KiB) to JavaScript in a new buffer outside
 * the JavaScript heap, and V8 counts those bytes as old-generation allocation until a garbage
 * collection frees them. During an upload at hundreds of MB/s, V8's dynamic growing factor
 * (chosen at each full collection from how fast the program allocates) falls to about 1.3, and
 * the next full collection is then due after a few MB. Measured in `npm run bench` on a server
 * with 67 MB live after 30 dispatched jobs: a full collection every 90 ms through the first
 * 256 MiB upload, which ran at 230–305 MB/s; with a fixed factor of 2 (V8's
 * `--heap-growing-percent=100`), 370–430 MB/s, the buffers being freed by young-generation
 * collections instead. The heap may then grow to twice its live size between full collections
 * (V8's own factor goes up to 4 when the program is idle).
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import * as V8 from "node:v8"

/**
 * The factor a server sets unless told otherwise: the heap grows by 100% of its live size
 * before the next full collection.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PERCENT = 100

const FLAG = "--heap-growing-percent"

/** Layers holding the setting, so that the last to be released restores V8's default. */
let holders = 0

/**
 * Whether the process was started with its own `--heap-growing-percent` (which then wins).
 *
 * @since 0.1.0
 * @category utils
 */
export const setByCommandLine = (): boolean => process.execArgv.some((a) => a === FLAG || a.startsWith(`${FLAG}=`))

/**
 * Sets V8's heap growing factor to `1 + percent / 100` while the layer is in use, with
 * `v8.setFlagsFromString`; it applies from the next full collection. When the last such layer is
 * released, V8's dynamic factor is restored. Does nothing when `percent` is 0 or when the process
 * was started with its own `--heap-growing-percent`. The setting is process-wide: servers in one
 * process share the last value set.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (percent: number = DEFAULT_PERCENT): Layer.Layer<never> =>
  !Number.isInteger(percent) || percent < 0
    ? Layer.die(new RangeError(`heap growing percent must be a whole number, 0 or more, not ${percent}`))
    : percent === 0 || setByCommandLine()
    ? Layer.empty
    : Layer.scopedDiscard(Effect.acquireRelease(
      Effect.sync(() => {
        holders++
        V8.setFlagsFromString(`${FLAG}=${percent}`)
      }),
      () =>
        Effect.sync(() => {
          holders--
          if (holders === 0) V8.setFlagsFromString(`${FLAG}=0`)
        })
    ))
