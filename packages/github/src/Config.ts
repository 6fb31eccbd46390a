/**
 * The GitHub App's configuration: a plain object for embedding (`GitHubAppConfig`), and the
 * TOML table that the reference server reads it from (`ConfigTable`, unknown keys refused).
 *
 * ```toml
 * [github]
 * app_id = 123456
 * private_key_path = "etc/privkey.pem"    # the App's RSA key (PEM), relative to the file
 * webhook_secret = "..."                  # or webhook_secret_path = "etc/webhook.secret"
 * listen = "127.0.0.1:4021"               # where the webhook and the pages are served
 * base_url = "https://ci.example/gh"      # how GitHub and browsers reach it (default: listen)
 * data_dir = "github"                     # holds data.sqlite3 (relative to the file)
 * allow_owners = ["oxidecomputer"]        # repository owners whose pushes become jobs
 * # confroot = ".github/buildomat"
 * # api_url = "https://api.github.com"
 * # clone_url = "https://x-access-token:{token}@github.com/{owner}/{repo}.git"
 * # worker_setup = "ephemeral"            # or "local" (agents of the local provider)
 * # token_delivery = "broker"             # or "store" (core's job store)
 *
 * [github.core]
 * url = "http://127.0.0.1:9979"           # default: the server in the same file
 * identity = "repo_users"                 # or "delegate"
 * # token = "..."                         # default: the admin token of the same file
 * ```
 *
 * Source: buildomat's `etc/app.toml` (buildomat-github.md §8), with the fixed paths and port
 * made settable and the seams this implementation adds (`clone_url`, `worker_setup`,
 * `token_delivery`, `core.identity`).
 *
 * @since 0.1.0
 */
import { Context, Effect, ParseResult, Schema } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

/**
 * How the integration acts as a repository's core user (see `CoreAccess`):
 *
 * - `"delegate"`: one token holding core's `delegate` privilege, sending
 *   `X-Buildomat-Delegate: gong-<repository id>` (buildomat);
 * - `"repo_users"`: the core admin token creates a user `gong-<repository id>` per repository
 *   and the integration keeps each user's token in its own database.
 *
 * @since 0.1.0
 * @category models
 */
export type CoreIdentity = "delegate" | "repo_users"

/**
 * How the job gets its GitHub token for the clone (see `CloneToken`):
 *
 * - `"broker"`: the `authentication` task fetches it once from the integration's
 *   `/job-token/...` URL, which mints it only while the core job is running (the default,
 *   while core has no job store);
 * - `"store"`: the integration puts it in core's job store as a secret and the task reads it
 *   with `bmat store get GITHUB_TOKEN` (buildomat).
 *
 * @since 0.1.0
 * @category models
 */
export type TokenDelivery = "broker" | "store"

/**
 * What the workers are:
 *
 * - `"ephemeral"`: fresh machines where the `setup` task runs as root and creates the `build`
 *   user (uid/gid 12345) that every later task runs as (buildomat);
 * - `"local"`: agents of the local provider on a shared machine: `setup` only makes `/work`
 *   (under the agent's root) and the tasks run as the agent's user.
 *
 * @since 0.1.0
 * @category models
 */
export type WorkerSetup = "ephemeral" | "local"

/**
 * The App's configuration.
 *
 * - `appId`: the GitHub App id (the JWT issuer, and the filter for foreign check suites);
 * - `privateKey`: the App's private key, PEM;
 * - `webhookSecret`: the HMAC key of `X-Hub-Signature-256`;
 * - `host`/`port`: where to listen (port 0 picks a free one);
 * - `baseUrl`: the external URL prefix (no trailing `/`) of the pages; default: the listening
 *   address;
 * - `databasePath`: the SQLite file (created if missing);
 * - `confroot`: where in a repository `config.toml` and `jobs/` live;
 * - `allowOwners`: repository owner logins whose events create check suites; others are
 *   acknowledged and ignored;
 * - `apiUrl`: the GitHub REST API base URL;
 * - `cloneUrl`: the clone URL template with `{owner}`, `{repo}` and `{token}`;
 * - `workerSetup`, `tokenDelivery`, `core`: see the types;
 * - `pollIntervalMs`: the background loop's period (buildomat: 5 s); new deliveries wake it;
 * - `tailRedrawMs`: the least time between two log-tail updates of a check run (buildomat: 6 s);
 * - `writeIntervalMs`: the least time between two GitHub write requests (GitHub asks for 1 s);
 * - `retryAfterBaseMs`: the unit of the retry plugins' back-off (1 s);
 * - `tokenRefreshMarginMs`: an installation token is replaced this long before it expires.
 *
 * @since 0.1.0
 * @category models
 */
