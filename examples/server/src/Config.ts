/**
 * The reference server's configuration file (TOML), decoded with `Schema`; unknown keys are
 * rejected by name. Every key has a default, so an empty file (or none) runs a working server:
 *
 * ```toml
 * [server]
 * listen = "127.0.0.1:9979"      # host:port; port 0 picks a free one
 * data_dir = "data"              # relative to this file; database, chunks, objects, workers
 * # public_url = "https://ci.example"   # what agents and clients use, if not `listen`
 *
 * [admin]
 * # token = "..."                # default: generated once, kept in <data_dir>/admin.token (0600)
 * # hold = false                 # start with new worker creation on hold (buildomat admin.hold)
 *
 * [job]
 * max_size_per_file_mb = 1024    # the largest output, MiB (buildomat's default)
 * max_runtime = 86400            # seconds a job may run once assigned (buildomat `job.max_runtime`)
 * auto_archive = false           # archive completed jobs (TLV-C, job/2/<job>.tlvc)
 * auto_purge = false             # purge archived jobs 14 days after archiving
 * purge_delay_msec = 500         # pause after each purge
 *
 * [file]
 * auto_archive = true            # copy completed jobs' files to [storage] (when configured)
 *
 * [storage]                      # S3 (or S3-compatible) archive tier; optional
 * bucket = "buildomat"
 * prefix = "prod"                # prepended to every key
 * region = "us-east-1"
 * # endpoint = "http://127.0.0.1:9000"   # S3-compatible service; path-style addressing
 * # access_key_id = "..."        # with secret_access_key; without both, the AWS default chain
 * # secret_access_key = "..."    #   (environment, AWS_PROFILE, instance role)
 *
 * [providers.local]              # agents as local processes (@buildomat/provider-local)
 * targets = ["default"]          # or a table per target, [providers.local.targets.<name>]:
 * limit = 4                      #   limit, warm, scratch_root, user
 * # warm = 0                     # agents kept started and bootstrapped ahead of jobs
 * # scratch_root = "..."         # default: <data_dir>/workers
 *
 * [providers.aws]                # EC2 instances (@buildomat/provider-aws); see docs/aws.md
 * region = "us-west-2"
 * subnets = ["subnet-0123abcd"]
 * [providers.aws.targets.linux]
 * ami = "ami-0123456789abcdef0"
 * instance_type = "m7i.large"
 *
 * [github]                       # optional: the GitHub App (@buildomat/github)
 * app_id = 123456
 * private_key_path = "privkey.pem"
 * webhook_secret = "..."
 * listen = "127.0.0.1:4021"
 * allow_owners = ["my-org"]
 * # the rest: see `Config.ConfigTable` of @buildomat/github; by default it uses this server
 * # (core.url) with its admin token, and keeps its database in <data_dir>/github
 * ```
 *
 * [factory]                      # the reconcile loop; url/token for a separate factory process
 * # url = "http://127.0.0.1:9979"   # the core server; default: public_url, or http://<listen>
 * # token = "..."                # factory token (buildomat admin factory create NAME), or
 * #                              #   env BUILDOMAT_FACTORY_TOKEN
 * # agent_url = "..."            # what agents use to reach the server, if not url
 * # providers = ["aws"]          # run by `factory.js`, not by the server itself
 * # interval_ms = 1000           # pause between passes of factory.js
 * # boot_timeout_s = 1800        # give up workers not bootstrapped by then (providers without
 * #                              #   their own; buildomat's 30 minutes)
 * ```
 *
 * A target may be served by one provider only. `dist/factory.js -f FILE --provider NAME` runs one
 * provider of the file as a separate factory process (`Factory.run`); a server reading the same
 * file leaves the providers listed in `[factory] providers` to it, and only makes their targets.
 *
 * @since 0.1.0
 */
import { AwsProvider } from "@buildomat/provider-aws"
import { Config as GitHubConfig } from "@buildomat/github"
import { S3ObjectStore } from "@buildomat/core/server"
import { LocalProvider } from "@buildomat/provider-local"
import { Effect, Schema } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { parse as parseToml } from "smol-toml"

const strict = { parseOptions: { onExcessProperty: "error" as const } }

