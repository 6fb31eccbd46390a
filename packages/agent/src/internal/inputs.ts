/**
 * Downloading a job's inputs before its first task (buildomat §3.7): each input of the ping,
 * including outputs copied from a dependency (named `<dependency>/<path>`), from
 * `GET /0/worker/job/{job}/inputs/{id}` to `/input/<name>` under the root. A download cut short
 * resumes where it stopped with a `Range` request (or starts again if the server ignores ranges);
 * transient failures are retried forever. The file's size is checked against the server's
 * `Content-Length` (or `Content-Range`) and, when the ping gives it, the input's `size`; buildomat
 * checks neither.
 *
 * @internal
 */
import type { Ids, Workers } from "@buildomat/core"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as fs from "node:fs"
import * as path from "node:path"
import { Data, Effect, Stream } from "effect"
import type { EventLog } from "./events.js"
import { backoff, describe, isTransient } from "./retry.js"
import * as Root from "./root.js"
import { StatusError } from "./wire.js"

class InputFailure extends Data.TaggedError("InputFailure")<{ readonly message: string; readonly transient: boolean }> {}

/** Where an input goes, or `undefined` if its name would leave `/input`. */
export const inputPath = (root: string, name: string): string | undefined => {
  const jobPath = Root.normalise(`/input/${name}`)
  if (!jobPath.startsWith("/input/") || jobPath === "/input/") return undefined
  return Root.toReal(root, jobPath)
}

/** One attempt at the rest of a file: appends from `have` bytes on; resolves to the total size. */
const attempt = (http: HttpClient.HttpClient, url: string, file: string, have: number) =>
  Effect.gen(function*() {
    let req = HttpClientRequest.get(url)
    if (have > 0) req = HttpClientRequest.setHeader(req, "range", `bytes=${have}-`)
    const res = yield* http.execute(req).pipe(
      Effect.mapError((e) => new InputFailure({ message: describe(e), transient: isTransient(e) }))
    )
    if (res.status === 416 && have > 0) {
      // Nothing past `have`: the file is whole if the server says it is `have` bytes long.
      const total = /\/(\d+)$/.exec(res.headers["content-range"] ?? "")
      yield* res.text.pipe(Effect.ignore)
      if (total !== null && Number(total[1]) === have) return have
      return yield* new InputFailure({ message: `the server refused the range from ${have}`, transient: false })
    }
    if (res.status !== 200 && res.status !== 206) {
      const body = yield* res.text.pipe(Effect.orElseSucceed(() => ""))
      const err = new StatusError({ status: res.status, message: `${res.status}: ${body.slice(0, 200)}`, tag: undefined })
      return yield* new InputFailure({ message: err.message, transient: isTransient(err) })
    }
    let start = 0
    let total: number | undefined
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers["content-range"] ?? "")
      if (m === null) return yield* new InputFailure({ message: "a partial answer without a usable Content-Range", transient: true })
      start = Number(m[1])
      total = Number(m[3])
    } else {
      const len = res.headers["content-length"]
      total = len === undefined ? undefined : Number(len)
    }
    const fd = fs.openSync(file, start === 0 ? "w" : "r+", 0o644)
    let pos = start
    yield* res.stream.pipe(
      Stream.runForEach((chunk) =>
        Effect.sync(() => {
          let off = 0
          while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off, pos + off)
          pos += chunk.length
        })
      ),
      Effect.mapError((e) => new InputFailure({ message: describe(e), transient: true })),
      Effect.ensuring(Effect.sync(() => {
        fs.ftruncateSync(fd, pos)
        fs.closeSync(fd)
      }))
    )
    if (total !== undefined && pos !== total) {
      return yield* new InputFailure({ message: `got ${pos} of ${total} bytes`, transient: true })
    }
    return pos
  })

/**
 * Downloads every input. Returns the problems met (each fails the job); an empty list means
 * every input is in place, whole.
 */
export const download = (
  http: HttpClient.HttpClient,
  job: Ids.JobId,
  inputs: Workers.WorkerPingJob["inputs"],
  root: string,
  log: EventLog
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const errors: Array<string> = []
    const note = (payload: string) => log.append(undefined, "worker", [payload])
    for (const input of inputs) {
      const file = inputPath(root, input.name)
      const shown = `/input/${input.name}`
      if (file === undefined) {
        errors.push(`input name ${JSON.stringify(input.name)} does not stay under /input`)
        continue
      }
      note(`downloading input: ${shown}`)
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.rmSync(file, { force: true })
      const url = `/0/worker/job/${job}/inputs/${encodeURIComponent(input.id)}`
      const got = yield* Effect.suspend(() => {
        const have = fs.existsSync(file) ? fs.statSync(file).size : 0
        return attempt(http, url, file, have)
      }).pipe(
        Effect.retry({ schedule: backoff, while: (e) => e.transient }),
        Effect.either
      )
      if (got._tag === "Left") {
        errors.push(`downloading ${shown}: ${got.left.message}`)
        continue
      }
      if (input.size !== undefined && input.size !== null && got.right !== input.size) {
        errors.push(`downloading ${shown}: got ${got.right} bytes, but the input is ${input.size} bytes`)
        continue
      }
      note(`downloaded input: ${shown}`)
    }
    return errors
  })
