/**
 * The S3 object store against s3rver on loopback (a real S3 wire protocol server), and the server
 * with S3 as its archive tier: files of completed jobs copied to the bucket and removed locally,
 * downloads served from S3, job archives written to `<prefix>/job/2/<job>.tlvc`.
 */
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3"
import { ObjectStore, S3ObjectStore } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Option, Schema, Stream, TestClock } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { job, startServer, tempDir, userClient } from "./harness.js"
import { advance, assigned, bootAgent, eventually, query, runAssigned } from "./live.js"
import { BUCKET, startS3 } from "./s3.js"
import { readJobArchive } from "./tlvc-reader.js"

const MiB = 1024 * 1024

const collect = <E>(s: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(s), (c) => Buffer.concat(Chunk.toArray(c)))

/** A body in pieces of `piece` bytes, as a request body or a file read would come. */
const pieces = (data: Buffer, piece = 700 * 1024) =>
  Stream.fromIterable(Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => new Uint8Array(data.subarray(i * piece, (i + 1) * piece))))

const rawHead = (raw: any, key: string) =>
  Effect.promise(() =>
    raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(
      (r: any) => Option.some(r.ContentLength as number),
      () => Option.none<number>()
    )
  )

describe("S3ObjectStore", () => {
  it.scoped("streams a multipart put; get, ranges, head, list, delete and presigned URLs work", () =>
    Effect.gen(function*() {
      const s3 = yield* startS3
      const store = yield* S3ObjectStore.make(s3.config)
      const big = Crypto.randomBytes(12 * MiB + 7)
      assert.strictEqual(yield* store.put("output/J1/F1", pieces(big)), big.length)
      // The prefix is applied in the bucket, and the object is whole.
      assert.deepStrictEqual(yield* rawHead(s3.raw, "bmat/output/J1/F1"), Option.some(big.length))
      assert.isTrue((yield* collect(store.get("output/J1/F1"))).equals(big))
      const range = { start: 5 * MiB - 3, end: 5 * MiB + 10 }
      assert.isTrue((yield* collect(store.get("output/J1/F1", range))).equals(big.subarray(range.start, range.end + 1)))
      assert.deepStrictEqual(yield* store.head("output/J1/F1"), Option.some(big.length))
      assert.deepStrictEqual(yield* store.head("output/J1/nope"), Option.none())

      assert.strictEqual(yield* store.put("output/J1/empty", Stream.empty), 0)
      assert.strictEqual((yield* collect(store.get("output/J1/empty"))).length, 0)
      assert.strictEqual(yield* store.put("job/2/J1.tlvc", Stream.make(new TextEncoder().encode("archive"))), 7)
      assert.deepStrictEqual(yield* store.list("output/"), ["output/J1/F1", "output/J1/empty"])
      assert.deepStrictEqual(yield* store.list(""), ["job/2/J1.tlvc", "output/J1/F1", "output/J1/empty"])

      // A presigned GET needs no credentials and carries the response headers asked for.
      const { url, available } = yield* store.presign!("job/2/J1.tlvc", {
        expirySeconds: 600,
        contentType: "text/plain",
        contentDisposition: "attachment; filename=\"J1.txt\""
      })
      assert.match(url, /X-Amz-Expires=600/)
      assert.isTrue(available)
      const res = yield* Effect.promise(() => fetch(url))
      assert.strictEqual(res.status, 200)
      assert.strictEqual(res.headers.get("content-type"), "text/plain")
      assert.strictEqual(res.headers.get("content-disposition"), "attachment; filename=\"J1.txt\"")
      assert.strictEqual(yield* Effect.promise(() => res.text()), "archive")
      // A SigV4 query-string signature (s3rver does not check SigV4 signatures; S3 does).
      const q = new URL(url).searchParams
      assert.strictEqual(q.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256")
      assert.match(q.get("X-Amz-Credential") ?? "", /^S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request$/)
      assert.match(q.get("X-Amz-Signature") ?? "", /^[0-9a-f]{64}$/)
      assert.strictEqual(q.get("response-content-disposition"), "attachment; filename=\"J1.txt\"")
      assert.strictEqual(new URL(url).pathname, `/${BUCKET}/bmat/job/2/J1.tlvc`)

      yield* store.delete("output/J1/F1")
      yield* store.delete("output/J1/F1")
      assert.deepStrictEqual(yield* store.head("output/J1/F1"), Option.none())
      const missing = yield* collect(store.get("output/J1/F1")).pipe(Effect.flip)
      assert.strictEqual(missing._tag, "ObjectStoreError")
      assert.match(missing.message, /get s3:\/\/buildomat-test\/bmat\/output\/J1\/F1/)
    }))

  it.scoped("a body that fails part way leaves no object, small or multipart, and fails with its own error", () =>
    Effect.gen(function*() {
      const s3 = yield* startS3
      const store = yield* S3ObjectStore.make(s3.config)
      for (const [key, size] of [["small", 1000], ["multipart", 11 * MiB]] as const) {
        const body = pieces(Crypto.randomBytes(size)).pipe(Stream.concat(Stream.fail("the client went away" as const)))
        const e = yield* store.put(`output/J/${key}`, body).pipe(Effect.flip)
        assert.strictEqual(e, "the client went away")
        assert.deepStrictEqual(yield* store.head(`output/J/${key}`), Option.none())
        assert.deepStrictEqual(yield* rawHead(s3.raw, `bmat/output/J/${key}`), Option.none())
      }
    }))

  it("the [storage] table: both static keys or neither, unknown keys refused", () => {
    const decode = Schema.decodeUnknownEither(S3ObjectStore.S3ConfigSchema)
    const ok = decode({ bucket: "b", prefix: "p", region: "eu-west-1", access_key_id: "A", secret_access_key: "S" })
    assert.isTrue(ok._tag === "Right")
    if (ok._tag === "Right") {
      assert.deepStrictEqual(S3ObjectStore.fromSchema(ok.right).credentials, { accessKeyId: "A", secretAccessKey: "S", sessionToken: undefined })
    }
    const noKeys = decode({ bucket: "b" })
    assert.isTrue(noKeys._tag === "Right" && S3ObjectStore.fromSchema(noKeys.right).credentials === undefined)
    const half = decode({ bucket: "b", access_key_id: "A" })
    assert.isTrue(half._tag === "Left" && /go together/.test(String(half.left)))
    const extra = decode({ bucket: "b", profile: "x" })
    assert.isTrue(extra._tag === "Left" && /profile/.test(String(extra.left)))
    assert.isTrue(decode({ bucket: "" })._tag === "Left")
  })
})

describe("S3 as the archive tier", () => {
  it.scoped("files move to S3 and are served from there; the job archive is written to S3", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const s3 = yield* startS3
      const dir = yield* tempDir()
      const { requests, url } = yield* startServer(dir, 4, {
        archiveStore: S3ObjectStore.layerArchive(s3.config),
        background: { jobAutoArchive: true }
      })
      const { c } = yield* userClient(url, "erin")
      const { id } = yield* c.api.jobs.submit({ payload: job("to s3", "true", { output_rules: ["/out/*"] }) })
      const agent = yield* bootAgent(url, requests)
      yield* assigned(agent.c)
      const data = Crypto.randomBytes(6 * MiB + 5)
      yield* runAssigned(agent.c, id, { lines: 120, outputs: [{ path: "/out/big.bin", data }] })
      const [out] = yield* c.api.jobs.outputs({ path: { job: id as any } })
      const local = NodePath.join(dir, "objects", "output", id, out!.id)
      assert.isTrue(NodeFs.existsSync(local))

      // The job archive waits for the files; the file loop (15 s) copies them, then cleans up.
      yield* advance("5 seconds", "1 second")
      const [row0] = yield* query<{ time_archived: string | null }>(dir, "SELECT time_archived FROM job WHERE id = ?", [id])
      assert.isNull(row0!.time_archived)
      yield* advance("12 seconds", "4 seconds")
      const fileArchived = yield* eventually(
        "the file to be archived",
        Effect.map(query<{ t: string | null }>(dir, "SELECT time_archived AS t FROM job_file WHERE job = ?", [id]), (r) => Option.fromNullable(r[0]?.t))
      )
      assert.isString(fileArchived)
      assert.deepStrictEqual(yield* rawHead(s3.raw, `bmat/output/${id}/${out!.id}`), Option.some(data.length))
      yield* eventually("the local copy to be removed", Effect.sync(() => (NodeFs.existsSync(local) ? Option.none() : Option.some(true))))

      // Served from S3 now, whole and by range.
      const whole = yield* c.download(id, out!.id).pipe(Effect.flatMap((r) => collect(r.stream)))
      assert.isTrue(whole.equals(data))
      const part = yield* c.download(id, out!.id, { range: [6 * MiB - 2, undefined] }).pipe(Effect.flatMap((r) => collect(r.stream)))
      assert.isTrue(part.equals(data.subarray(6 * MiB - 2)))

      yield* advance("2 seconds", "1 second")
      yield* eventually(
        "the job to be archived",
        Effect.map(query<{ t: string | null }>(dir, "SELECT time_archived AS t FROM job WHERE id = ?", [id]), (r) => Option.fromNullable(r[0]?.t))
      )
      const body = yield* Effect.promise(() =>
        s3.raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: `bmat/job/2/${id}.tlvc` })).then((r) => r.Body!.transformToByteArray())
      )
      const a = readJobArchive(Buffer.from(body))
      assert.strictEqual(a.job.id, id)
      assert.strictEqual(a.events.length, 121)
      assert.deepStrictEqual(a.job.outputs.map((o: any) => [o.path, o.file.size, o.file.time_archived]), [["/out/big.bin", data.length, fileArchived]])
      // Not in the primary store: the archive tier holds it (and the local cache).
      assert.isFalse(NodeFs.existsSync(NodePath.join(dir, "objects", "job", "2", `${id}.tlvc`)))
      assert.isTrue(Buffer.from(body).equals(NodeFs.readFileSync(NodePath.join(dir, "archive", `${id}.tlvc`))))
      assert.strictEqual((yield* c.allEvents(id)).length, 121)
    }))

  it.scoped("tiered reads: the primary store first, then the archive; writes go to the primary store", () =>
    Effect.gen(function*() {
      const s3 = yield* startS3
      const dir = yield* tempDir()
      const primary = ObjectStore.makeFileSystem(dir)
      const archive = yield* S3ObjectStore.make(s3.config)
      const both = ObjectStore.tiered(primary, Option.some(archive))
      yield* archive.put("output/J/a", Stream.make(new TextEncoder().encode("from s3")))
      yield* primary.put("output/J/b", Stream.make(new TextEncoder().encode("local")))
      assert.strictEqual((yield* collect(both.get("output/J/a"))).toString(), "from s3")
      assert.strictEqual((yield* collect(both.get("output/J/b"))).toString(), "local")
      assert.strictEqual((yield* collect(both.get("output/J/a", { start: 5, end: 6 }))).toString(), "s3")
      assert.deepStrictEqual(yield* both.head("output/J/a"), Option.some(7))
      yield* both.put("output/J/c", Stream.make(new TextEncoder().encode("new")))
      assert.deepStrictEqual(yield* archive.head("output/J/c"), Option.none())
      assert.isTrue(NodeFs.existsSync(NodePath.join(dir, "output", "J", "c")))
      assert.isFunction(both.presign)
      // Removing a directory's last object removes the directory.
      yield* both.delete("output/J/b")
      yield* both.delete("output/J/c")
      assert.isFalse(NodeFs.existsSync(NodePath.join(dir, "output")))
    }))
})
