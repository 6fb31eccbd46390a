/**
 * `@buildomat/agent`: the process that runs a job's tasks on an ephemeral worker, connecting
 * only outward to the core server. Usually run as the `buildomat-agent` bundle.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Agent from "./Agent.js"

/** @since 0.1.0 */
export * as Host from "./Host.js"
