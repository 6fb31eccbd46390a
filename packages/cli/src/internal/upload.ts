import type { Client, Ids } from "@buildomat/core"
import { Api, Ids as IdsM, JobModel } from "@buildomat/core"
import { Duration, Effect } from "effect"
import * as NodeFs from "node:fs/promises"
import * as path from "node:path"
import { progressBar } from "./download.js"
import { CliError } from "./errors.js"
import { err, formatBytes } from "./format.js"

/** An input to upload: the name the job sees it as (`/input/<name>`), the local file, its size. */
export interface LocalInput {
  readonly name: string
  readonly file: string
  readonly size: number
}

/**
 * Parses `-i [NAME=]FILE` values (buildomat): `NAME=FILE` names the input; a bare `FILE` is
 * named by its basename. Each name must be a valid input name and appear once.
 */
export const parseInputs = (values: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Omit<LocalInput, "size">>, CliError> =>
  Effect.gen(function*() {
    const out: Array<Omit<LocalInput, "size">> = []
    for (const v of values) {
      const at = v.indexOf("=")
      const [name, file] = at >= 0 ? [v.slice(0, at), v.slice(at + 1)] : [path.basename(v), v]
      const problem = JobModel.checkInputName("input", name)
      if (problem !== undefined) return yield* new CliError({ message: `--input (-i) ${JSON.stringify(v)}: ${problem}` })
      if (file.length === 0) return yield* new CliError({ message: `--input (-i) ${JSON.stringify(v)}: no file given` })
      if (out.some((i) => i.name === name)) {
        return yield* new CliError({ message: `--input (-i): two inputs are named ${JSON.stringify(name)}` })
      }
      out.push({ name, file })
    }
    return out
  })

/**
 * Checks that every input is a regular file within the server's quota (`GET /0/quota`), before
 * the job is submitted, as buildomat's CLI does; returns them with their sizes.
 */
export const checkInputs = (
  client: Client.Client,
  inputs: ReadonlyArray<Omit<LocalInput, "size">>
): Effect.Effect<ReadonlyArray<LocalInput>, unknown> =>
  Effect.gen(function*() {
    if (inputs.length === 0) return [] as ReadonlyArray<LocalInput>
    const quota = yield* client.api.jobs.quota()
    const out: Array<LocalInput> = []
    for (const i of inputs) {
      const st = yield* Effect.tryPromise({
        try: () => NodeFs.stat(i.file),
        catch: (e) => new CliError({ message: `input file ${i.file}: ${e instanceof Error ? e.message : String(e)}` })
      })
      if (!st.isFile()) return yield* new CliError({ message: `input file ${i.file} is not a regular file` })
      if (st.size > quota.max_bytes_per_input) {
        return yield* new CliError({
          message: `input file ${i.file} is ${st.size} bytes long, but the maximum input file size is ${quota.max_bytes_per_input} bytes`
        })
      }
      out.push({ ...i, size: st.size })
    }
    return out
  })

/** How long to wait between polls of a commit the server has not finished. */
const COMMIT_POLL = Duration.millis(250)

/**
 * Uploads one input of `job`: 5 MiB chunks (`POST /0/jobs/{job}/chunk`) with a progress bar on
 * a terminal, then the commit (`POST /1/jobs/{job}/input`) under a fresh commit id, polled until
 * the server has stored the file. Fails with the server's message if the commit fails.
 */
export const uploadInput = (client: Client.Client, job: Ids.JobId, input: LocalInput): Effect.Effect<void, unknown> =>
  Effect.gen(function*() {
    yield* err(`uploading input ${input.name} (${formatBytes(input.size)}) from ${input.file}`)
    const chunks = yield* Effect.scoped(
      Effect.gen(function*() {
        const fh = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => NodeFs.open(input.file, "r"),
            catch: (e) => new CliError({ message: `opening ${input.file}: ${e instanceof Error ? e.message : String(e)}` })
          }),
          (h) => Effect.promise(() => h.close())
        )
        const bar = yield* progressBar(input.size)
        const buffer = Buffer.alloc(Api.CHUNK_SIZE)
        const ids: Array<string> = []
        let total = 0
        for (;;) {
          let filled = 0
          while (filled < buffer.length) {
            const { bytesRead } = yield* Effect.tryPromise({
              try: () => fh.read(buffer, filled, buffer.length - filled, null),
              catch: (e) => new CliError({ message: `reading ${input.file}: ${e instanceof Error ? e.message : String(e)}` })
            })
            if (bytesRead === 0) break
            filled += bytesRead
          }
          if (filled === 0 && ids.length > 0) break
          const r = yield* client.api.jobInputs.chunk({ path: { job }, payload: new Uint8Array(buffer.subarray(0, filled)) })
          ids.push(r.id)
          total += filled
          bar?.update(total, { done: formatBytes(total) })
          if (filled < buffer.length) break
        }
        if (total !== input.size) {
          return yield* new CliError({ message: `input file ${input.file} changed size while it was uploaded` })
        }
        return ids
      })
    )
    const payload = { name: input.name, size: input.size, chunks, commit_id: IdsM.make() }
    for (;;) {
      const r = yield* client.api.jobInputs.addInput({ path: { job }, payload })
      if (r.complete) {
        if (r.error !== undefined && r.error !== null) return yield* new CliError({ message: `input file error: ${r.error}` })
        return
      }
      yield* Effect.sleep(COMMIT_POLL)
    }
  })
