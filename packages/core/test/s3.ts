/**
 * An S3-compatible server on loopback for the tests (s3rver, started and stopped with the scope),
 * and a plain AWS SDK client to check what landed in the bucket independently of our store.
 */
import { S3ObjectStore, Testing } from "@buildomat/core/server"
import { S3Client } from "@aws-sdk/client-s3"
import { Effect } from "effect"
import S3rver from "s3rver"

export const BUCKET = "buildomat-test"

export const startS3 = Effect.gen(function*() {
  const directory = yield* Testing.tempDirectory("s3rver-")
  const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory, configureBuckets: [{ name: BUCKET, configs: [] }] })
  const info = yield* Effect.acquireRelease(Effect.promise(() => server.run()), () => Effect.promise(() => server.close()))
  const endpoint = `http://127.0.0.1:${info.port}`
  const config: S3ObjectStore.S3Config = {
    bucket: BUCKET,
    prefix: "bmat",
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
  }
  const raw = yield* Effect.acquireRelease(
    Effect.sync(() => new S3Client(S3ObjectStore.clientConfig(config))),
    (c) => Effect.sync(() => c.destroy())
  )
  return { endpoint, config, raw }
})
