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
 * targets = ["default"]
 * limit = 4
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
 * A target may be served by one provider only.
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
  github: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}).annotations({ identifier: "ConfigFile", ...strict })

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

/**
 * Reads and resolves a configuration file (`undefined` means no file: all defaults, relative to
 * the working directory). Creates the data directory, and the admin token file if needed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (file: string | undefined) =>
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
    const dataDir = NodePath.resolve(base, cfg.server.data_dir)
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
    let local: LocalProvider.LocalProviderConfig | undefined
    if (cfg.providers.local !== undefined) {
      const table = { scratch_root: NodePath.join(dataDir, "workers"), ...cfg.providers.local }
      local = yield* Schema.decodeUnknown(LocalProvider.LocalProviderConfigSchema)(table).pipe(
        Effect.mapError((e) => new ConfigError({ message: `${file ?? "configuration"}: [providers.local]: ${e.message}` }))
      )
      local = { ...local, scratchRoot: NodePath.resolve(base, local.scratchRoot) }
    }
    let aws: AwsProvider.AwsProviderConfig | undefined
    if (cfg.providers.aws !== undefined) {
      aws = yield* Schema.decodeUnknown(AwsProvider.AwsProviderConfigSchema)(cfg.providers.aws).pipe(
        Effect.mapError((e) => new ConfigError({ message: `${file ?? "configuration"}: [providers.aws]: ${e.message}` }))
      )
      const shared = Object.keys(aws.targets).filter((t) => local?.targets?.includes(t) ?? false)
      if (shared.length > 0) {
        return yield* new ConfigError({
          message: `${file ?? "configuration"}: target ${JSON.stringify(shared[0])} is served by both [providers.local] and [providers.aws]; give each target one provider`
        })
      }
    }
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
      github,
      githubUsesThisServer
    } satisfies ResolvedConfig
  })
