/**
 * `buildomat job publish` and `buildomat job sign`: hand an output on, at a stable public URL or
 * through a signed URL (buildomat `bin/src/main.rs`, `do_job_publish`, `do_job_sign`).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { Client, Ids } from "@buildomat/core"
import { JobModel } from "@buildomat/core"
import { Effect } from "effect"
import { CliError } from "../internal/errors.js"
import { out, printJson } from "../internal/format.js"
import { handler, jobId, json, userClient } from "../internal/root.js"

const jobArg = Args.text({ name: "JOB" }).pipe(Args.withDescription("job id"))
const srcArg = Args.text({ name: "SRC_PATH" }).pipe(Args.withDescription("the output's path, exactly as `job outputs` shows it"))

/** The output of `job` whose path is exactly `src`. */
const findOutput = (client: Client.Client, job: Ids.JobId, src: string) =>
  Effect.gen(function*() {
    const outputs = yield* client.api.jobs.outputs({ path: { job } })
    const o = outputs.find((x) => x.path === src)
    if (o === undefined) return yield* new CliError({ message: `job ${job} does not have a file that matches ${src}` })
    return o
  })

/**
 * `buildomat job publish JOB SRC_PATH SERIES VERSION NAME`: publishes the output at
 * `<url>/0/public/file/<owner>/<SERIES>/<VERSION>/<NAME>` (`POST
 * /0/jobs/{job}/outputs/{output}/publish`). SERIES, VERSION and NAME are 2 to 48 characters of
 * `[A-Za-z0-9._-]`; the job must be complete. Prints what it publishes, then the public URL
 * (when the job is yours).
 *
 * @since 0.1.0
 * @category commands
 */
export const publish = Command.make(
  "publish",
  {
    job: jobArg,
    src: srcArg,
    series: Args.text({ name: "SERIES" }),
    version: Args.text({ name: "VERSION" }),
    name: Args.text({ name: "NAME" })
  },
  handler((o) =>
    Effect.gen(function*() {
      for (const [what, v] of [["SERIES", o.series], ["VERSION", o.version], ["NAME", o.name]] as const) {
        if (!JobModel.isPublishId(v)) {
          return yield* new CliError({ message: `${what} ${JSON.stringify(v)} must be 2 to 48 characters of [A-Za-z0-9._-]` })
        }
      }
      const id = yield* jobId(o.job)
      const { client } = yield* userClient
      const output = yield* findOutput(client, id, o.src)
      yield* out(`publishing ${output.path} -> ${o.series}/${o.version}/${o.name} (${Math.floor(output.size / 1024)}KB)`)
      yield* client.api.jobOutputs.publish({
        path: { job: id, output: output.id as Ids.FileId },
        payload: { series: o.series, version: o.version, name: o.name }
      })
      // Published under the job's owner: print the URL when that is us (no way to name others).
      const [job, who] = yield* Effect.all([client.api.jobs.get({ path: { job: id } }), client.api.jobs.whoami()])
      if (job.owner === who.id) {
        const enc = encodeURIComponent
        const base = client.url.replace(/\/+$/, "")
        yield* out(`${base}/0/public/file/${enc(who.name)}/${enc(o.series)}/${enc(o.version)}/${enc(o.name)}`)
      }
    }))
).pipe(Command.withDescription("publish an output at a stable public URL"))

/**
 * `buildomat job sign [-x] JOB SRC_PATH [--json]`: a URL that downloads the output without a
 * token for one hour, served as `text/plain` (`POST /0/jobs/{job}/outputs/{output}/sign`).
 * Prints the URL; `-x` adds its size and whether the file is available there yet.
 *
 * @since 0.1.0
 * @category commands
 */
export const sign = Command.make(
  "sign",
  {
    extended: Options.boolean("x").pipe(Options.withDescription("display extended information about the signed URL")),
    json,
    job: jobArg,
    src: srcArg
  },
  handler((o) =>
    Effect.gen(function*() {
      const id = yield* jobId(o.job)
      const { client } = yield* userClient
      const output = yield* findOutput(client, id, o.src)
      const su = yield* client.api.jobOutputs.sign({
        path: { job: id, output: output.id as Ids.FileId },
        payload: { expiry_seconds: JobModel.MAX_SIGNED_URL_SECONDS, content_type: "text/plain" }
      })
      if (o.json) return yield* printJson(su)
      if (!o.extended) return yield* out(su.url)
      yield* out(`url:          ${su.url}`)
      yield* out(`size:         ${su.size}`)
      yield* out(`available:    ${su.available}`)
    }))
).pipe(Command.withDescription("print a signed URL (valid for one hour) for an output"))