/** @since 0.1.0 @category schemas */
export const ConfigFile = Schema.Struct({
  server: Schema.optionalWith(
    Schema.Struct({
      listen: Schema.optionalWith(Schema.String, { default: () => "127.0.0.1:9979" }),
      data_dir: Schema.optionalWith(Schema.String, { default: () => "data" }),
      public_url: Schema.optional(Schema.String)
    }).annotations(strict),
    { default: () => ({ listen: "127.0.0.1:9979", data_dir: "data" }) }
  ),
  admin: Schema.optionalWith(
    Schema.Struct({ token: Schema.optional(Schema.String), hold: Schema.optional(Schema.Boolean) }).annotations(strict),
    {
      default: () => ({})
    }
  ),
  job: Schema.optionalWith(
    Schema.Struct({
      max_size_per_file_mb: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 1024 }),
      max_runtime: Schema.optional(Schema.Int.pipe(Schema.positive())),
      auto_archive: Schema.optionalWith(Schema.Boolean, { default: () => false }),
      auto_purge: Schema.optionalWith(Schema.Boolean, { default: () => false }),
      purge_delay_msec: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 500 })
    }).annotations(strict),
    { default: () => ({ max_size_per_file_mb: 1024, auto_archive: false, auto_purge: false, purge_delay_msec: 500 }) }
  ),
  file: Schema.optionalWith(
    Schema.Struct({ auto_archive: Schema.optionalWith(Schema.Boolean, { default: () => true }) }).annotations(strict),
    { default: () => ({ auto_archive: true }) }
  ),
  storage: Schema.optional(S3ObjectStore.S3ConfigSchema),
  providers: Schema.optionalWith(
    Schema.Struct({
      local: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
      aws: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
    }).annotations(strict),
    { default: () => ({ local: {} }) }
  ),
  factory: Schema.optionalWith(
    Schema.Struct({
      url: Schema.optional(Schema.String),
      token: Schema.optional(Schema.String),
      agent_url: Schema.optional(Schema.String),
      providers: Schema.optional(Schema.Array(Schema.Literal("local", "aws"))),
      interval_ms: Schema.optional(Schema.Int.pipe(Schema.positive())),
      boot_timeout_s: Schema.optional(Schema.Number.pipe(Schema.positive()))
    }).annotations(strict),
    { default: () => ({}) }
  ),
  github: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}).annotations({ identifier: "ConfigFile", ...strict })

/**
 * A provider kind the file can configure (`[providers.<kind>]`).
 *
 * @since 0.1.0
 * @category models
 */
export type ProviderKind = "local" | "aws"

/**
 * The configuration with paths resolved and defaults filled in.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedConfig {
  readonly host: string
  readonly port: number
  readonly dataDir: string
  readonly publicUrl: string | undefined
  readonly adminToken: string
  readonly adminTokenFile: string | undefined
  readonly hold: boolean
  readonly maxBytesPerFile: number
  readonly maxRuntime: number | undefined
  readonly jobAutoArchive: boolean
  readonly jobAutoPurge: boolean
  readonly purgeDelayMs: number
  readonly fileAutoArchive: boolean
  readonly storage: S3ObjectStore.S3Config | undefined
  readonly local: LocalProvider.LocalProviderConfig | undefined
  readonly aws: AwsProvider.AwsProviderConfig | undefined
  readonly remote: ReadonlyArray<ProviderKind>
  readonly bootTimeoutMs: number | undefined
  /**
   * The GitHub App, if the file has a `[github]` table. When the table names no `core.url`,
   * `githubUsesThisServer` is true and the App is pointed at this server once it listens.
   */
  readonly github: GitHubConfig.GitHubAppConfig | undefined
  readonly githubUsesThisServer: boolean
}

/**
 * A configuration file could not be read or is invalid; `message` says where and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", { message: Schema.String }) {}

const parseListen = (listen: string) => {
  const m = /^(.*):(\d+)$/.exec(listen)
  if (m === null) return undefined
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) }
}

/** Reads, parses and decodes a file (`undefined`: no file, all defaults). */
const readFile = (file: string | undefined) =>
  Effect.gen(function*() {
    let raw: unknown = {}
    const base = file === undefined ? process.cwd() : NodePath.dirname(NodePath.resolve(file))
    if (file !== undefined) {
      const text = yield* Effect.try({
        try: () => NodeFs.readFileSync(file, "utf8"),
        catch: (e) => new ConfigError({ message: `cannot read ${file}: ${(e as Error).message}` })
      })
      raw = yield* Effect.try({
        try: () => parseToml(text),
        catch: (e) => new ConfigError({ message: `${file} is not valid TOML: ${(e as Error).message}` })
      })
    }
    const cfg = yield* Schema.decodeUnknown(ConfigFile)(raw).pipe(
      Effect.mapError((e) => new ConfigError({ message: `${file ?? "configuration"}: ${e.message}` }))
    )
    const listen = parseListen(cfg.server.listen)
    if (listen === undefined) {
      return yield* new ConfigError({ message: `server.listen must be host:port, got ${JSON.stringify(cfg.server.listen)}` })
    }
    return { cfg, base, listen, dataDir: NodePath.resolve(base, cfg.server.data_dir), where: file ?? "configuration" }
  })