export interface GitHubAppConfig {
  readonly appId: number
  readonly privateKey: string
  readonly webhookSecret: string
  readonly host: string
  readonly port: number
  readonly baseUrl?: string | undefined
  readonly databasePath: string
  readonly confroot: string
  readonly allowOwners: ReadonlyArray<string>
  readonly apiUrl: string
  readonly cloneUrl: string
  readonly workerSetup: WorkerSetup
  readonly tokenDelivery: TokenDelivery
  readonly core: {
    readonly url: string
    readonly token: string
    readonly identity: CoreIdentity
  }
  readonly pollIntervalMs: number
  readonly tailRedrawMs: number
  readonly writeIntervalMs: number
  readonly retryAfterBaseMs: number
  readonly tokenRefreshMarginMs: number
}

/**
 * GitHub's clone URL template.
 *
 * @since 0.1.0
 * @category constants
 */
export const GITHUB_CLONE_URL = "https://x-access-token:{token}@github.com/{owner}/{repo}.git"

/**
 * The defaults of the optional settings.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  host: "127.0.0.1",
  port: 4021,
  confroot: ".github/buildomat",
  apiUrl: "https://api.github.com",
  cloneUrl: GITHUB_CLONE_URL,
  workerSetup: "ephemeral" as WorkerSetup,
  tokenDelivery: "broker" as TokenDelivery,
  pollIntervalMs: 5000,
  tailRedrawMs: 6000,
  writeIntervalMs: 1000,
  retryAfterBaseMs: 1000,
  tokenRefreshMarginMs: 5 * 60 * 1000
} as const

const strict = { parseOptions: { onExcessProperty: "error" as const } }
const PositiveInt = Schema.Int.pipe(Schema.positive())
const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())

/**
 * The `[github]` TOML table. Relative paths are relative to the file.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ConfigTable = Schema.Struct({
  app_id: PositiveInt,
  private_key_path: Schema.optional(Schema.NonEmptyString),
  private_key: Schema.optional(Schema.NonEmptyString),
  webhook_secret: Schema.optional(Schema.NonEmptyString),
  webhook_secret_path: Schema.optional(Schema.NonEmptyString),
  listen: Schema.optional(Schema.String),
  base_url: Schema.optional(Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/))),
  data_dir: Schema.optional(Schema.NonEmptyString),
  confroot: Schema.optional(Schema.String.pipe(Schema.pattern(/^[^/].*[^/]$|^[^/]$/))),
  allow_owners: Schema.Array(Schema.NonEmptyString),
  api_url: Schema.optional(Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/))),
  clone_url: Schema.optional(Schema.String.pipe(Schema.includes("{repo}"))),
  worker_setup: Schema.optional(Schema.Literal("ephemeral", "local")),
  token_delivery: Schema.optional(Schema.Literal("broker", "store")),
  poll_interval_ms: Schema.optional(PositiveInt),
  tail_redraw_ms: Schema.optional(NonNegativeInt),
  write_interval_ms: Schema.optional(NonNegativeInt),
  retry_after_base_ms: Schema.optional(NonNegativeInt),
  core: Schema.optional(
    Schema.Struct({
      url: Schema.optional(Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/))),
      token: Schema.optional(Schema.NonEmptyString),
      identity: Schema.optional(Schema.Literal("delegate", "repo_users"))
    }).annotations(strict)
  )
}).annotations({ identifier: "GitHubConfigTable", ...strict })
/** @since 0.1.0 @category models */
export type ConfigTable = typeof ConfigTable.Type

/**
 * The configuration is invalid or a file it names cannot be read.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("GitHubConfigError", { message: Schema.String }) {}

/**
 * Parses `host:port` (IPv6 hosts in brackets).
 *
 * @since 0.1.0
 * @category utils
 */
export const parseListen = (listen: string): { readonly host: string; readonly port: number } | undefined => {
  const m = /^(.*):(\d+)$/.exec(listen)
  if (m === null || Number(m[2]) > 65535) return undefined
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) }
}

