/**
 * Where file contents live: committed outputs and inputs (and later archives). The database holds
 * only their metadata (size, SHA-256). Keys are `/`-separated relative paths built from ULIDs by
 * the server, never from user input.
 *
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer, Option, Stream } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

/**
 * An object store operation failed (I/O, or a missing object).
 *
 * @since 0.1.0
 * @category errors
 */
export class ObjectStoreError extends Data.TaggedError("ObjectStoreError")<{
  readonly op: string
  readonly key: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A byte range, `start` and `end` inclusive (as in an HTTP `Range` header).
 *
 * @since 0.1.0
 * @category models
 */
export interface ByteRange {
  readonly start: number
  readonly end: number
}

/**
 * The object store port.
 *
 * - `put(key, body)`: stores a stream atomically (readers never see a partial object) and
 *   durably (fsync'd); resolves to the number of bytes written.
 * - `get(key, range?)`: streams an object, or the inclusive byte range of it.
 * - `head(key)`: the object's size in bytes, or `None` if absent.
 * - `delete(key)`: removes an object; removing an absent one succeeds.
 * - `list(prefix)`: the keys under a prefix.
 * - `presign(key, options)` (optional): a URL anyone can `GET` the object at, without a token,
 *   until it expires; see `PresignOptions` and `PresignedUrl`. A store that can do this (S3) sets
 *   it, and `POST /0/jobs/{job}/outputs/{output}/sign` then answers with that URL, as buildomat
 *   does. Without it the server signs a URL to itself (`/ext/0/jobs/{job}/outputs/{output}/signed`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectStore {
  readonly put: <E>(key: string, body: Stream.Stream<Uint8Array, E>) => Effect.Effect<number, ObjectStoreError | E>
  /**
   * Optional: stores the local file `file` as `key`, taking it over (the file is gone afterwards);
   * resolves to its size in bytes. A store that can adopt a file (the file-system store renames
   * it) saves writing the bytes a second time; callers fall back to `put` when it is absent.
   */
  readonly putFile?: ((key: string, file: string) => Effect.Effect<number, ObjectStoreError>) | undefined
  readonly get: (key: string, range?: ByteRange) => Stream.Stream<Uint8Array, ObjectStoreError>
  readonly head: (key: string) => Effect.Effect<Option.Option<number>, ObjectStoreError>
  readonly delete: (key: string) => Effect.Effect<void, ObjectStoreError>
  readonly list: (prefix: string) => Effect.Effect<ReadonlyArray<string>, ObjectStoreError>
  readonly presign?: ((key: string, options: PresignOptions) => Effect.Effect<PresignedUrl, ObjectStoreError>) | undefined
}

/**
 * What a presigned URL must do: last `expirySeconds` (1 to 3600), and make the download carry
 * these `Content-Type` and `Content-Disposition` headers when given (S3's `response-content-type`
 * and `response-content-disposition` overrides).
 *
 * @since 0.1.0
 * @category models
 */
export interface PresignOptions {
  readonly expirySeconds: number
  readonly contentType?: string | undefined
  readonly contentDisposition?: string | undefined
}

/**
 * A presigned URL, and whether the object is already where it points (`available`; buildomat:
 * the file has been uploaded to S3 yet; a store that writes there first answers `true`).
 *
 * @since 0.1.0
 * @category models
 */
export interface PresignedUrl {
  readonly url: string
  readonly available: boolean
}

/**
 * The object store service.
 *
 * @since 0.1.0
 * @category context
 */
export const ObjectStore = Context.GenericTag<ObjectStore>("@buildomat/core/server/ObjectStore")

const safeKey = (key: string) => {
  if (key.length === 0 || key.startsWith("/") || key.split("/").some((p) => p === "" || p === "." || p === "..")) {
    throw new Error(`invalid object key ${JSON.stringify(key)}`)
  }
  return key
}

