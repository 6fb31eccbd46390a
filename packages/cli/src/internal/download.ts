import * as FileSystem from "@effect/platform/FileSystem"
import type { Client, Ids } from "@buildomat/core"
import cliProgress from "cli-progress"
import { Effect, Option, Stream } from "effect"
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as path from "node:path"
import { CliError, describe } from "./errors.js"
import { err, formatBytes } from "./format.js"

/** What `job copy` reports. `verified`: the server gave a digest and it matched. */
export interface Downloaded {
  readonly job: string
  readonly path: string
  readonly output: string
  readonly file: string
  readonly size: number
  readonly sha256: string
  readonly verified: boolean
}

/**
 * A file opened for writing, closed with the scope. Writes go at the current position (not a
 * tracked offset), so that pipes and character devices work too.
 */
const openForWrite = (file: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => NodeFs.open(file, "w"),
      catch: (e) => new CliError({ message: `cannot open ${file}: ${e instanceof Error ? e.message : String(e)}` })
    }),
    (h) => Effect.promise(() => h.close())
  ).pipe(
    Effect.map((h) => ({
      write: (chunk: Uint8Array) =>
        Effect.tryPromise({
          try: async () => {
            let off = 0
            while (off < chunk.length) off += (await h.write(chunk, off, chunk.length - off)).bytesWritten
          },
          catch: (e) => new CliError({ message: `writing ${file}: ${e instanceof Error ? e.message : String(e)}` })
        }),
      sync: Effect.tryPromise({
        try: () => h.sync(),
        catch: (e) => new CliError({ message: `writing ${file}: ${e instanceof Error ? e.message : String(e)}` })
      })
    }))
  )

/** A progress bar on stderr for `total` bytes when stderr is a terminal (else nothing), stopped with the scope. */
export const progressBar = (total: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (process.stderr.isTTY !== true) return undefined
      const bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: "{bar} {percentage}% | {done} / {size} | ETA {eta_formatted}",
          hideCursor: true,
          clearOnComplete: false
        },
        cliProgress.Presets.shades_classic
      )
      bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total) })
      return bar
    }),
    (bar) => Effect.sync(() => bar?.stop())
  )

/**
 * Downloads the output of `job` whose path is exactly `src` into the file `dst`.
 *
 * The body is streamed to a temporary file next to `dst` (renamed into place at the end), with
 * the SHA-256 computed while writing. The size must match the output's, and the digest the
 * server's (`GET /ext/0/jobs/{job}/outputs`); on any failure the partial file is removed.
 * When `dst` exists and is not a regular file (`/dev/stdout`, a FIFO) it is written directly
 * (`direct` in the result).
 * A server without the digest route (buildomat itself) gets a warning, not a failure.
 */
export const download = (
  client: Client.Client,
  job: Ids.JobId,
  src: string,
  dst: string
): Effect.Effect<{ readonly result: Downloaded; readonly direct: boolean }, unknown, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const outputs = yield* client.api.jobs.outputs({ path: { job } })
    const output = outputs.find((o) => o.path === src)
    if (output === undefined) {
      return yield* new CliError({ message: `job ${job} does not have a file that matches ${src}` })
    }
    const digests = yield* client.api.jobs.outputDigests({ path: { job } }).pipe(Effect.either)
    const expected = digests._tag === "Right"
      ? Option.fromNullable(digests.right.find((d) => d.id === output.id)).pipe(Option.map((d) => d.sha256.toLowerCase()))
      : Option.none<string>()
    if (Option.isNone(expected)) {
      const why = digests._tag === "Left" ? yield* describe(digests.left) : "the output is not listed"
      yield* err(`WARNING: the server gave no SHA-256 for ${src} (${why}); it will not be checked`)
    }

    const existing = yield* fs.stat(dst).pipe(Effect.option)
    const direct = Option.isSome(existing) && existing.value.type !== "File"
    const target = direct ? dst : path.join(path.dirname(dst), `.${path.basename(dst)}.buildomat-${process.pid}-${Date.now()}`)
    const cleanup = direct ? Effect.void : fs.remove(target).pipe(Effect.ignore)

    yield* err(`downloading ${output.path} -> ${dst} (${formatBytes(output.size)})`)
    const written = yield* Effect.scoped(
      Effect.gen(function*() {
        const res = yield* client.download(job, output.id)
        const file = yield* openForWrite(target)
        const bar = yield* progressBar(output.size)
        const hash = createHash("sha256")
        let size = 0
        yield* res.stream.pipe(
          Stream.runForEach((chunk) =>
            Effect.gen(function*() {
              hash.update(chunk)
              yield* file.write(chunk)
              size += chunk.length
              bar?.update(size, { done: formatBytes(size) })
            })
          )
        )
        if (!direct) yield* file.sync
        return { size, sha256: hash.digest("hex") }
      })
    ).pipe(Effect.onError(() => cleanup))

    if (written.size !== output.size) {
      yield* cleanup
      return yield* new CliError({
        message: `${src}: received ${written.size} bytes but the output is ${output.size} bytes; ${dst} not written`
      })
    }
    if (Option.isSome(expected) && expected.value !== written.sha256) {
      yield* cleanup
      return yield* new CliError({
        message: `${src}: SHA-256 mismatch: the server recorded ${expected.value} but the download is ${written.sha256}; ${dst} not written`
      })
    }
    if (!direct) yield* fs.rename(target, dst).pipe(Effect.onError(() => cleanup))
    const result: Downloaded = {
      job,
      path: output.path,
      output: output.id,
      file: dst,
      size: written.size,
      sha256: written.sha256,
      verified: Option.isSome(expected)
    }
    return { result, direct }
  })