/** The providers the file configures, decoded, with paths resolved against the file. */
const providersOf = (read: Effect.Effect.Success<ReturnType<typeof readFile>>) =>
  Effect.gen(function*() {
    const { base, cfg, dataDir, where } = read
    let local: LocalProvider.LocalProviderConfig | undefined
    if (cfg.providers.local !== undefined) {
      const table = { scratch_root: NodePath.join(dataDir, "workers"), ...cfg.providers.local }
      local = yield* Schema.decodeUnknown(LocalProvider.LocalProviderConfigSchema)(table).pipe(
        Effect.mapError((e) => new ConfigError({ message: `${where}: [providers.local]: ${e.message}` }))
      )
      const targets = local.targets
      local = {
        ...local,
        scratchRoot: NodePath.resolve(base, local.scratchRoot),
        ...(targets !== undefined && !Array.isArray(targets)
          ? {
            targets: Object.fromEntries(
              Object.entries(targets as Readonly<Record<string, LocalProvider.LocalTargetConfig>>).map(([k, v]) => [
                k,
                v.scratchRoot !== undefined ? { ...v, scratchRoot: NodePath.resolve(base, v.scratchRoot) } : v
              ])
            )
          }
          : {})
      }
    }
    let aws: AwsProvider.AwsProviderConfig | undefined
    if (cfg.providers.aws !== undefined) {
      aws = yield* Schema.decodeUnknown(AwsProvider.AwsProviderConfigSchema)(cfg.providers.aws).pipe(
        Effect.mapError((e) => new ConfigError({ message: `${where}: [providers.aws]: ${e.message}` }))
      )
      const localTargets = local !== undefined ? LocalProvider.targetNames(local) : []
      const shared = Object.keys(aws.targets).filter((t) => localTargets.includes(t))
      if (shared.length > 0) {
        return yield* new ConfigError({
          message: `${where}: target ${JSON.stringify(shared[0])} is served by both [providers.local] and [providers.aws]; give each target one provider`
        })
      }
    }
    for (const kind of cfg.factory.providers ?? []) {
      if ((kind === "local" ? local : aws) === undefined) {
        return yield* new ConfigError({
          message: `${where}: [factory] providers names ${JSON.stringify(kind)}, but there is no [providers.${kind}]`
        })
      }
    }
    return { local, aws }
  })

/**
 * Reads and resolves a configuration file (`undefined` means no file: all defaults, relative to
 * the working directory). Creates the data directory, and the admin token file if needed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (file: string | undefined) =>
  Effect.gen(function*() {
    const r = yield* readFile(file)
    const { base, cfg, dataDir, listen } = r
    NodeFs.mkdirSync(dataDir, { recursive: true })
    let adminToken = cfg.admin.token
    let adminTokenFile: string | undefined
    if (adminToken === undefined) {
      adminTokenFile = NodePath.join(dataDir, "admin.token")
      if (!NodeFs.existsSync(adminTokenFile)) {
        const { randomBytes } = yield* Effect.promise(() => import("node:crypto"))
        NodeFs.writeFileSync(adminTokenFile, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 })
      }
      adminToken = NodeFs.readFileSync(adminTokenFile, "utf8").trim()
    }
    const { aws, local } = yield* providersOf(r)
    let github: GitHubConfig.GitHubAppConfig | undefined
    let githubUsesThisServer = false
    if (cfg.github !== undefined) {
      const core = cfg.github["core"] as { url?: unknown } | undefined
      githubUsesThisServer = core?.url === undefined
      const host = listen.host === "0.0.0.0" || listen.host === "::" ? "127.0.0.1" : listen.host
      github = yield* GitHubConfig.fromTable(cfg.github, base, {
        dataDir,
        coreUrl: cfg.server.public_url ?? `http://${host.includes(":") ? `[${host}]` : host}:${listen.port}`,
        coreToken: adminToken
      }).pipe(Effect.mapError((e) => new ConfigError({ message: `${file ?? "configuration"}: ${e.message}` })))
    }
    return {
      host: listen.host,
      port: listen.port,
      dataDir,
      publicUrl: cfg.server.public_url,
      adminToken,
      adminTokenFile,
      hold: cfg.admin.hold ?? false,
      maxBytesPerFile: cfg.job.max_size_per_file_mb * 1024 * 1024,
      maxRuntime: cfg.job.max_runtime,
      jobAutoArchive: cfg.job.auto_archive,
      jobAutoPurge: cfg.job.auto_purge,
      purgeDelayMs: cfg.job.purge_delay_msec,
      fileAutoArchive: cfg.file.auto_archive,
      storage: cfg.storage !== undefined ? S3ObjectStore.fromSchema(cfg.storage) : undefined,
      local,
      aws,
      remote: cfg.factory.providers ?? [],
      bootTimeoutMs: cfg.factory.boot_timeout_s !== undefined ? Math.round(cfg.factory.boot_timeout_s * 1000) : undefined,
      github,
      githubUsesThisServer
    } satisfies ResolvedConfig
  })

/**
 * What a separate factory process runs (`dist/factory.js`): one provider of the file, and how to
 * reach the server.
 *
 * - `url`: `[factory] url`, else the server's `public_url`, else `http://<listen>` (with
 *   `0.0.0.0` read as `127.0.0.1`).
 * - `token`: the environment's `BUILDOMAT_FACTORY_TOKEN`, else `[factory] token`.
 * - `agentUrl`, `intervalMs`, `bootTimeoutMs`: `[factory] agent_url`, `interval_ms`,
 *   `boot_timeout_s`.
 * - `provider`: the provider of kind `kind`, or, without one, the only one in `[factory]
 *   providers`, or the only one configured.
 *
 * @since 0.1.0
 * @category models
 */