/**
 * An object store in a directory of the local file system. `put` writes to a temporary file in
 * the same directory, fsyncs it and renames it into place, so an object is either whole or absent
 * even across a crash.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFileSystem = (root: string): ObjectStore => {
  const pathOf = (key: string) => NodePath.join(root, safeKey(key))
  const fail = (op: string, key: string) => (cause: unknown) =>
    new ObjectStoreError({ op, key, message: `${op} ${key}: ${String((cause as Error)?.message ?? cause)}`, cause })

  const put = <E>(key: string, body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function*() {
      const dest = yield* Effect.try({ try: () => pathOf(key), catch: fail("put", key) })
      const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
      yield* Effect.tryPromise({
        try: () => NodeFs.promises.mkdir(NodePath.dirname(dest), { recursive: true }),
        catch: fail("put", key)
      })
      return yield* Effect.acquireUseRelease(
        Effect.tryPromise({ try: () => NodeFs.promises.open(tmp, "wx", 0o644), catch: fail("put", key) }),
        (fh) =>
          Effect.gen(function*() {
            let written = 0
            yield* Stream.runForEach(body, (chunk) =>
              Effect.tryPromise({
                try: async () => {
                  let off = 0
                  while (off < chunk.length) {
                    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off)
                    off += bytesWritten
                  }
                  written += chunk.length
                },
                catch: fail("put", key)
              }))
            yield* Effect.tryPromise({ try: () => fh.sync(), catch: fail("put", key) })
            yield* Effect.tryPromise({ try: () => NodeFs.promises.rename(tmp, dest), catch: fail("put", key) })
            return written
          }),
        (fh, exit) =>
          Effect.promise(() => fh.close().catch(() => undefined)).pipe(
            Effect.zipRight(
              exit._tag === "Failure"
                ? Effect.promise(() => NodeFs.promises.rm(tmp, { force: true }).catch(() => undefined))
                : Effect.void
            )
          )
      )
    })

  const get = (key: string, range?: ByteRange) =>
    Stream.unwrap(
      Effect.try({ try: () => pathOf(key), catch: fail("get", key) }).pipe(
        Effect.map((p) =>
          Stream.fromAsyncIterable(
            NodeFs.createReadStream(p, range ? { start: range.start, end: range.end, highWaterMark: 256 * 1024 } : { highWaterMark: 256 * 1024 }),
            fail("get", key)
          ).pipe(Stream.map((b) => b as Uint8Array))
        )
      )
    )

  const head = (key: string) =>
    Effect.tryPromise({
      try: async () => {
        try {
          const st = await NodeFs.promises.stat(pathOf(key))
          return Option.some(st.size)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") return Option.none<number>()
          throw e
        }
      },
      catch: fail("head", key)
    })

  // Removing the last object of a directory removes the directory too (best effort), so that
  // cleaning a job's files leaves nothing behind.
  const del = (key: string) =>
    Effect.tryPromise({
      try: async () => {
        const p = NodePath.resolve(pathOf(key))
        const top = NodePath.resolve(root)
        await NodeFs.promises.rm(p, { force: true })
        let dir = NodePath.dirname(p)
        while (dir.startsWith(top + NodePath.sep)) {
          try {
            await NodeFs.promises.rmdir(dir)
          } catch {
            break
          }
          dir = NodePath.dirname(dir)
        }
      },
      catch: fail("delete", key)
    })

  const list = (prefix: string) =>
    Effect.tryPromise({
      try: async () => {
        const base = NodePath.join(root, prefix)
        const out: Array<string> = []
        const walk = async (dir: string): Promise<void> => {
          let entries: Array<NodeFs.Dirent>
          try {
            entries = await NodeFs.promises.readdir(dir, { withFileTypes: true })
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ENOENT") return
            throw e
          }
          for (const e of entries) {
            const p = NodePath.join(dir, e.name)
            if (e.isDirectory()) await walk(p)
            else if (!e.name.includes(".tmp-")) out.push(NodePath.relative(root, p).split(NodePath.sep).join("/"))
          }
        }
        await walk(base)
        return out.sort()
      },
      catch: fail("list", prefix)
    })

  const putFile = (key: string, file: string) =>
    Effect.gen(function*() {
      const dest = yield* Effect.try({ try: () => pathOf(key), catch: fail("put", key) })
      return yield* Effect.tryPromise({
        try: async () => {
          await NodeFs.promises.mkdir(NodePath.dirname(dest), { recursive: true })
          const fh = await NodeFs.promises.open(file, "r+")
          let size: number
          try {
            await fh.sync()
            size = (await fh.stat()).size
          } finally {
            await fh.close()
          }
          try {
            await NodeFs.promises.rename(file, dest)
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e
            // Another file system: copy beside the destination, fsync, rename.
            const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
            await NodeFs.promises.copyFile(file, tmp)
            const t = await NodeFs.promises.open(tmp, "r+")
            try {
              await t.sync()
            } finally {
              await t.close()
            }
            await NodeFs.promises.rename(tmp, dest)
            await NodeFs.promises.rm(file, { force: true })
          }
          return size
        },
        catch: fail("put", key)
      })
    })

  return { put, putFile, get, head, delete: del, list }
}

/**
 * The file-system object store as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileSystem = (root: string): Layer.Layer<ObjectStore> =>
  Layer.sync(ObjectStore, () => makeFileSystem(root))


/**
 * The archive tier: a second object store (typically S3, see `S3ObjectStore`) that the file
 * archiving loop copies committed files of completed jobs to, and that job archives
 * (`job/2/<job>.tlvc`) are written to (buildomat §1.9, §5.3, §5.4). Optional: without it the
 * primary store is the only store, files stay where they were committed and job archives are
 * written there.
 *
 * @since 0.1.0
 * @category context
 */
