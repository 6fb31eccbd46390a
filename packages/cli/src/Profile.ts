/**
 * Credentials profiles: where the `buildomat` command finds the server's URL and the tokens to
 * present to it. The format and the rules follow buildomat's own CLI (`bin/src/config.rs`):
 *
 * ```toml
 * default_profile = "prod"            # optional
 *
 * [profile.prod]
 * url = "https://buildomat.example"
 * secret = "<user token>"
 * admin_token = "<admin token>"       # optional
 * ```
 *
 * The file is `$BUILDOMAT_CONFIG`, else `$XDG_CONFIG_HOME/buildomat/credentials.toml`, else
 * `~/.config/buildomat/credentials.toml`. When that file does not exist, buildomat's own name,
 * `config.toml`, in the same directory is read instead. Unknown keys are rejected with a
 * message that names the key and the file.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Config, Data, Effect, Option, ParseResult, Schema } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import * as Toml from "smol-toml"

/**
 * One `[profile.NAME]` table of the credentials file. `secret` is the user's bearer token;
 * `admin_token` (optional) is used for administrative commands. `name` is accepted for
 * compatibility with buildomat's file and otherwise ignored.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ProfileEntry = Schema.Struct({
  name: Schema.optionalWith(Schema.String, { exact: true }),
  url: Schema.String,
  secret: Schema.String,
  admin_token: Schema.optionalWith(Schema.String, { exact: true })
})

/**
 * The whole credentials file: an optional `default_profile` and the `profile` tables.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CredentialsFile = Schema.Struct({
  default_profile: Schema.optionalWith(Schema.String, { exact: true }),
  profile: Schema.optionalWith(Schema.Record({ key: Schema.String, value: ProfileEntry }), {
    default: () => ({}),
    exact: true
  })
})

/**
 * A decoded credentials file.
 *
 * @since 0.1.0
 * @category models
 */
export type CredentialsFile = typeof CredentialsFile.Type

/**
 * A resolved profile. `name` is the profile's name in the file, or `"environment"` when the
 * environment alone provided it; `source` says where it came from (a file path or the
 * variables used), for messages.
 *
 * @since 0.1.0
 * @category models
 */
export interface Profile {
  readonly name: string
  readonly url: string
  readonly secret: string
  readonly admin_token?: string | undefined
  readonly source: string
}

/**
 * Why no profile could be loaded: no configuration at all, an unreadable or malformed file,
 * an unknown key, or a profile that is not in the file. `message` says which file was read or
 * looked for, and what to do.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProfileError extends Data.TaggedError("ProfileError")<{ readonly message: string }> {}

/**
 * The environment variables that override or replace the file, in precedence order for each
 * field: `BUILDOMAT_URL` > `INPUT_URL` > file `url`; `BUILDOMAT_TOKEN` > `INPUT_SECRET` > file
 * `secret`; `BUILDOMAT_ADMIN_TOKEN` > `INPUT_ADMIN_TOKEN` > file `admin_token`.
 * `BUILDOMAT_PROFILE` picks the profile when `-p` is not given.
 *
 * @since 0.1.0
 * @category constants
 */
export const ENVIRONMENT_VARIABLES = [
  "BUILDOMAT_CONFIG",
  "BUILDOMAT_PROFILE",
  "BUILDOMAT_URL",
  "BUILDOMAT_TOKEN",
  "BUILDOMAT_ADMIN_TOKEN",
  "INPUT_URL",
  "INPUT_SECRET",
  "INPUT_ADMIN_TOKEN"
] as const

/** Reads a variable; an empty value counts as unset. */
const env = (name: string): Effect.Effect<string | undefined> =>
  Config.option(Config.string(name)).pipe(
    Effect.map((o) => Option.getOrUndefined(Option.filter(o, (s) => s.length > 0))),
    Effect.orElseSucceed(() => undefined)
  )

