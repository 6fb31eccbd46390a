/**
 * Job files: `.github/buildomat/jobs/*.sh` at the commit under test. Each is a bash script whose
 * front matter (the `#:` lines of the comment block after the `#!` line) is TOML:
 *
 * ```bash
 * #!/bin/bash
 * #:
 * #: name = "build"
 * #: variety = "basic"
 * #: target = "default"
 * #: output_rules = ["/work/out/*"]
 * #:
 * #: [dependencies.lint]
 * #: job = "lint"
 *
 * cargo build --release
 * ```
 *
 * The parser follows buildomat's `jobsh::jobfile` (shared/reference/buildomat-core.md §9,
 * buildomat-github.md §3.3): the first line must start with `#!`; the front matter is the run of
 * `#` lines after it, of which only `#:` lines count; `enable = false` skips a file;
 * `enabled`/`disable`/`disabled` are refused as typos; names are unique; dependencies must name a
 * job of the same commit and must not form a cycle; at most 32 files (buildomat's check is off by
 * one and accepts 33; this one is not). The variety's own keys are validated by
 * `BasicConfig` when the job is submitted, so that a mistake fails only that check run.
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { parse as parseToml, TomlError } from "smol-toml"

/**
 * The most job files one commit may have.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_JOB_FILES = 32

/**
 * The largest job file read, in bytes (GitHub's contents API serves files up to 1 MB inline).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_JOB_FILE_BYTES = 1024 * 1024

/**
 * One dependency of a job file: `[dependencies.<name>] job = "<other job name>"`. The outputs of
 * that job appear under `/input/<name>/` in the dependent job. `config` holds any other keys of
 * the table, kept as given.
 *
 * @since 0.1.0
 * @category models
 */
export interface Dependency {
  readonly job: string
  readonly config: Readonly<Record<string, unknown>>
}

/**
 * A parsed, enabled job file, as stored in a check suite's plan (buildomat's `JobFile`):
 * `config` is the front matter without the global keys (`name`, `variety`, `enable`,
 * `dependencies`), `content` the whole file, which becomes the `build` task's script.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobFile {
  readonly path: string
  readonly name: string
  readonly variety: "basic"
  readonly config: Readonly<Record<string, unknown>>
  readonly content: string
  readonly dependencies: Readonly<Record<string, Dependency>>
}

/**
 * A job file, or the set of them, is invalid; `message` says which file and why, in words meant
 * for the control check run on GitHub.
 *
 * @since 0.1.0
 * @category errors
 */
export class JobFileError extends Schema.TaggedError<JobFileError>()("JobFileError", { message: Schema.String }) {}

const GLOBAL_KEYS = new Set(["name", "variety", "enable", "dependencies"])
const TYPO_KEYS = ["enabled", "disable", "disabled"]

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date)

const tomlMessage = (e: unknown): string => {
  if (e instanceof TomlError) {
    // smol-toml's message has a code frame after the first line; the first line says it.
    return `${e.message.split("\n")[0]} (front matter line ${e.line}, column ${e.column})`
  }
  return String((e as Error)?.message ?? e)
}

/**
 * Extracts the TOML front matter of a job file: the lines after the first that start with `#`,
 * up to the first line that does not (a blank line ends it too), keeping only those that start
 * with `#:`, without that prefix.
 *
 * @since 0.1.0
 * @category parsing
 */
