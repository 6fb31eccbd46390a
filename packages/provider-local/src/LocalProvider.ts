/**
 * A worker provider that starts each worker's agent as a local child process, in a scratch
 * directory of its own: the embedded default of buildomat for TypeScript. It plays the part of
 * buildomat's factories (`buildomat-factory-aws` and friends) for one machine: the "instance" is
 * a process group, the scratch directory is its disk, and destroying the worker kills the group
 * and removes the directory.
 *
 * Layout of one worker, under `scratchRoot`:
 *
 * ```text
 * <scratchRoot>/<worker>/root       the job's "/" (agent `--root`)
 * <scratchRoot>/<worker>/state      the agent's own state (agent `--state-dir`)
 * <scratchRoot>/<worker>/agent.log  the agent's stdout and stderr, appended
 * <scratchRoot>/.local-provider     the provider's own (mode 0700): the agents' V8 code cache,
 *                                    agent host logs
 * ```
 *
 * @since 0.1.0
 */
import { WorkerProvider, Workers } from "@buildomat/core"
import { Deferred, Effect, Either, FiberId, Layer, Runtime, Schema } from "effect"
import type { Scope } from "effect"
import { execFileSync, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { CODE_CACHE_ENV, resolveAgentCommand } from "./internal/agentCommand.js"
import { type AgentHost, type HostedAgent, startHost } from "./internal/agentHost.js"
import { groupAlive, signalGroup, waitGone } from "./internal/processGroup.js"

/**
 * One target of the local provider (a `[targets.<name>]` table in TOML):
 *
 * - `limit`: the most workers of this target at once; default: the provider's `limit`.
 * - `warm`: how many agents to keep started and bootstrapped ahead of demand, so that a job
 *   starts at once; still one job per worker, and the pool is refilled as workers are used.
 *   Default: the provider's `warm` (0). At most `limit`.
 * - `scratchRoot`: where this target's workers' scratch directories go; default: the
 *   provider's `scratchRoot`.
 * - `user`: run this target's agents (and so their tasks) as this user: a name, or a numeric
 *   `uid` or `uid:gid`. Needs the server (or factory process) to run as root; otherwise `make`
 *   fails saying so. Default: the provider's `user`, else the server's own user.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalTargetConfig {
  readonly limit?: number | undefined
  readonly warm?: number | undefined
  readonly scratchRoot?: string | undefined
  readonly user?: string | undefined
}

/**
 * What `make` needs. Only `scratchRoot` is required.
 *
 * - `name`: the factory name shown in worker listings; default `"local"`.
 * - `targets`: the target names this provider makes workers for, as a list (`["default"]`, the
 *   default), or as a record of target name to `LocalTargetConfig` (per-target limit, warm pool,
 *   scratch root and user).
 * - `limit`: the most workers (agent process groups) alive at once, over all targets; default
 *   `4`. An instance counts until it is destroyed, even if its agent already exited.
 * - `warm`: the warm pool size of every target that sets none; default `0`.
 * - `user`: the user of every target that sets none (see `LocalTargetConfig.user`).
 * - `scratchRoot`: the directory that holds one scratch directory per worker; created if
 *   missing. Relative paths are resolved against the current directory when `make` runs.
 * - `agentCommand`: the argv prefix that starts an agent, e.g. `["node", "/opt/agent.cjs"]`; the
 *   provider appends `run --url URL --bootstrap VALUE --state-dir DIR --root DIR`. Default:
 *   `[process.execPath, <path of "@buildomat/agent/bundle/cached">]`, the bundle run through a
 *   V8 code cache in `<scratchRoot>/.local-provider/code-cache`; if that bundle is not built,
 *   `create` fails with a `ProviderError` that says to run `npm run build`.
 * - `env`: extra environment variables for agents. Agents do not inherit the server's whole
 *   environment (it may hold secrets that job tasks could read); they get only `PATH`, `HOME`,
 *   `USER`, `LOGNAME`, `SHELL`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ` and `TMPDIR` from it, then `env`
 *   on top. An agent run as another `user` gets that user's `USER`/`LOGNAME`, and its scratch
 *   directory as `HOME`.
 * - `killGraceMs`: milliseconds between SIGTERM and SIGKILL when destroying; default `2000`.
 * - `agentHost`: run the agents of each target in one agent host process
 *   (`buildomat-agent host`, see `@buildomat/agent`'s `Host`) instead of a process each; default
 *   `false`. Each worker still gets a fresh agent, scratch directory, bootstrap value and process
 *   groups for its tasks (and, with a `user`, its own `HOME`), but skips the ~100 ms of CPU that
 *   starting Node and loading the agent costs, which is most of a trivial job's cost. What they
 *   share is the host: if it dies, its workers are gone (their jobs fail, saying so), and a
 *   server that is killed takes its hosts' jobs with it instead of adopting them on restart.
 *   `agentCommand` must then start the buildomat agent.
 * - `factoryMetadata`: buildomat factory metadata (`{ v: "1", post_job_diagnostic_script, ... }`,
 *   see `Workers.FactoryMetadata`) recorded with every worker and handed to its agent: diagnostic
 *   scripts run before and after each job, root's authorized keys.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalProviderConfig {
  readonly name?: string | undefined
  readonly targets?: ReadonlyArray<string> | Readonly<Record<string, LocalTargetConfig>> | undefined
  readonly limit?: number | undefined
  readonly warm?: number | undefined
  readonly user?: string | undefined
  readonly scratchRoot: string
  readonly agentCommand?: ReadonlyArray<string> | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly killGraceMs?: number | undefined
  readonly agentHost?: boolean | undefined
  readonly factoryMetadata?: unknown
}

/**
 * The names of the targets a configuration serves (the list, or the record's keys).
 *
 * @since 0.1.0
 * @category utils
 */
export const targetNames = (config: Pick<LocalProviderConfig, "targets">): ReadonlyArray<string> => {
  const t = config.targets ?? ["default"]
  return isTargetList(t) ? t : Object.keys(t)
}

const isTargetList = (t: ReadonlyArray<string> | Readonly<Record<string, LocalTargetConfig>>): t is ReadonlyArray<string> =>
  Array.isArray(t)

/**
 * What is wrong with a configuration, or `undefined` if nothing: no targets, a warm pool larger
 * than its target's limit.
 *
 * @since 0.1.0
 * @category utils
 */
export const validate = (config: LocalProviderConfig): string | undefined => {
  const names = targetNames(config)
  if (names.length === 0) return "no targets: list at least one target name"
  const limit = config.limit ?? 4
  if ((config.warm ?? 0) > limit) return `warm (${config.warm}) is more than limit (${limit})`
  const t = config.targets
  if (t !== undefined && !isTargetList(t)) {
    for (const name of names) {
      const c = t[name]!
      const tl = Math.min(limit, c.limit ?? limit)
      const warm = c.warm ?? config.warm ?? 0
      if (warm > tl) return `target "${name}": warm (${warm}) is more than its limit (${tl})`
    }
  }
  return undefined
}

const TargetSchema = Schema.Struct({
  limit: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { exact: true }),
  warm: Schema.optionalWith(Schema.NonNegativeInt, { exact: true }),
  scratchRoot: Schema.optionalWith(Schema.NonEmptyString, { exact: true }).pipe(Schema.fromKey("scratch_root")),
  user: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true })
}).annotations({ identifier: "LocalTargetConfig", parseOptions: { onExcessProperty: "error" } })