export class ArchiveStore extends Context.Tag("@buildomat/core/server/ObjectStore/ArchiveStore")<
  ArchiveStore,
  ObjectStore
>() {}

/**
 * Both tiers, for the code that moves objects between them: `primary` (where uploads are
 * committed) and `archive` (`None` when no archive tier is configured).
 *
 * @since 0.1.0
 * @category context
 */
export class StorageTiers extends Context.Tag("@buildomat/core/server/ObjectStore/StorageTiers")<
  StorageTiers,
  { readonly primary: ObjectStore; readonly archive: Option.Option<ObjectStore> }
>() {}

/**
 * One store over two tiers, as buildomat reads files: "the local file if present, else S3"
 * (§1.9).
 *
 * - `put`, `delete`, `list`: the primary tier only (the archive tier is written and cleaned only by
 *   the archive loops).
 * - `get`, `head`: the primary tier if it has the object, else the archive tier.
 * - `presign`: the archive tier's, else the primary's, if either can sign.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tiered = (primary: ObjectStore, archive: Option.Option<ObjectStore>): ObjectStore => {
  if (Option.isNone(archive)) return primary
  const second = archive.value
  const presign = second.presign ?? primary.presign
  return {
    put: primary.put,
    get: (key, range) =>
      Stream.unwrap(
        Effect.map(primary.head(key), (h) => (Option.isSome(h) ? primary.get(key, range) : second.get(key, range)))
      ),
    head: (key) =>
      Effect.flatMap(primary.head(key), (h) => (Option.isSome(h) ? Effect.succeed(h) : second.head(key))),
    delete: primary.delete,
    list: primary.list,
    ...(presign !== undefined ? { presign } : {})
  }
}

/**
 * Provides `StorageTiers` from the `ObjectStore` in context (the primary tier) and the
 * `ArchiveStore`, if any, and replaces `ObjectStore` with `tiered(primary, archive)` so that
 * every reader falls back to the archive tier.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTiers: Layer.Layer<StorageTiers | ObjectStore, never, ObjectStore> = Layer.effectContext(
  Effect.gen(function*() {
    const primary = yield* ObjectStore
    const archive = yield* Effect.serviceOption(ArchiveStore)
    return Context.make(StorageTiers, { primary, archive }).pipe(Context.add(ObjectStore, tiered(primary, archive)))
  })
)