export const frontMatter = (content: string): string => {
  const lines = content.split(/\r?\n/)
  const out: Array<string> = []
  for (const line of lines.slice(1)) {
    if (!line.startsWith("#")) break
    if (line.startsWith("#:")) out.push(line.replace(/^(#:)+/, ""))
  }
  return out.join("\n")
}

/**
 * Parses one job file. Succeeds with the job, or `undefined` when the file says
 * `enable = false`; fails with a `JobFileError` whose message names the file.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (path: string, content: string): Either.Either<JobFile | undefined, JobFileError> => {
  const fail = (message: string) => Either.left(new JobFileError({ message }))
  if (content.length > 0 && !content.startsWith("#!")) {
    return fail(`${JSON.stringify(path)} must have an interpreter line (for example "#!/bin/bash")`)
  }
  let doc: Record<string, unknown>
  try {
    doc = parseToml(frontMatter(content)) as Record<string, unknown>
  } catch (e) {
    return fail(`TOML front matter in ${JSON.stringify(path)}: ${tomlMessage(e)}`)
  }
  for (const k of TYPO_KEYS) {
    if (k in doc) return fail(`TOML front matter in ${JSON.stringify(path)}: use "enable" to disable a job, not ${JSON.stringify(k)}`)
  }
  const where = `TOML front matter in ${JSON.stringify(path)}`
  if (doc["enable"] !== undefined && typeof doc["enable"] !== "boolean") {
    return fail(`${where}: "enable" must be true or false`)
  }
  if (doc["enable"] === false) return Either.right(undefined)
  const name = doc["name"]
  if (name === undefined) return fail(`${where}: missing field "name"`)
  if (typeof name !== "string" || name.trim() === "") return fail(`${where}: "name" must be a non-empty string`)
  if (name.length > 100) return fail(`${where}: "name" is longer than 100 characters`)
  const variety = doc["variety"]
  if (variety === undefined) return fail(`${where}: missing field "variety"`)
  if (variety !== "basic") return fail(`${where}: unknown variety ${JSON.stringify(variety)}; the only variety is "basic"`)
  const dependencies: Record<string, Dependency> = {}
  const deps = doc["dependencies"]
  if (deps !== undefined) {
    if (!isTable(deps)) return fail(`${where}: "dependencies" must be a table of tables, as [dependencies.NAME] job = "..."`)
    for (const [depName, dep] of Object.entries(deps)) {
      if (!isTable(dep)) return fail(`${where}: dependency ${JSON.stringify(depName)} must be a table with a "job" key`)
      if (!/^[A-Za-z0-9._-]+$/.test(depName)) {
        return fail(`${where}: dependency name ${JSON.stringify(depName)} may only use letters, digits, ".", "_" and "-"`)
      }
      const { job, ...config } = dep
      if (typeof job !== "string") return fail(`${where}: dependency ${JSON.stringify(depName)} needs job = "<job name>"`)
      dependencies[depName] = { job, config: toJson(config) as Record<string, unknown> }
    }
  }
  const config: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(doc)) if (!GLOBAL_KEYS.has(k)) config[k] = toJson(v)
  return Either.right({ path, name, variety: "basic", config, content, dependencies })
}

/** TOML dates become strings, so that the config is plain JSON. */
const toJson = (v: unknown): unknown => {
  if (v instanceof Date) return v.toISOString()
  if (Array.isArray(v)) return v.map(toJson)
  if (isTable(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]))
  return v
}

/**
 * Validates the set of job files of one commit and sorts it by name: at most `MAX_JOB_FILES`,
 * unique names, every dependency present, no cycles.
 *
 * @since 0.1.0
 * @category parsing
 */
export const validateSet = (files: ReadonlyArray<JobFile>): Either.Either<ReadonlyArray<JobFile>, JobFileError> => {
  const fail = (message: string) => Either.left(new JobFileError({ message }))
  if (files.length > MAX_JOB_FILES) return fail(`a commit may have at most ${MAX_JOB_FILES} job files, this one has ${files.length}`)
  const byName = new Map<string, JobFile>()
  for (const f of files) {
    if (byName.has(f.name)) return fail(`job name ${JSON.stringify(f.name)} is used in more than one file (${byName.get(f.name)!.path}, ${f.path})`)
    byName.set(f.name, f)
  }
  for (const f of files) {
    for (const d of Object.values(f.dependencies)) {
      if (!byName.has(d.job)) return fail(`job ${JSON.stringify(f.name)} depends on job ${JSON.stringify(d.job)} that is not present in the plan`)
    }
  }
  // Depth-first search from each job; a job met again on the current path closes a cycle.
  for (const start of files) {
    const path: Array<string> = []
    const visit = (name: string): string | undefined => {
      if (path.includes(name)) return [...path.slice(path.indexOf(name)), name].join(" -> ")
      path.push(name)
      for (const d of Object.values(byName.get(name)!.dependencies)) {
        const c = visit(d.job)
        if (c !== undefined) return c
      }
      path.pop()
      return undefined
    }
    const cycle = visit(start.name)
    if (cycle !== undefined) return fail(`job ${JSON.stringify(start.name)} creates a dependency cycle: ${cycle}`)
  }
  return Either.right([...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)))
}

/**
 * One `publish` rule: after the job ends (even if it failed), the output whose path is
 * `from_output` is published as `series`/`<commit sha>`/`name`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PublishRule = Schema.Struct({
  from_output: Schema.String.pipe(Schema.startsWith("/")),
  series: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._-]{1,128}$/)),
  name: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._-]{1,128}$/))
}).annotations({ identifier: "PublishRule", parseOptions: { onExcessProperty: "error" } })

/**
 * The `basic` variety's front matter (buildomat's `BasicConfig`, unknown keys refused):
 *
 * - `target`: the core target name (default `"default"`);
 * - `output_rules`: core output rules, passed as they are (`=` must match, `%` may change,
 *   `!` excludes; `*` and `**` globs);
 * - `rust_toolchain`: a rustup channel, or `true` to read `rust-toolchain.toml` at the commit;
 * - `access_repos`: other repositories (`owner/name`) the job's GitHub token may read; this
 *   needs the suite to be authorised by the owner or an organisation member;
 * - `publish`: `PublishRule`s;
 * - `skip_clone`: do not clone the repository (the build runs in `/work`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const BasicConfig = Schema.Struct({
  target: Schema.optionalWith(Schema.NonEmptyString, { default: () => "default" }),
  output_rules: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  rust_toolchain: Schema.optional(Schema.Union(Schema.NonEmptyString, Schema.Boolean)),
  access_repos: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  publish: Schema.optionalWith(Schema.Array(PublishRule), { default: () => [] }),
  skip_clone: Schema.optionalWith(Schema.Boolean, { default: () => false })
}).annotations({ identifier: "BasicConfig", parseOptions: { onExcessProperty: "error" } })
/** @since 0.1.0 @category models */
export type BasicConfig = typeof BasicConfig.Type

const BASIC_KEYS = ["target", "output_rules", "rust_toolchain", "access_repos", "publish", "skip_clone"]

/**
 * Decodes a job's `config` as `BasicConfig`. The error message starts `TOML front matter: ` and
 * names the key, for example ``unknown field "tagret", expected one of "target", ...``.
 *
 * @since 0.1.0
 * @category parsing
 */
export const decodeBasic = (config: unknown): Either.Either<BasicConfig, string> => {
  if (isTable(config)) {
    for (const k of Object.keys(config)) {
      if (!BASIC_KEYS.includes(k)) {
        return Either.left(`TOML front matter: unknown field ${JSON.stringify(k)}, expected one of ${BASIC_KEYS.map((x) => JSON.stringify(x)).join(", ")}`)
      }
    }
  }
  return Schema.decodeUnknownEither(BasicConfig)(config).pipe(
    Either.mapLeft((e) => `TOML front matter: ${ParseResult.TreeFormatter.formatErrorSync(e)}`)
  )
}

/**
 * Reads the `[toolchain]` table of a `rust-toolchain.toml` (the TOML form only): `channel` is
 * required, `profile` defaults to `"default"`, and `path` (a local toolchain) is refused.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseRustToolchain = (text: string): Either.Either<{ readonly channel: string; readonly profile: string }, string> => {
  let doc: Record<string, unknown>
  try {
    doc = parseToml(text) as Record<string, unknown>
  } catch (e) {
    return Either.left(`rust-toolchain.toml: ${tomlMessage(e)}`)
  }
  const tc = doc["toolchain"]
  if (!isTable(tc)) return Either.left("rust-toolchain.toml: no [toolchain] table")
  if (tc["path"] !== undefined) return Either.left("rust-toolchain.toml: a \"path\" toolchain cannot be installed")
  if (typeof tc["channel"] !== "string") return Either.left("rust-toolchain.toml: [toolchain] needs a \"channel\"")
  const profile = tc["profile"] ?? "default"
  if (typeof profile !== "string") return Either.left("rust-toolchain.toml: \"profile\" must be a string")
  return Either.right({ channel: tc["channel"], profile })
}