/**
 * Decodes a `LocalProviderConfig` from a TOML table (as parsed by `smol-toml`), filling in the
 * defaults. Keys are snake_case, as in buildomat's factory configuration files; unknown keys are
 * rejected by name; `validate` runs last.
 *
 * ```toml
 * name = "local"               # optional
 * targets = ["default"]        # optional; or one table per target:
 * limit = 4                    # optional, integer >= 1, over all targets
 * warm = 0                     # optional, spare agents kept bootstrapped per target
 * # user = "build"             # optional; needs the server to run as root
 * scratch_root = "/var/tmp/buildomat"
 * agent_command = ["node", "/opt/buildomat-agent.cjs"]   # optional, non-empty
 * kill_grace_ms = 2000         # optional, integer >= 0
 * [env]                        # optional, string values
 * RUST_LOG = "info"
 *
 * # instead of the list: a table per target
 * [targets.default]
 * limit = 2                    # optional; at most the provider's limit
 * warm = 1                     # optional
 * scratch_root = "/scratch"    # optional
 * user = "build"               # optional
 *
 * [factory_metadata]           # optional, buildomat's FactoryMetadata
 * v = "1"
 * post_job_diagnostic_script = "df -h"
 * ```
 *
 * Decode with `Schema.decodeUnknown(LocalProviderConfigSchema)`; the result can be passed to
 * `make` or `layer` as is. Errors are `ParseError`s that name the offending key.
 *
 * @since 0.1.0
 * @category schemas
 */
