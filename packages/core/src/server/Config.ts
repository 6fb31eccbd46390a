/**
 * The server's configuration, as the layers read it.
 *
 * @since 0.1.0
 */
import { Context } from "effect"

/**
 * - `dataDir`: where the database (`data.sqlite3`), chunks and (by default) the object store live.
 * - `adminToken`: the global admin bearer token (buildomat `admin.token`).
 * - `maxBytesPerFile`: the largest output or input, in bytes (buildomat
 *   `job.max_size_per_file_mb`, default 1 GiB).
 * - `publicUrl`: the URL agents and clients reach the server at; by default the address the HTTP
 *   server is bound to.
 * - `maxRuntime`: how long a job may run once assigned to a worker, in seconds (buildomat
 *   `job.max_runtime`); past it the job is aborted. Absent means `DEFAULT_MAX_RUNTIME`.
 * - `hold`: the initial value of the in-memory "hold new worker creation" flag (buildomat
 *   `admin.hold`; default false). `POST /0/control/hold` and `/0/control/resume` change it.
 * - `bootTimeoutMs`: how long, in milliseconds from its creation, an in-process provider's worker
 *   may take to bootstrap before the provisioning loop gives it up, for providers that set no
 *   `bootTimeoutMs` of their own; absent means `Factory.DEFAULT_BOOT_TIMEOUT_MS` (30 minutes,
 *   buildomat's "never bootstrapped" rule).
 * - `targets`: target names the server makes at start if missing, besides those its in-process
 *   providers serve (targets of providers that run as separate factory processes).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerConfigShape {
  readonly dataDir: string
  readonly adminToken: string
  readonly maxBytesPerFile: number
  readonly publicUrl?: string | undefined
  readonly maxRuntime?: number | undefined
  readonly hold?: boolean | undefined
  readonly bootTimeoutMs?: number | undefined
  readonly targets?: ReadonlyArray<string> | undefined
}

/**
 * @since 0.1.0
 * @category context
 */
export class ServerConfig extends Context.Tag("@buildomat/core/server/ServerConfig")<ServerConfig, ServerConfigShape>() {}

/**
 * The URL the running server is reached at (from `publicUrl`, or the bound address).
 *
 * @since 0.1.0
 * @category context
 */
export class ServerUrl extends Context.Tag("@buildomat/core/server/ServerUrl")<ServerUrl, string>() {}

/**
 * 1 GiB, buildomat's default per-file limit.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_BYTES_PER_FILE = 1024 * 1024 * 1024

/**
 * 24 hours, in seconds: how long a job may run when `job.max_runtime` is not configured
 * (buildomat requires the setting; we give it a generous default).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_RUNTIME = 24 * 60 * 60