export interface FactoryConfig {
  readonly url: string
  readonly token: string
  readonly agentUrl: string | undefined
  readonly intervalMs: number | undefined
  readonly bootTimeoutMs: number | undefined
  readonly provider:
    | { readonly kind: "local"; readonly config: LocalProvider.LocalProviderConfig }
    | { readonly kind: "aws"; readonly config: AwsProvider.AwsProviderConfig }
}

/**
 * Reads a configuration file for a factory process that runs provider `kind` (see
 * `FactoryConfig`). Creates nothing on disk. Fails with `ConfigError` when there is no token, no
 * such provider, or no way to choose one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadFactory = (file: string | undefined, kind: string | undefined) =>
  Effect.gen(function*() {
    const r = yield* readFile(file)
    const { cfg, listen, where } = r
    const { aws, local } = yield* providersOf(r)
    const configured: Array<ProviderKind> = [...(local !== undefined ? ["local" as const] : []), ...(aws !== undefined ? ["aws" as const] : [])]
    let chosen: string | undefined = kind
    if (chosen === undefined) {
      const candidates = cfg.factory.providers ?? configured
      if (candidates.length !== 1) {
        return yield* new ConfigError({
          message: `${where}: say which provider to run: --provider ${configured.join("|") || "local|aws"}`
        })
      }
      chosen = candidates[0]
    }
    const token = process.env["BUILDOMAT_FACTORY_TOKEN"] || cfg.factory.token
    if (token === undefined || token === "") {
      return yield* new ConfigError({
        message: `${where}: no factory token: set [factory] token or BUILDOMAT_FACTORY_TOKEN (make one with: buildomat admin factory create NAME)`
      })
    }
    const host = listen.host === "0.0.0.0" || listen.host === "::" ? "127.0.0.1" : listen.host
    const url = cfg.factory.url ?? cfg.server.public_url ?? `http://${host.includes(":") ? `[${host}]` : host}:${listen.port}`
    const common = {
      url,
      token,
      agentUrl: cfg.factory.agent_url,
      intervalMs: cfg.factory.interval_ms,
      bootTimeoutMs: cfg.factory.boot_timeout_s !== undefined ? Math.round(cfg.factory.boot_timeout_s * 1000) : undefined
    }
    if (chosen === "local" && local !== undefined) return { ...common, provider: { kind: "local", config: local } } satisfies FactoryConfig
    if (chosen === "aws" && aws !== undefined) return { ...common, provider: { kind: "aws", config: aws } } satisfies FactoryConfig
    return yield* new ConfigError({
      message: chosen === "local" || chosen === "aws"
        ? `${where}: --provider ${chosen}, but there is no [providers.${chosen}]`
        : `${where}: unknown provider ${JSON.stringify(chosen)} (expected local or aws)`
    })
  })