/**
 * Decodes a `[github]` table (as `smol-toml` parsed it) into a `GitHubAppConfig`, reading the
 * key files. `base` is the directory relative paths are resolved against; `fallback` supplies
 * what the surrounding server knows (its data directory, core URL and admin token).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromTable = (
  table: unknown,
  base: string,
  fallback: { readonly dataDir?: string | undefined; readonly coreUrl?: string | undefined; readonly coreToken?: string | undefined } = {}
): Effect.Effect<GitHubAppConfig, ConfigError> =>
  Effect.gen(function*() {
    const t = yield* Schema.decodeUnknown(ConfigTable)(table, { errors: "all" }).pipe(
      Effect.mapError((e) =>
        new ConfigError({
          message: `[github]: ${
            ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => `${i.path.join(".") || "(table)"}: ${i.message}`).join("; ")
          }`
        })
      )
    )
    const read = (what: string, p: string) =>
      Effect.try({
        try: () => NodeFs.readFileSync(NodePath.resolve(base, p), "utf8"),
        catch: (e) => new ConfigError({ message: `[github] ${what}: cannot read ${p}: ${(e as Error).message}` })
      })
    if ((t.private_key === undefined) === (t.private_key_path === undefined)) {
      return yield* new ConfigError({ message: "[github]: give exactly one of private_key_path and private_key" })
    }
    const privateKey = t.private_key ?? (yield* read("private_key_path", t.private_key_path!))
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
      return yield* new ConfigError({ message: "[github]: the private key is not a PEM private key" })
    }
    if ((t.webhook_secret === undefined) === (t.webhook_secret_path === undefined)) {
      return yield* new ConfigError({ message: "[github]: give exactly one of webhook_secret and webhook_secret_path" })
    }
    const webhookSecret = t.webhook_secret ?? (yield* read("webhook_secret_path", t.webhook_secret_path!)).trim()
    const listen = parseListen(t.listen ?? `${defaults.host}:${defaults.port}`)
    if (listen === undefined) return yield* new ConfigError({ message: `[github] listen must be host:port, got ${JSON.stringify(t.listen)}` })
    const dataDir = t.data_dir !== undefined
      ? NodePath.resolve(base, t.data_dir)
      : fallback.dataDir !== undefined
      ? NodePath.join(fallback.dataDir, "github")
      : NodePath.resolve(base, "github")
    const coreUrl = t.core?.url ?? fallback.coreUrl
    if (coreUrl === undefined) return yield* new ConfigError({ message: "[github.core] url is required" })
    const coreToken = t.core?.token ?? fallback.coreToken
    if (coreToken === undefined) return yield* new ConfigError({ message: "[github.core] token is required" })
    return {
      appId: t.app_id,
      privateKey,
      webhookSecret,
      host: listen.host,
      port: listen.port,
      baseUrl: t.base_url?.replace(/\/+$/, ""),
      databasePath: NodePath.join(dataDir, "data.sqlite3"),
      confroot: t.confroot ?? defaults.confroot,
      allowOwners: t.allow_owners,
      apiUrl: (t.api_url ?? defaults.apiUrl).replace(/\/+$/, ""),
      cloneUrl: t.clone_url ?? defaults.cloneUrl,
      workerSetup: t.worker_setup ?? defaults.workerSetup,
      tokenDelivery: t.token_delivery ?? defaults.tokenDelivery,
      core: { url: coreUrl.replace(/\/+$/, ""), token: coreToken, identity: t.core?.identity ?? "repo_users" },
      pollIntervalMs: t.poll_interval_ms ?? defaults.pollIntervalMs,
      tailRedrawMs: t.tail_redraw_ms ?? defaults.tailRedrawMs,
      writeIntervalMs: t.write_interval_ms ?? defaults.writeIntervalMs,
      retryAfterBaseMs: t.retry_after_base_ms ?? defaults.retryAfterBaseMs,
      tokenRefreshMarginMs: defaults.tokenRefreshMarginMs
    } satisfies GitHubAppConfig
  })

/**
 * The configuration as the running App sees it: `baseUrl` is always known (the configured
 * one, or the address the HTTP server bound).
 *
 * @since 0.1.0
 * @category context
 */
export class AppConfig extends Context.Tag("@buildomat/github/Config/AppConfig")<
  AppConfig,
  GitHubAppConfig & { readonly baseUrl: string }
>() {}
