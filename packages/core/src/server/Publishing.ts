/**
 * Handing outputs on (buildomat §1.7, §2.3): publishing an output at a stable public URL, and
 * signing URLs that let anyone download an output for a while without a token.
 *
 * - Publishing maps `(owner, series, version, name)` to a job's output, where `owner` is the
 *   job's owner; the file is then served with no authentication at
 *   `/0/public/file/{owner's name}/{series}/{version}/{name}`. The job must be complete; publishing
 *   the same mapping again succeeds; a mapping to another file is a conflict. Published files are
 *   never purged.
 * - Signing: buildomat always answers with an S3 presigned URL. When the object store can
 *   presign (`ObjectStore.presign`), so do we; otherwise the server signs a URL to itself,
 *   `/ext/0/jobs/{job}/outputs/{output}/signed?expires=…&signature=…`, whose signature is an
 *   HMAC-SHA256 over the job, the output, the expiry and the response headers asked for, with a
 *   key kept in the data directory (`url-signing.key`, created on first start, mode 0600).
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { BadRequest, Conflict, NotFound } from "../Errors.js"
import { isPublishId, type JobOutputPublish, MAX_SIGNED_URL_SECONDS } from "../JobModel.js"
import { ServerConfig } from "./Config.js"
import type { JobRow } from "./JobStore.js"

/**
 * What a signed URL carries besides the job and output: its expiry (Unix seconds) and the
 * response headers it asks for.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignedParams {
  readonly expires: number
  readonly content_type?: string | undefined
  readonly content_disposition?: string | undefined
}

/**
 * The name of the key file in the data directory.
 *
 * @since 0.1.0
 * @category constants
 */
export const KEY_FILE = "url-signing.key"

/** Reads the signing key, creating it (32 random bytes, hex, mode 0600) if it does not exist. */
const loadKey = (dataDir: string): Buffer => {
  const file = NodePath.join(dataDir, KEY_FILE)
  try {
    NodeFs.writeFileSync(file, `${Crypto.randomBytes(32).toString("hex")}\n`, { mode: 0o600, flag: "wx" })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
  }
  const hex = NodeFs.readFileSync(file, "utf8").trim()
  if (!/^[0-9a-f]{64,}$/.test(hex)) throw new Error(`${file} does not hold a hex key of at least 32 bytes`)
  return Buffer.from(hex, "hex")
}