/**
 * The credentials files to look for, in order: `$BUILDOMAT_CONFIG` alone when it is set,
 * otherwise `credentials.toml` then buildomat's `config.toml` in
 * `$XDG_CONFIG_HOME/buildomat` (or `$HOME/.config/buildomat`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const candidatePaths: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function*() {
  const explicit = yield* env("BUILDOMAT_CONFIG")
  if (explicit !== undefined) return [explicit]
  const xdg = yield* env("XDG_CONFIG_HOME")
  const home = (yield* env("HOME")) ?? os.homedir()
  const dir = path.join(xdg ?? path.join(home, ".config"), "buildomat")
  return [path.join(dir, "credentials.toml"), path.join(dir, "config.toml")]
})

const formatPath = (p: ReadonlyArray<PropertyKey>): string =>
  p.map((k) => (typeof k === "string" && /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(String(k)))).join(".")

/**
 * Parses and decodes the text of a credentials file. `file` is only used in messages.
 * Fails with a `ProfileError` for TOML syntax errors (with line and column), unknown keys
 * (`unknown key "profile.prod.colour" in FILE`), missing keys and values of the wrong type.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (text: string, file: string): Effect.Effect<CredentialsFile, ProfileError> =>
  Effect.gen(function*() {
    const raw = yield* Effect.try({
      try: () => Toml.parse(text),
      catch: (e) => new ProfileError({ message: `${file}: invalid TOML: ${e instanceof Error ? e.message : String(e)}` })
    })
    return yield* Schema.decodeUnknown(CredentialsFile, { onExcessProperty: "error", errors: "all" })(raw).pipe(
      Effect.mapError((error) => {
        const issues = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => {
          const key = formatPath(issue.path)
          switch (issue._tag) {
            case "Unexpected":
              return `unknown key "${key}"`
            case "Missing":
              return `missing key "${key}"`
            default:
              return `${key === "" ? "file" : `"${key}"`}: ${issue.message}`
          }
        })
        return new ProfileError({ message: `${file}: ${issues.join("; ")}` })
      })
    )
  })

/**
 * Options for `load`: `profile` is the `-p/--profile` argument, if any.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadOptions {
  readonly profile?: string | undefined
}

const missingMessage = (paths: ReadonlyArray<string>) =>
  [
    `no buildomat credentials: looked for ${paths.join(" and ")}, which ${paths.length > 1 ? "do" : "does"} not exist.`,
    `Create it with a profile:`,
    ``,
    `    [profile.default]`,
    `    url = "https://buildomat.example"`,
    `    secret = "<user token>"`,
    ``,
    `or set BUILDOMAT_URL and BUILDOMAT_TOKEN (or INPUT_URL and INPUT_SECRET) in the environment;`,
    `BUILDOMAT_ADMIN_TOKEN, BUILDOMAT_PROFILE and BUILDOMAT_CONFIG are also read.`
  ].join("\n")

/**
 * Resolves the profile to use. Rules, as buildomat's CLI with our `BUILDOMAT_*` variables added:
 *
 * 1. If the environment gives both a URL (`BUILDOMAT_URL` or `INPUT_URL`) and a user token
 *    (`BUILDOMAT_TOKEN` or `INPUT_SECRET`), that is the whole profile and no file is read
 *    (`-p` is then ignored, as buildomat ignores it).
 * 2. Otherwise the file is read (see `candidatePaths`); the profile is `-p` >
 *    `BUILDOMAT_PROFILE` > `default_profile` > `"default"`.
 * 3. Each variable that is set then overrides its field (see `ENVIRONMENT_VARIABLES`).
 *
 * Fails with a `ProfileError` naming the file looked for and the variables that work when
 * nothing is configured, and naming the file and key on any error in the file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (options?: LoadOptions): Effect.Effect<Profile, ProfileError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const e = {
      url: (yield* env("BUILDOMAT_URL")) ?? (yield* env("INPUT_URL")),
      secret: (yield* env("BUILDOMAT_TOKEN")) ?? (yield* env("INPUT_SECRET")),
      admin_token: (yield* env("BUILDOMAT_ADMIN_TOKEN")) ?? (yield* env("INPUT_ADMIN_TOKEN"))
    }
    if (e.url !== undefined && e.secret !== undefined) {
      return {
        name: "environment",
        url: e.url,
        secret: e.secret,
        ...(e.admin_token !== undefined ? { admin_token: e.admin_token } : {}),
        source: "environment"
      } satisfies Profile
    }

    const fs = yield* FileSystem.FileSystem
    const paths = yield* candidatePaths
    let file: string | undefined
    for (const p of paths) {
      const exists = yield* fs.exists(p).pipe(Effect.orElseSucceed(() => false))
      if (exists) {
        file = p
        break
      }
    }
    if (file === undefined) return yield* new ProfileError({ message: missingMessage(paths) })
    const where = file
    const text = yield* fs.readFileString(where).pipe(
      Effect.mapError((err) => new ProfileError({ message: `${where}: cannot read: ${err.message}` }))
    )
    const config = yield* parse(text, where)

    const fromEnv = yield* env("BUILDOMAT_PROFILE")
    const [name, why] = options?.profile !== undefined
      ? [options.profile, "-p argument"]
      : fromEnv !== undefined
      ? [fromEnv, "BUILDOMAT_PROFILE environment variable"]
      : config.default_profile !== undefined
      ? [config.default_profile, `"default_profile" in ${where}`]
      : ["default", "fallback default"]
    const entry = Object.prototype.hasOwnProperty.call(config.profile, name) ? config.profile[name] : undefined
    if (entry === undefined) {
      const known = Object.keys(config.profile)
      return yield* new ProfileError({
        message: `profile "${name}" (from ${why}) not found in ${where}` +
          (known.length > 0 ? ` (profiles: ${known.join(", ")})` : " (it has no [profile.NAME] tables)")
      })
    }
    const admin_token = e.admin_token ?? entry.admin_token
    return {
      name,
      url: e.url ?? entry.url,
      secret: e.secret ?? entry.secret,
      ...(admin_token !== undefined ? { admin_token } : {}),
      source: where
    } satisfies Profile
  })

/**
 * The token for administrative commands: the profile's `admin_token` when it has one, else the
 * user token (which works when the user holds the needed `admin.*` privilege), as buildomat.
 *
 * @since 0.1.0
 * @category accessors
 */
export const adminToken = (profile: Profile): string => profile.admin_token ?? profile.secret
