/**
 * Downloading a job's inputs before its first task (buildomat §3.7): each `job.inputs` entry
 * goes to `/input/<name>`, where a name copied from a dependency holds `/`
 * (`<dep>/<output path>`). A minimal step, written with the server's job model: every path is
 * checked to stay under `/input`, intermediate directories must be real directories (never
 * symlinks), and files are opened with `O_NOFOLLOW`. The whole file is held in memory while it is
 * written; streaming and resuming by range are left to the agent's own work on inputs.
 *
 * @internal
 */
import { Ids } from "@buildomat/core"
import type { Client, Workers } from "@buildomat/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { Emit } from "./events.js"
import { describe, retrying } from "./retry.js"
import * as Root from "./root.js"

const decodeFileId = Schema.decodeUnknown(Ids.FileId)

/** The real path for input `name` under `inputDir`, or why there is none. */
const destination = (inputDir: string, name: string): string | { readonly error: string } => {
  if (name.length === 0 || name.includes("\0") || name.startsWith("/")) return { error: "not a relative name" }
  const parts = name.split("/")
  if (parts.some((p) => p === "" || p === "." || p === "..")) return { error: "empty, \".\" or \"..\" components" }
  const dest = path.join(inputDir, ...parts)
  if (!dest.startsWith(inputDir + path.sep)) return { error: "outside /input" }
  return dest
}

/** Creates the directories between `inputDir` and `file`, refusing anything that is not a real directory. */
const makeParents = async (inputDir: string, file: string) => {
  let dir = inputDir
  for (const part of path.relative(inputDir, path.dirname(file)).split(path.sep).filter((p) => p !== "")) {
    dir = path.join(dir, part)
    await fs.mkdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e
    })
    const st = await fs.lstat(dir)
    if (!st.isDirectory()) throw new Error(`${dir} is not a directory`)
  }
}

const writeNoFollow = async (file: string, data: Uint8Array) => {
  const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = fs.constants
  const fh = await fs.open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644)
  try {
    let off = 0
    while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten
  } finally {
    await fh.close()
  }
}

/**
 * Downloads every input into `<root>/input`. Returns whether one failed; progress and errors
 * are sent as `worker` events (`downloading input: N`, `downloaded input: N`).
 */
export const downloadInputs = (
  api: Client.ApiClient,
  job: Ids.JobId,
  inputs: ReadonlyArray<Workers.WorkerPingJob["inputs"][number]>,
  root: string,
  emit: Emit
): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    if (inputs.length === 0) return false
    const inputDir = Root.toReal(root, "/input")
    const made = yield* Effect.tryPromise(() => fs.mkdir(inputDir, { recursive: true })).pipe(Effect.either)
    if (made._tag === "Left") {
      yield* emit("worker", `ERROR: cannot create /input: ${describe(made.left.error)}`)
      return true
    }
    let failed = false
    for (const input of inputs) {
      const dest = destination(inputDir, input.name)
      if (typeof dest !== "string") {
        yield* emit("worker", `ERROR: input ${JSON.stringify(input.name)} refused: ${dest.error}`)
        failed = true
        continue
      }
      yield* emit("worker", `downloading input: ${input.name}`)
      const result = yield* Effect.gen(function*() {
        const id = yield* decodeFileId(input.id)
        const data = yield* retrying("input download", api.workerJob.input({ path: { job, input: id } }), {
          timeout: "30 minutes"
        })
        yield* Effect.tryPromise(async () => {
          await makeParents(inputDir, dest)
          await writeNoFollow(dest, data)
        })
      }).pipe(Effect.either)
      if (result._tag === "Left") {
        const e = result.left
        yield* emit("worker", `ERROR: input ${input.name}: ${describe("error" in e ? (e as { error: unknown }).error : e)}`)
        failed = true
      } else {
        yield* emit("worker", `downloaded input: ${input.name}`)
      }
    }
    return failed
  })