/** A header value we put in a response must be visible ASCII or spaces, nothing else. */
const headerSafe = (s: string) => /^[\x20-\x7e]*$/.test(s) && s.length <= 1024

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* ServerConfig
  const key = yield* Effect.sync(() => loadKey(config.dataDir))

  /**
   * `POST /0/jobs/{job}/outputs/{output}/publish`. 400 if an identifier is not 2–48 characters
   * of `[A-Za-z0-9._-]`; 409 if the job is not complete or the name is taken by another file;
   * 404 if the job has no such output.
   */
  const publish = (job: JobRow, output: string, body: JobOutputPublish) =>
    Effect.gen(function*() {
      for (const [what, v] of [["series", body.series], ["version", body.version], ["name", body.name]] as const) {
        if (!isPublishId(v)) {
          return yield* Effect.fail(
            new BadRequest({ message: `invalid published file ID: ${what} ${JSON.stringify(v)} must be 2 to 48 characters of [A-Za-z0-9._-]` })
          )
        }
      }
      const r = yield* sql.withTransaction(
        Effect.gen(function*() {
          const [j] = yield* sql<{ complete: number; owner: string }>`SELECT complete, owner FROM job WHERE id = ${job.id}`
          if (j === undefined) return "missing" as const
          if (!j.complete) return "incomplete" as const
          const out = yield* sql`SELECT 1 FROM job_output WHERE job = ${job.id} AND id = ${output}`
          if (out.length === 0) return "no output" as const
          const [pf] = yield* sql<{ job: string; file: string }>`
            SELECT job, file FROM published_file
            WHERE owner = ${j.owner} AND series = ${body.series} AND version = ${body.version} AND name = ${body.name}`
          if (pf !== undefined) return pf.job === job.id && pf.file === output ? "ok" as const : "taken" as const
          yield* sql`INSERT INTO published_file ${
            sql.insert({ owner: j.owner, series: body.series, version: body.version, name: body.name, job: job.id, file: output })
          }`
          return "ok" as const
        })
      ).pipe(Effect.orDie)
      switch (r) {
        case "missing":
          return yield* Effect.fail(new NotFound({ message: `job ${job.id} does not exist` }))
        case "no output":
          return yield* Effect.fail(new NotFound({ message: `job ${job.id} has no output ${output}` }))
        case "incomplete":
          return yield* Effect.fail(new Conflict({ message: "job must be complete before files are published" }))
        case "taken":
          return yield* Effect.fail(new Conflict({ message: "that published file already exists with different contents" }))
      }
    })

  /**
   * The published file `username/series/version/name`, or NotFound ("published file not found")
   * if the user or the mapping does not exist.
   */
  const publicFile = (username: string, series: string, version: string, name: string) =>
    sql<{ job: string; id: string; size: number; sha256: string; path: string }>`
      SELECT f.job AS job, f.id AS id, f.size AS size, f.sha256 AS sha256, o.path AS path
      FROM user u
      JOIN published_file p ON p.owner = u.id
      JOIN job_file f ON f.job = p.job AND f.id = p.file
      JOIN job_output o ON o.job = p.job AND o.id = p.file
      WHERE u.name = ${username} AND p.series = ${series} AND p.version = ${version} AND p.name = ${name}`.pipe(
      Effect.orDie,
      Effect.flatMap((r) =>
        Option.match(Option.fromNullable(r[0]), {
          onNone: () => Effect.fail(new NotFound({ message: "published file not found" })),
          onSome: Effect.succeed
        })
      )
    )

  const mac = (job: string, output: string, p: SignedParams) =>
    Crypto.createHmac("sha256", key)
      .update(["buildomat-signed-url-v1", job, output, String(p.expires), p.content_type ?? "", p.content_disposition ?? ""].join("\n"))
      .digest("hex")

  /**
   * Checks a signing request: `expiry_seconds` from 1 to 3600 (buildomat: at most an hour), and
   * header values of visible ASCII (they go into response headers). 400 otherwise.
   */
  const checkSignRequest = (expirySeconds: number, contentType: string | undefined, contentDisposition: string | undefined) =>
    Effect.gen(function*() {
      if (expirySeconds > MAX_SIGNED_URL_SECONDS) {
        return yield* Effect.fail(new BadRequest({ message: "URLs can last at most one hour (3600 seconds)" }))
      }
      if (expirySeconds < 1) return yield* Effect.fail(new BadRequest({ message: "expiry_seconds must be at least 1" }))
      for (const [what, v] of [["content_type", contentType], ["content_disposition", contentDisposition]] as const) {
        if (v !== undefined && !headerSafe(v)) {
          return yield* Effect.fail(
            new BadRequest({ message: `${what} must be at most 1024 characters of printable ASCII` })
          )
        }
      }
    })

  /**
   * The path and query of a server-signed URL for `output` of `job` (relative to the server's
   * URL), valid for `expirySeconds` from now.
   */
  const signedPath = (
    job: string,
    output: string,
    expirySeconds: number,
    contentType: string | undefined,
    contentDisposition: string | undefined
  ) => {
    const params: SignedParams = {
      expires: Math.floor(Date.now() / 1000) + expirySeconds,
      content_type: contentType,
      content_disposition: contentDisposition
    }
    const q = new URLSearchParams({ expires: String(params.expires) })
    if (contentType !== undefined) q.set("content_type", contentType)
    if (contentDisposition !== undefined) q.set("content_disposition", contentDisposition)
    q.set("signature", mac(job, output, params))
    return `/ext/0/jobs/${job}/outputs/${output}/signed?${q.toString()}`
  }

  /**
   * Checks a server-signed URL: the signature must match (compared in constant time) and the
   * expiry must not have passed. Returns what is wrong, or `undefined`.
   */
  const verify = (job: string, output: string, p: SignedParams & { readonly signature: string }) => {
    const expected = Buffer.from(mac(job, output, p), "hex")
    const given = /^[0-9a-f]{64}$/.test(p.signature) ? Buffer.from(p.signature, "hex") : Buffer.alloc(0)
    if (given.length !== expected.length || !Crypto.timingSafeEqual(given, expected)) {
      return "the URL's signature does not match"
    }
    if (Math.floor(Date.now() / 1000) > p.expires) return "the URL has expired"
    return undefined
  }

  return { publish, publicFile, checkSignRequest, signedPath, verify } as const
})

/**
 * The publishing and URL signing service.
 *
 * @since 0.1.0
 * @category context
 */
export class Publishing extends Context.Tag("@buildomat/core/server/Publishing")<
  Publishing,
  Effect.Effect.Success<typeof make>
>() {}

/**
 * Needs `SqlClient` and `ServerConfig` (the signing key lives in its `dataDir`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(Publishing, make)
