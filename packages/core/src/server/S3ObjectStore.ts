/**
 * An `ObjectStore` in an S3 bucket (or any S3-compatible service), for buildomat's archive tier
 * (§1.9: files at `<prefix>/output/<job>/<file>`, job archives at `<prefix>/job/2/<job>.tlvc`).
 *
 * - `put` streams the body through `@aws-sdk/lib-storage`'s `Upload`: one `PutObject` for a small
 *   body, a multipart upload in `partSize` parts otherwise (aborted on failure, so no partial
 *   object is ever visible: S3 objects appear whole or not at all).
 * - `get` streams `GetObject`, with a `Range` for byte ranges; the `Content-Range` S3 answers is
 *   checked against the range asked for (as buildomat does).
 * - `presign` signs a `GetObject` URL with `@aws-sdk/s3-request-presigner`, overriding the
 *   response's `Content-Type` and `Content-Disposition` when asked.
 *
 * AWS references: PutObject, UploadPart, GetObject (`Range`), HeadObject, DeleteObject,
 * ListObjectsV2, and "Sharing objects with presigned URLs" in the S3 user guide.
 *
 * @since 0.1.0
 */
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3"
import { Effect, Layer, Option, Schema, type Scope, Stream } from "effect"
import { Readable } from "node:stream"
import { ArchiveStore, type ByteRange, ObjectStore, ObjectStoreError, type PresignOptions } from "./ObjectStore.js"

// The AWS SDK is loaded when an S3 store first needs it, not with the server's modules: a server
// that does not use S3 does not pay for it (about 110 ms at start and 9 MiB of its RSS, measured).
let sdkLoading:
  | Promise<{
    readonly s3: typeof import("@aws-sdk/client-s3")
    readonly storage: typeof import("@aws-sdk/lib-storage")
    readonly presigner: typeof import("@aws-sdk/s3-request-presigner")
  }>
  | undefined
const sdk = () =>
  (sdkLoading ??= Promise.all([
    import("@aws-sdk/client-s3"),
    import("@aws-sdk/lib-storage"),
    import("@aws-sdk/s3-request-presigner")
  ]).then(([s3, storage, presigner]) => ({ s3, storage, presigner })))

/**
 * How to reach the bucket.
 *
 * - `bucket`: the bucket name (it must exist).
 * - `prefix`: prepended to every key, joined with `/` (buildomat `storage.prefix`); default none.
 * - `region`: default `us-east-1`.
 * - `endpoint`: an S3-compatible endpoint URL (MinIO, Ceph, a test server); default AWS.
 * - `forcePathStyle`: `https://host/bucket/key` instead of `https://bucket.host/key`; default
 *   true when `endpoint` is given, else false.
 * - `credentials`: static keys; when absent, the AWS SDK's default chain (environment,
 *   `AWS_PROFILE` and shared files, SSO, container and instance roles).
 * - `partSize`: multipart part size in bytes (S3's minimum and the default: 5 MiB).
 * - `queueSize`: parts uploaded concurrently (default 4).
 *
 * @since 0.1.0
 * @category models
 */
export interface S3Config {
  readonly bucket: string
  readonly prefix?: string | undefined
  readonly region?: string | undefined
  readonly endpoint?: string | undefined
  readonly forcePathStyle?: boolean | undefined
  readonly credentials?: {
    readonly accessKeyId: string
    readonly secretAccessKey: string
    readonly sessionToken?: string | undefined
  } | undefined
  readonly partSize?: number | undefined
  readonly queueSize?: number | undefined
}

/**
 * The configuration as a schema (snake_case, as in the reference server's `[storage]` table).
 * Static keys come in pairs: `access_key_id` and `secret_access_key` together, or neither.
 *
 * @since 0.1.0
 * @category schemas
 */
