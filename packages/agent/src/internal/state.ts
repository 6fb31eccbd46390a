/**
 * The agent's state directory: `agent.json` holds the server URL, the bootstrap value and the
 * worker token this agent chose; `job.json` records that a job was adopted, so that an agent
 * restarted mid-job reports failure instead of running the job twice (buildomat §3.1–3.3).
 *
 * @internal
 */
import { randomInt } from "node:crypto"
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Data, Effect } from "effect"
import * as Spare from "./spare.js"

/** Reading or writing the state directory failed. */
export class StateError extends Data.TaggedError("StateError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** The contents of `agent.json`. */
export interface AgentState {
  readonly url: string
  readonly bootstrap: string
  readonly token: string
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/** `length` random alphanumerics from the CSPRNG (buildomat's worker tokens are 64 of them). */
export const randomAlphanumeric = (length: number): string => {
  let s = ""
  for (let i = 0; i < length; i++) s += ALNUM[randomInt(ALNUM.length)]
  return s
}

const attempt = <A>(message: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new StateError({ message: `${message}: ${String(cause)}`, cause }) })

const isAgentState = (u: unknown): u is AgentState =>
  typeof u === "object" && u !== null &&
  typeof (u as AgentState).url === "string" &&
  typeof (u as AgentState).bootstrap === "string" &&
  typeof (u as AgentState).token === "string" && (u as AgentState).token.length > 0

/**
 * Loads `agent.json`, or creates it (mode 0600) with a fresh 64-character token. An existing
 * token is reused when the file names the same bootstrap value, so that a restarted agent
 * bootstraps again idempotently; a different bootstrap value means a different worker, which
 * gets a fresh token.
 */
export const loadOrCreate = (dir: string, url: string, bootstrap: string): Effect.Effect<AgentState, StateError> =>
  Effect.gen(function*() {
    const file = path.join(dir, "agent.json")
    yield* attempt(`creating state directory ${dir}`, () => fs.mkdir(dir, { recursive: true, mode: 0o700 }))
    const existing = yield* attempt(`reading ${file}`, () =>
      fs.readFile(file, "utf8").then(
        (text) => JSON.parse(text) as unknown,
        (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : Promise.reject(e))
      ))
    if (existing !== undefined && !isAgentState(existing)) {
      return yield* new StateError({ message: `${file} is not a valid agent state file` })
    }
    if (existing !== undefined && existing.bootstrap === bootstrap && existing.url === url) return existing
    const state: AgentState = {
      url,
      bootstrap,
      token: existing !== undefined && existing.bootstrap === bootstrap ? existing.token : randomAlphanumeric(64)
    }
    // Write beside and rename, so that a crash never leaves a truncated file behind.
    const tmp = `${file}.${process.pid}.tmp`
    yield* attempt(`writing ${file}`, async () => {
      const handle = await fs.open(tmp, "w", 0o600)
      try {
        await handle.writeFile(JSON.stringify(state, null, 2) + "\n")
        await handle.sync()
      } finally {
        await handle.close()
      }
      await fs.rename(tmp, file)
    })
    return state
  })

/** The path of the job marker. */
export const jobFile = (dir: string): string => path.join(dir, "job.json")

/** Whether a job was adopted by an earlier run of the agent in this state directory. */
export const jobAdopted = (dir: string): Effect.Effect<boolean, StateError> =>
  attempt(`checking ${jobFile(dir)}`, () =>
    fs.stat(jobFile(dir)).then(
      () => true,
      (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? false : Promise.reject(e))
    ))

/** Where a `job.json` is made ahead (`Spare.make`), while the agent waits for work. */
export const pendingJobFile = (dir: string): string => path.join(dir, "job.json.pending")

/**
 * Records that a job was adopted: `job.json` (the ping result, pretty JSON), made exclusively
 * (fails if it already exists) and written at once, so that an agent process that restarts finds
 * it. With `prepared` (an empty `pendingJobFile`, made while the agent waited), the text is
 * written there and the file hard-linked as `job.json`, which is as exclusive and much cheaper
 * than creating a file; where links are not supported, `job.json` is created. The effect
 * returned makes it durable (`fsync`), the first time it runs; the agent runs it right after the
 * first task has started: an `fsync` holds up the file system's other writers (the script file,
 * the logs) for milliseconds on some machines, so only a machine that loses power within those
 * milliseconds could forget the job.
 */
export const adoptJob = (
  dir: string,
  ping: unknown,
  prepared?: Spare.SpareFile | undefined
): Effect.Effect<Effect.Effect<void, StateError>, StateError> =>
  Effect.gen(function*() {
    const text = JSON.stringify(ping, null, 2) + "\n"
    // The second name of a linked `job.json`, removed once it is durable.
    let leftover: string | undefined
    const fd = yield* Effect.try({
      try: () => {
        const spare = prepared?.take()
        if (spare !== undefined) {
          try {
            fsSync.writeFileSync(spare, text)
            fsSync.linkSync(prepared!.path, jobFile(dir))
            leftover = prepared!.path
            return spare
          } catch (e) {
            fsSync.closeSync(spare)
            fsSync.rmSync(prepared!.path, { force: true })
            if ((e as NodeJS.ErrnoException).code === "EEXIST") throw e
          }
        }
        const fd = fsSync.openSync(jobFile(dir), "wx", 0o600)
        try {
          fsSync.writeFileSync(fd, text)
        } catch (e) {
          fsSync.closeSync(fd)
          throw e
        }
        return fd
      },
      catch: (cause) => new StateError({ message: `writing ${jobFile(dir)}: ${String(cause)}`, cause })
    })
    let synced: Promise<void> | undefined
    const sync = () =>
      synced ??= new Promise<void>((resolve, reject) =>
        fsSync.fsync(fd, (e) => {
          fsSync.close(fd, () => {
            if (leftover !== undefined) fsSync.rm(leftover, { force: true }, () => (e === null ? resolve() : reject(e)))
            else if (e === null) resolve()
            else reject(e)
          })
        })
      )
    return Effect.tryPromise({
      try: sync,
      catch: (cause) => new StateError({ message: `writing ${jobFile(dir)}: ${String(cause)}`, cause })
    })
  })