export const LocalProviderConfigSchema = Schema.Struct({
  name: Schema.optionalWith(Schema.NonEmptyTrimmedString, { default: () => "local" }),
  targets: Schema.optionalWith(
    Schema.Union(
      Schema.Array(Schema.NonEmptyTrimmedString),
      Schema.Record({ key: Schema.NonEmptyTrimmedString, value: TargetSchema })
    ),
    { default: () => ["default"] }
  ),
  limit: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => 4 }),
  warm: Schema.optionalWith(Schema.NonNegativeInt, { exact: true }),
  user: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }),
  scratchRoot: Schema.propertySignature(Schema.NonEmptyString).pipe(Schema.fromKey("scratch_root")),
  agentCommand: Schema.optionalWith(Schema.NonEmptyArray(Schema.NonEmptyString), { exact: true }).pipe(
    Schema.fromKey("agent_command")
  ),
  env: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { exact: true }),
  killGraceMs: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 2000 }).pipe(
    Schema.fromKey("kill_grace_ms")
  ),
  agentHost: Schema.optionalWith(Schema.Boolean, { exact: true }).pipe(Schema.fromKey("agent_host")),
  factoryMetadata: Schema.optionalWith(Workers.FactoryMetadata, { exact: true }).pipe(Schema.fromKey("factory_metadata"))
}).pipe(
  Schema.filter((c) => validate(c)),
  Schema.annotations({
    identifier: "LocalProviderConfig",
    parseOptions: { onExcessProperty: "error" }
  })
)

/**
 * The uid and gid to run agents as, from a user name, or a numeric `uid` or `uid:gid`, for a
 * process running as `currentUid`. Fails with a message when `currentUid` is not 0 (only root
 * may start processes as another user) or the user does not exist.
 *
 * @since 0.1.0
 * @category utils
 */
export const resolveRunAs = (
  user: string,
  currentUid: number | undefined
): Either.Either<{ readonly uid: number; readonly gid: number; readonly name: string }, string> => {
  if (currentUid !== 0) {
    return Either.left(
      `user = ${JSON.stringify(user)} needs the server (or factory process) to run as root to start agents as another user; ` +
        `it runs as uid ${currentUid ?? "unknown"}. Remove "user" or run it as root`
    )
  }
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user)
  if (numeric !== null) {
    const uid = Number(numeric[1])
    return Either.right({ uid, gid: numeric[2] !== undefined ? Number(numeric[2]) : uid, name: user })
  }
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, user], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim())
    return Either.right({ uid: id("-u"), gid: id("-g"), name: user })
  } catch {
    return Either.left(`user ${JSON.stringify(user)} does not exist on this machine`)
  }
}

/**
 * The default agent command, `[process.execPath, <path of "@buildomat/agent/bundle/cached">]`. Fails
 * with a `ProviderError` telling to run `npm run build` if the bundle is not built. A server can
 * run it at start-up to fail fast instead of on the first `create`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultAgentCommand: Effect.Effect<ReadonlyArray<string>, WorkerProvider.ProviderError> =
  resolveAgentCommand(import.meta.url)

/**
 * Why `user` (uid, gid) cannot reach directory `dir`, or `undefined` if it can: every directory
 * from `/` down to `dir` (or, where `dir` does not exist yet, its nearest existing ancestor) must
 * grant the user search permission, by the owner, group or other bits.
 */
const unreachable = (dir: string, user: { readonly uid: number; readonly gid: number; readonly name: string }) => {
  let d = path.resolve(dir)
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d)
  const chain: Array<string> = []
  for (let x = d; ; x = path.dirname(x)) {
    chain.unshift(x)
    if (path.dirname(x) === x) break
  }
  for (const x of chain) {
    const st = fs.statSync(x)
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001
    if ((st.mode & bit) === 0) {
      return `user ${JSON.stringify(user.name)} cannot reach ${dir}: no search permission on ${x}; choose a scratch_root it can reach`
    }
  }
  return undefined
}

/** Environment variables an agent inherits from the server; everything else must come from `env`. */
const INHERITED_ENV = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"]

/** Destroy waits this long after SIGKILL before it reports the group as stuck (and may be retried). */
const KILL_WAIT_MS = 5_000

/** A worker id becomes a directory name that is later `rm -rf`ed: allow no separators or dots. */
const SAFE_WORKER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/

/** The record of an agent in its scratch directory, read back after a crash. */
const INSTANCE_FILE = "instance.json"

/**
 * The provider's own directory in its scratch root (mode 0700): `code-cache/`, the agents'
 * shared V8 code cache, and `host-<target>.log`, the stderr of a target's agent host (see
 * `make`). Every other entry of a scratch root is a worker's directory.
 *
 * @since 0.1.0
 * @category constants
 */
export const PROVIDER_DIR = ".local-provider"