export const S3ConfigSchema = Schema.Struct({
  bucket: Schema.NonEmptyTrimmedString,
  prefix: Schema.optional(Schema.String),
  region: Schema.optional(Schema.NonEmptyTrimmedString),
  endpoint: Schema.optional(Schema.String),
  force_path_style: Schema.optional(Schema.Boolean),
  access_key_id: Schema.optional(Schema.NonEmptyTrimmedString),
  secret_access_key: Schema.optional(Schema.NonEmptyString),
  session_token: Schema.optional(Schema.NonEmptyString),
  part_size_mb: Schema.optional(Schema.Int.pipe(Schema.between(5, 5120)))
}).pipe(
  Schema.filter((c) =>
    (c.access_key_id === undefined) === (c.secret_access_key === undefined) ||
    "access_key_id and secret_access_key go together: give both, or neither to use the AWS default credential chain"
  ),
  Schema.annotations({ parseOptions: { onExcessProperty: "error" } })
)

/**
 * Converts the snake_case configuration to an `S3Config`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSchema = (c: typeof S3ConfigSchema.Type): S3Config => ({
  bucket: c.bucket,
  prefix: c.prefix,
  region: c.region,
  endpoint: c.endpoint,
  forcePathStyle: c.force_path_style,
  credentials: c.access_key_id !== undefined && c.secret_access_key !== undefined
    ? { accessKeyId: c.access_key_id, secretAccessKey: c.secret_access_key, sessionToken: c.session_token }
    : undefined,
  partSize: c.part_size_mb !== undefined ? c.part_size_mb * 1024 * 1024 : undefined
})

const MIN_PART = 5 * 1024 * 1024

const isNotFound = (e: unknown) => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } }
  return err?.name === "NotFound" || err?.name === "NoSuchKey" || err?.$metadata?.httpStatusCode === 404
}

/**
 * The S3 client options for a configuration. Checksums are computed and validated only when an
 * operation requires them (`WHEN_REQUIRED`): recent SDKs otherwise send CRC trailers and
 * `aws-chunked` bodies that many S3-compatible services do not accept.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientConfig = (config: S3Config): S3ClientConfig => ({
  region: config.region ?? "us-east-1",
  ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
  forcePathStyle: config.forcePathStyle ?? config.endpoint !== undefined,
  ...(config.credentials !== undefined
    ? {
      credentials: {
        accessKeyId: config.credentials.accessKeyId,
        secretAccessKey: config.credentials.secretAccessKey,
        ...(config.credentials.sessionToken !== undefined ? { sessionToken: config.credentials.sessionToken } : {})
      }
    }
    : {}),
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED"
})

/**
 * An object store over an existing `S3Client` (which the caller owns and destroys).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (client: S3Client, config: S3Config): ObjectStore => {
  const bucket = config.bucket
  const prefix = (config.prefix ?? "").replace(/^\/+|\/+$/g, "")
  const keyOf = (key: string) => (prefix === "" ? key : `${prefix}/${key}`)
  const fail = (op: string, key: string) => (cause: unknown) =>
    new ObjectStoreError({
      op,
      key,
      message: `${op} s3://${bucket}/${keyOf(key)}: ${String((cause as Error)?.message ?? cause)}`,
      cause
    })

  const put = <E>(key: string, body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function*() {
      let written = 0
      let failure: Option.Option<E> = Option.none()
      const source = body.pipe(
        Stream.tap((c) => Effect.sync(() => (written += c.length))),
        Stream.tapError((e) => Effect.sync(() => (failure = Option.some(e))))
      )
      const { storage } = yield* Effect.promise(sdk)
      const readable = Readable.from(Stream.toAsyncIterable(source), { objectMode: false })
      const upload = new storage.Upload({
        client,
        params: { Bucket: bucket, Key: keyOf(key), Body: readable },
        partSize: Math.max(config.partSize ?? MIN_PART, MIN_PART),
        queueSize: config.queueSize ?? 4,
        leavePartsOnError: false
      })
      const result = yield* Effect.tryPromise({ try: () => upload.done(), catch: fail("put", key) }).pipe(
        Effect.onInterrupt(() => Effect.promise(() => upload.abort().catch(() => undefined))),
        Effect.either
      )
      const f: Option.Option<E> = failure
      if (Option.isSome(f)) return yield* Effect.fail(f.value)
      if (result._tag === "Left") return yield* Effect.fail(result.left)
      return written
    })

  const get = (key: string, range?: ByteRange) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const res = yield* Effect.tryPromise({
          try: async (signal) =>
            client.send(
              new (await sdk()).s3.GetObjectCommand({
                Bucket: bucket,
                Key: keyOf(key),
                ...(range !== undefined ? { Range: `bytes=${range.start}-${range.end}` } : {})
              }),
              { abortSignal: signal }
            ),
          catch: fail("get", key)
        })
        if (range !== undefined) {
          const m = /^bytes (\d+)-(\d+)\/\d+$/.exec(res.ContentRange ?? "")
          if (m === null || Number(m[1]) !== range.start || Number(m[2]) !== range.end) {
            (res.Body as Readable | undefined)?.destroy?.()
            return yield* Effect.fail(
              fail("get", key)(
                new Error(`asked for bytes ${range.start}-${range.end}, S3 answered Content-Range ${JSON.stringify(res.ContentRange)}`)
              )
            )
          }
        }
        const b = res.Body as (Readable & AsyncIterable<Uint8Array>) | undefined
        if (b === undefined) return Stream.empty
        return Stream.fromAsyncIterable(b, fail("get", key)).pipe(
          Stream.ensuring(Effect.sync(() => b.destroy()))
        )
      })
    )

  const head = (key: string) =>
    Effect.tryPromise({
      try: async () => {
        try {
          const r = await client.send(new (await sdk()).s3.HeadObjectCommand({ Bucket: bucket, Key: keyOf(key) }))
          return Option.some(r.ContentLength ?? 0)
        } catch (e) {
          if (isNotFound(e)) return Option.none<number>()
          throw e
        }
      },
      catch: fail("head", key)
    })

  const del = (key: string) =>
    Effect.tryPromise({
      try: async () => client.send(new (await sdk()).s3.DeleteObjectCommand({ Bucket: bucket, Key: keyOf(key) })),
      catch: fail("delete", key)
    }).pipe(Effect.asVoid)

  const list = (p: string) =>
    Effect.tryPromise({
      try: async () => {
        const out: Array<string> = []
        let token: string | undefined
        const full = keyOf(p)
        const { s3 } = await sdk()
        do {
          const r = await client.send(
            new s3.ListObjectsV2Command({
              Bucket: bucket,
              Prefix: full,
              ...(token !== undefined ? { ContinuationToken: token } : {})
            })
          )
          for (const o of r.Contents ?? []) {
            if (o.Key !== undefined) out.push(prefix === "" ? o.Key : o.Key.slice(prefix.length + 1))
          }
          token = r.IsTruncated ? r.NextContinuationToken : undefined
        } while (token !== undefined)
        return out.sort()
      },
      catch: fail("list", p)
    })

  const presign = (key: string, options: PresignOptions) =>
    Effect.tryPromise({
      try: async () => {
        const { presigner, s3 } = await sdk()
        return presigner.getSignedUrl(
          client,
          new s3.GetObjectCommand({
            Bucket: bucket,
            Key: keyOf(key),
            ...(options.contentType !== undefined ? { ResponseContentType: options.contentType } : {}),
            ...(options.contentDisposition !== undefined ? { ResponseContentDisposition: options.contentDisposition } : {})
          }),
          { expiresIn: options.expirySeconds }
        )
      },
      catch: fail("presign", key)
    }).pipe(Effect.map((url) => ({ url, available: true })))

  return { put, get, head, delete: del, list, presign }
}

/**
 * Makes an S3 client for the configuration and an object store on it; the client is destroyed
 * (its sockets closed) when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: S3Config): Effect.Effect<ObjectStore, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(sdk).pipe(Effect.map(({ s3 }) => new s3.S3Client(clientConfig(config)))),
      (client) => Effect.sync(() => client.destroy())
    ),
    (client) => fromClient(client, config)
  )

/**
 * The S3 store as the primary `ObjectStore` (uploads are committed straight to the bucket).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: S3Config): Layer.Layer<ObjectStore> => Layer.scoped(ObjectStore, make(config))

/**
 * The S3 store as the archive tier (`ArchiveStore`): files are committed to the primary store,
 * then copied here by the file archiving loop; job archives are written here. This is
 * buildomat's arrangement.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerArchive = (config: S3Config): Layer.Layer<ArchiveStore> => Layer.scoped(ArchiveStore, make(config))