interface Instance {
  readonly instanceId: string
  readonly worker: string
  readonly target: string
  readonly pgid: number
  readonly dir: string
  /** The agent host that runs it, in `agentHost` mode (then `pgid` is the host's). */
  readonly host?: AgentHost | undefined
  exit: { readonly code: number | null; readonly signal: NodeJS.Signals | null } | undefined
  /** Its agent host died: the "machine" vanished, so `list` no longer shows it. */
  gone?: boolean
  destroying: Deferred.Deferred<void, WorkerProvider.ProviderError> | undefined
}

/**
 * Makes a local worker provider. Its instances live as long as the scope: closing the scope
 * destroys every instance (process group killed, scratch directory removed) and makes later
 * `create` calls fail.
 *
 * `make` fails with `ProviderError` if the configuration is invalid (see `validate`), or a
 * target's `user` cannot be used (see `resolveRunAs`) or cannot reach the target's scratch root
 * (every directory down to it must let the user search it). The provider's `policies` carry each
 * target's `limit` and `warm` pool size, which the reconcile loop honours.
 *
 * - `create({ worker, target, url, bootstrap })`: fails with `ProviderError` if `target` is not
 *   in `targets`, if `limit` instances exist already (overall, or for the target), if `worker`
 *   already has an instance or is not a plain name (`[A-Za-z0-9][A-Za-z0-9_-]*`, it becomes a
 *   directory name), if the agent command cannot be found, or if the process cannot be started.
 *   Otherwise it (re)creates `<scratchRoot>/<worker>/{root,state}` (the target's scratch root;
 *   owned by the target's user, if any), starts the agent in its own process group (as that
 *   user) with stdin ignored and stdout/stderr appended to `agent.log`, and returns
 *   `{ instanceId: "local-<pid>", worker, ip: "127.0.0.1" }`. The bootstrap value is passed on
 *   the agent's command line only, and never logged.
 * - `destroy(instanceId)`: SIGTERM to the whole process group, up to `killGraceMs` for it to
 *   go, then SIGKILL; then removes the scratch directory. Tasks the agent started are in its
 *   group, so they go too. Unknown or already destroyed instances succeed at once; concurrent
 *   calls for one instance share one teardown. Fails with `ProviderError` (and keeps the instance,
 *   so that a later call retries) if the group survives SIGKILL for 5 s or the directory cannot
 *   be removed.
 * - `list`: every instance not yet destroyed, including those whose agent already exited by
 *   itself (after power-off): its scratch directory, and possibly stray task processes, remain
 *   until `destroy`, the same way a stopped EC2 instance is still listed until terminated. With
 *   `agentHost`, the instances of a host that died are no longer listed: their machine vanished,
 *   and the server fails their jobs saying so.
 * - With `agentHost`, `create` starts the target's host if none runs and asks it for an agent
 *   (instance id `local-host-<host pid>-<worker>`); `destroy` asks the host to stop that agent,
 *   which kills its tasks (TERM, `killGraceMs`, KILL), then removes the scratch directory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: LocalProviderConfig
): Effect.Effect<WorkerProvider.WorkerProvider, WorkerProvider.ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = config.name ?? "local"
    const targets: ReadonlyArray<string> = targetNames(config)
    const limit = config.limit ?? 4
    const killGraceMs = config.killGraceMs ?? 2000
    const scratchRoot = path.resolve(config.scratchRoot)
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const invalid = validate(config)
    if (invalid !== undefined) {
      return yield* new WorkerProvider.ProviderError({ message: `local provider "${name}": ${invalid}` })
    }
    /** Each target's limit, warm pool, scratch root and user. */
    const settings = new Map<string, {
      readonly limit: number
      readonly warm: number
      readonly scratchRoot: string
      readonly runAs: { readonly uid: number; readonly gid: number; readonly name: string } | undefined
    }>()
    for (const target of targets) {
      const t: LocalTargetConfig = config.targets !== undefined && !isTargetList(config.targets)
        ? config.targets[target]!
        : {}
      const user = t.user ?? config.user
      let runAs: { readonly uid: number; readonly gid: number; readonly name: string } | undefined
      if (user !== undefined) {
        const r = resolveRunAs(user, process.getuid?.())
        if (Either.isLeft(r)) {
          return yield* new WorkerProvider.ProviderError({ message: `local provider "${name}": target "${target}": ${r.left}` })
        }
        runAs = r.right
      }
      const tl = Math.min(limit, t.limit ?? limit)
      settings.set(target, {
        limit: tl,
        warm: Math.min(tl, t.warm ?? config.warm ?? 0),
        scratchRoot: t.scratchRoot !== undefined ? path.resolve(t.scratchRoot) : scratchRoot,
        runAs
      })
    }
    for (const [target, t] of settings) {
      const why = t.runAs !== undefined ? unreachable(t.scratchRoot, t.runAs) : undefined
      if (why !== undefined) {
        return yield* new WorkerProvider.ProviderError({ message: `local provider "${name}": target "${target}": ${why}` })
      }
    }
    const policies: Record<string, WorkerProvider.TargetPolicy> = {}
    for (const [target, t] of settings) policies[target] = { limit: t.limit, warm: t.warm }

    const instances = new Map<string, Instance>()
    // Adopt the agents a previous run of this provider started and that are still alive (the
    // server was killed, not shut down); remove the scratch directories of those that are gone.
    for (const root of new Set([...settings.values()].map((t) => t.scratchRoot))) {
      for (const entry of fs.existsSync(root) ? fs.readdirSync(root) : []) {
        const dir = path.join(root, entry)
        let rec: { instanceId?: unknown; worker?: unknown; target?: unknown; pgid?: unknown }
        try {
          rec = JSON.parse(fs.readFileSync(path.join(dir, INSTANCE_FILE), "utf8"))
        } catch {
          continue
        }
        const { instanceId, worker, target, pgid } = rec
        if (typeof instanceId !== "string" || typeof worker !== "string" || typeof target !== "string" || typeof pgid !== "number") continue
        if ((rec as { host?: unknown }).host === true) {
          // Its host lost this provider and is stopping its agents; nothing can be adopted.
          if (groupAlive(pgid)) signalGroup(pgid, "SIGTERM")
          fs.rmSync(dir, { recursive: true, force: true })
        } else if (groupAlive(pgid) && settings.has(target)) {
          instances.set(instanceId, { instanceId, worker, target, pgid, dir, exit: undefined, destroying: undefined })
          yield* Effect.logInfo("local agent adopted").pipe(Effect.annotateLogs({ provider: name, worker, instance: instanceId }))
        } else {
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }
    }
    /** Workers whose `create` is under way (worker → target); they hold a slot of the limit. */
    const starting = new Map<string, string>()
    let closed = false

    const fail = (message: string, cause?: unknown) =>
      new WorkerProvider.ProviderError({ message: `local provider "${name}": ${message}`, cause })

    const baseEnv: Record<string, string> = {}
    for (const key of INHERITED_ENV) {
      const value = process.env[key]
      if (value !== undefined) baseEnv[key] = value
    }
    // Agents that run as the server's own user share a code cache (see the agent's launcher):
    // most of an agent's start-up is otherwise compiling its bundle. Agents run as another user
    // get none, so that no job can plant code that a later agent runs. `env` may override it
    // (an empty value turns it off).
    const privateDir = path.join(scratchRoot, PROVIDER_DIR)
    const codeCache = path.join(privateDir, "code-cache")
    const agentEnv: Record<string, string> = { ...baseEnv, [CODE_CACHE_ENV]: codeCache, ...config.env }
    /** An agent's (or host's) environment; run as another user, with `home` as its `HOME`. */
    const envFor = (runAs: { readonly name: string } | undefined, home: string): Record<string, string> =>
      runAs === undefined ? agentEnv : { ...agentEnv, [CODE_CACHE_ENV]: "", USER: runAs.name, LOGNAME: runAs.name, HOME: home }

    // Resolve the default command now to warn early, and again on `create` while it is missing,
    // so that building the bundle later needs no restart.
    let agentCommand: ReadonlyArray<string> | undefined = config.agentCommand
    if (agentCommand === undefined) {
      yield* defaultAgentCommand.pipe(
        Effect.tap((command) => Effect.sync(() => (agentCommand = command))),
        Effect.catchAll((error) => Effect.logWarning(error.message))
      )
    }
    const getAgentCommand = Effect.suspend(() =>
      agentCommand !== undefined ? Effect.succeed(agentCommand) : defaultAgentCommand.pipe(
        Effect.tap((command) => Effect.sync(() => (agentCommand = command))),
        Effect.mapError((error) => fail(error.message, error.cause))
      )
    )

    for (const root of new Set([scratchRoot, ...[...settings.values()].map((t) => t.scratchRoot)])) {
      yield* Effect.try(() => fs.mkdirSync(root, { recursive: true })).pipe(
        Effect.catchAll((error) => Effect.logWarning(`cannot create scratch root ${root}: ${String(error.error)}`))
      )
    }
    // After the scratch roots, so that their modes are not 0700 too.
    yield* Effect.try(() => fs.mkdirSync(privateDir, { mode: 0o700 })).pipe(Effect.ignore)
    yield* Effect.try(() => fs.mkdirSync(codeCache, { mode: 0o700 })).pipe(Effect.ignore)

    // One synchronous step, so that concurrent creates cannot both take the last slot.
    const reserve = (request: WorkerProvider.CreateWorkerRequest) =>
      Effect.suspend(() => {
        const { target, worker } = request
        if (closed) return Effect.fail(fail("shut down; no more workers"))
        if (!targets.includes(target)) {
          return Effect.fail(fail(`does not serve target "${target}" (it serves: ${targets.join(", ") || "none"})`))
        }
        if (!SAFE_WORKER.test(worker)) {
          return Effect.fail(fail(`worker id ${JSON.stringify(worker)} is not a plain name usable as a directory`))
        }
        if (starting.has(worker) || [...instances.values()].some((i) => i.worker === worker)) {
          return Effect.fail(fail(`worker ${worker} already has an instance`))
        }
        if (instances.size + starting.size >= limit) {
          return Effect.fail(fail(`at its limit of ${limit} concurrent workers; destroy one first`))
        }
        const tl = settings.get(target)!.limit
        const ofTarget = [...instances.values()].filter((i) => i.target === target).length +
          [...starting.values()].filter((t) => t === target).length
        if (ofTarget >= tl) {
          return Effect.fail(fail(`at its limit of ${tl} concurrent workers for target "${target}"; destroy one first`))
        }
        starting.set(worker, target)
        return Effect.void
      })

    const spawnAgent = (
      command: ReadonlyArray<string>,
      args: ReadonlyArray<string>,
      dir: string,
      runAs: { readonly uid: number; readonly gid: number; readonly name: string } | undefined
    ) =>
      Effect.async<ChildProcess, WorkerProvider.ProviderError>((resume) => {
        let fd: number
        try {
          fd = fs.openSync(path.join(dir, "agent.log"), "a")
        } catch (error) {
          return resume(Effect.fail(fail(`cannot open ${path.join(dir, "agent.log")}`, error)))
        }
        let child: ChildProcess
        try {
          child = spawn(command[0]!, [...command.slice(1), ...args], {
            cwd: dir,
            env: envFor(runAs, dir),
            detached: true, // setsid: the agent leads a new process group that destroy can kill whole
            stdio: ["ignore", fd, fd],
            ...(runAs !== undefined ? { uid: runAs.uid, gid: runAs.gid } : {})
          })
        } catch (error) {
          return resume(Effect.fail(fail(`cannot start agent ${JSON.stringify(command[0])}`, error)))
        } finally {
          fs.closeSync(fd) // the child has its own copy
        }
        let settled = false
        child.on("error", (error) => {
          if (settled) return
          settled = true
          resume(Effect.fail(fail(`cannot start agent ${JSON.stringify(command[0])}: ${error.message}`, error)))
        })
        child.once("spawn", () => {
          if (settled) return
          settled = true
          resume(Effect.succeed(child))
        })
      })

    /** `agentHost` mode: one host per target, started on demand. */
    const hosts = new Map<string, AgentHost>()
    const hostFor = (target: string, command: ReadonlyArray<string>) =>
      Effect.suspend(() => {
        const running = hosts.get(target)
        if (running !== undefined && running.alive()) return Effect.succeed(running)
        const { runAs, scratchRoot: root } = settings.get(target)!
        return startHost({
          command,
          cwd: root,
          env: envFor(runAs, root),
          logFile: path.join(privateDir, `host-${target}.log`),
          runAs,
          fail,
          onEnd: (host) => {
            if (hosts.get(target) === host) hosts.delete(target)
            runFork(Effect.logInfo("local agent host exited").pipe(Effect.annotateLogs({ provider: name, target, pid: host.pid })))
          }
        }).pipe(Effect.tap((host) => Effect.sync(() => hosts.set(target, host))))
      })

    const startHosted = (
      request: WorkerProvider.CreateWorkerRequest,
      command: ReadonlyArray<string>,
      paths: { readonly dir: string; readonly root: string; readonly state: string }
    ) =>
      Effect.gen(function*() {
        const { runAs } = settings.get(request.target)!
        const host = yield* hostFor(request.target, command)
        const instanceId = `local-host-${host.pid}-${request.worker}`
        const instance: Instance = {
          instanceId,
          worker: request.worker,
          target: request.target,
          pgid: host.pid,
          dir: paths.dir,
          host,
          exit: undefined,
          destroying: undefined
        }
        const hosted: HostedAgent = {
          stopped: undefined,
          onExit: (code, message) => {
            instance.exit = { code, signal: null }
            if (code === null) instance.gone = true
            runFork(
              Effect.logInfo("local agent exited").pipe(
                Effect.annotateLogs({ provider: name, worker: request.worker, instance: instanceId, code, ...(message !== undefined ? { message } : {}) })
              )
            )
          }
        }
        yield* host.start({
          _tag: "start",
          id: instanceId,
          url: request.url,
          bootstrap: request.bootstrap,
          stateDir: paths.state,
          root: paths.root,
          log: path.join(paths.dir, "agent.log"),
          killGraceMillis: killGraceMs,
          ...(runAs !== undefined ? { home: paths.dir } : {})
        }, hosted)
        return instance
      })

    /** The default: the agent as a process (group) of its own. */
    const startProcess = (
      request: WorkerProvider.CreateWorkerRequest,
      command: ReadonlyArray<string>,
      paths: { readonly dir: string; readonly root: string; readonly state: string }
    ) =>
      Effect.gen(function*() {
        const { bootstrap, url, worker } = request
        const args = ["run", "--url", url, "--bootstrap", bootstrap, "--state-dir", paths.state, "--root", paths.root]
        const child = yield* spawnAgent(command, args, paths.dir, settings.get(request.target)!.runAs)
        const pid = child.pid!
        let instanceId = `local-${pid}`
        // A pid can come back while an exited instance with that id still waits for destroy.
        for (let n = 2; instances.has(instanceId); n++) instanceId = `local-${pid}-${n}`
        const instance: Instance = {
          instanceId,
          worker,
          target: request.target,
          pgid: pid,
          dir: paths.dir,
          exit: undefined,
          destroying: undefined
        }
        child.on("exit", (code, signal) => {
          instance.exit = { code, signal }
          runFork(
            Effect.logInfo("local agent exited").pipe(
              Effect.annotateLogs({ provider: name, worker, instance: instanceId, code, signal })
            )
          )
        })
        child.unref() // a running agent must not keep the server's event loop alive
        return instance
      })

    const start = (request: WorkerProvider.CreateWorkerRequest) =>
      Effect.gen(function*() {
        const { url, worker } = request
        const command = yield* getAgentCommand
        if (command.length === 0) return yield* fail("agentCommand is empty")
        const { runAs, scratchRoot } = settings.get(request.target)!
        const dir = path.join(scratchRoot, worker)
        const root = path.join(dir, "root")
        const state = path.join(dir, "state")
        const removeDir = Effect.promise(() => fs.promises.rm(dir, { recursive: true, force: true }).catch(() => {}))
        yield* Effect.tryPromise({
          try: async () => {
            // A directory left by a crashed run of this worker id is stale: start clean.
            await fs.promises.rm(dir, { recursive: true, force: true })
            await fs.promises.mkdir(root, { recursive: true })
            await fs.promises.mkdir(state, { recursive: true })
            if (runAs !== undefined) {
              for (const d of [dir, root, state]) await fs.promises.chown(d, runAs.uid, runAs.gid)
            }
            const shown = [...command, "run", "--url", url, "--bootstrap", "<redacted>", "--state-dir", state, "--root", root]
            await fs.promises.appendFile(
              path.join(dir, "agent.log"),
              `# ${new Date().toISOString()} local provider "${name}" starting agent for worker ${worker}: ${
                shown.map((a) => JSON.stringify(a)).join(" ")
              }\n`
            )
          },
          catch: (error) => fail(`cannot prepare scratch directory ${dir}`, error)
        }).pipe(Effect.tapError(() => removeDir))
        const instance = config.agentHost === true
          ? yield* startHosted(request, command, { dir, root, state }).pipe(Effect.tapError(() => removeDir))
          : yield* startProcess(request, command, { dir, root, state }).pipe(Effect.tapError(() => removeDir))
        const { instanceId } = instance
        instances.set(instanceId, instance)
        // Agents outlive a server that crashes (they lead their own process groups), as machines
        // do: a record in the scratch directory lets the next start of the provider adopt them
        // (or, for a host's agents, clean up after them).
        yield* Effect.promise(() =>
          fs.promises.writeFile(
            path.join(dir, INSTANCE_FILE),
            JSON.stringify({ instanceId, worker, target: request.target, pgid: instance.pgid, ...(instance.host !== undefined ? { host: true } : {}) }),
            { mode: 0o600 }
          ).catch(() => undefined)
        )
        yield* Effect.logInfo("local agent started").pipe(
          Effect.annotateLogs({ provider: name, worker, instance: instanceId, target: request.target, dir })
        )
        if (closed) {
          // The scope closed while we were starting: nobody else will destroy this one.
          yield* destroy(instanceId).pipe(Effect.ignore)
          return yield* fail("shut down; no more workers")
        }
        return {
          instanceId,
          worker,
          ip: "127.0.0.1",
          ...(config.factoryMetadata === undefined ? {} : { metadata: config.factoryMetadata })
        } satisfies WorkerProvider.WorkerInstance
      })

    const create = (request: WorkerProvider.CreateWorkerRequest) =>
      reserve(request).pipe(
        Effect.zipRight(start(request).pipe(Effect.ensuring(Effect.sync(() => starting.delete(request.worker))))),
        Effect.uninterruptible, // a half-started agent would be nobody's to destroy
        Effect.withSpan("LocalProvider.create", { attributes: { provider: name, worker: request.worker } })
      )

    const teardown = (instance: Instance) =>
      Effect.gen(function*() {
        const { host, pgid } = instance
        if (host !== undefined) {
          // The host kills the agent's tasks (TERM, grace, KILL) before it answers.
          const stopped = yield* host.stop(instance.instanceId).pipe(Effect.timeout(killGraceMs + KILL_WAIT_MS), Effect.option)
          if (stopped._tag === "None") return yield* fail(`agent host ${host.pid} did not stop ${instance.instanceId}`)
        } else if (groupAlive(pgid)) {
          yield* Effect.try({
            try: () => signalGroup(pgid, "SIGTERM"),
            catch: (error) => fail(`cannot signal process group ${pgid}`, error)
          })
          if (!(yield* waitGone(pgid, killGraceMs))) {
            yield* Effect.logWarning(`local agent did not stop within ${killGraceMs} ms of SIGTERM; killing`).pipe(
              Effect.annotateLogs({ provider: name, worker: instance.worker, instance: instance.instanceId })
            )
            yield* Effect.try({
              try: () => signalGroup(pgid, "SIGKILL"),
              catch: (error) => fail(`cannot signal process group ${pgid}`, error)
            })
            if (!(yield* waitGone(pgid, KILL_WAIT_MS))) {
              return yield* fail(`process group ${pgid} of ${instance.instanceId} survived SIGKILL`)
            }
          }
        }
        yield* Effect.tryPromise({
          try: () => fs.promises.rm(instance.dir, { recursive: true, force: true, maxRetries: 3 }),
          catch: (error) => fail(`cannot remove scratch directory ${instance.dir}`, error)
        })
        yield* Effect.logInfo("local agent destroyed").pipe(
          Effect.annotateLogs({ provider: name, worker: instance.worker, instance: instance.instanceId })
        )
      })

    const destroy = (instanceId: string): Effect.Effect<void, WorkerProvider.ProviderError> =>
      Effect.suspend(() => {
        const instance = instances.get(instanceId)
        if (instance === undefined) return Effect.void
        if (instance.destroying !== undefined) return Deferred.await(instance.destroying)
        const done = Deferred.unsafeMake<void, WorkerProvider.ProviderError>(FiberId.none)
        instance.destroying = done
        return teardown(instance).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              if (exit._tag === "Success") instances.delete(instanceId)
              else instance.destroying = undefined // let a later call retry
            }).pipe(Effect.zipRight(Deferred.done(done, exit)))
          ),
          Effect.uninterruptible
        )
      }).pipe(Effect.withSpan("LocalProvider.destroy", { attributes: { provider: name, instanceId } }))

    const list = Effect.sync(() =>
      [...instances.values()].filter((i) => i.gone !== true).map((i): WorkerProvider.WorkerInstance => ({
        instanceId: i.instanceId,
        worker: i.worker,
        ip: "127.0.0.1"
      }))
    )

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        return Effect.forEach(
          [...instances.keys()],
          (id) => destroy(id).pipe(Effect.catchAll((error) => Effect.logError(error.message))),
          { concurrency: "unbounded", discard: true }
        ).pipe(Effect.ensuring(Effect.sync(() => {
          for (const host of hosts.values()) host.close()
        })))
      })
    )

    return { name, targets, limit, policies, create, destroy, list } satisfies WorkerProvider.WorkerProvider
  })

/**
 * A `WorkerProviders` layer holding just this provider, built by `make` (see there for the
 * behaviour); its instances are destroyed when the layer is released. To run it beside other
 * providers, build the array yourself:
 * `Layer.scoped(WorkerProviders, Effect.all([LocalProvider.make(a), other]))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: LocalProviderConfig
): Layer.Layer<WorkerProvider.WorkerProviders, WorkerProvider.ProviderError> =>
  Layer.scoped(WorkerProvider.WorkerProviders, Effect.map(make(config), (provider) => [provider]))
