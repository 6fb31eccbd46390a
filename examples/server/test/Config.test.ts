/**
 * The reference server's TOML configuration: the background loops' switches, the S3 archive tier
 * in `[storage]`, and unknown keys refused by name.
 */
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as Config from "../src/Config.js"

const load = (dir: string, toml: string) =>
  Effect.gen(function*() {
    const file = NodePath.join(dir, "buildomat.toml")
    NodeFs.writeFileSync(file, toml)
    return yield* Config.load(file).pipe(Effect.either)
  })

describe("Config", () => {
  it.scoped("defaults: buildomat's (no automatic archive or purge, files archived when there is a tier)", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const r = yield* load(dir, "[admin]\ntoken = \"t0123456789\"\n")
      assert.isTrue(r._tag === "Right")
      if (r._tag !== "Right") return
      assert.deepInclude(r.right, {
        jobAutoArchive: false,
        jobAutoPurge: false,
        purgeDelayMs: 500,
        fileAutoArchive: true,
        storage: undefined,
        maxBytesPerFile: 1024 * 1024 * 1024
      })
    }))

  it.scoped("[job], [file] and [storage] are read", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const r = yield* load(
        dir,
        [
          "[admin]", "token = \"t0123456789\"",
          "[job]", "max_size_per_file_mb = 8", "auto_archive = true", "auto_purge = true", "purge_delay_msec = 0",
          "[file]", "auto_archive = false",
          "[storage]", "bucket = \"ci\"", "prefix = \"prod\"", "region = \"eu-west-1\"",
          "endpoint = \"http://127.0.0.1:9000\"", "access_key_id = \"AK\"", "secret_access_key = \"SK\""
        ].join("\n")
      )
      assert.isTrue(r._tag === "Right")
      if (r._tag !== "Right") return
      assert.deepInclude(r.right, { jobAutoArchive: true, jobAutoPurge: true, purgeDelayMs: 0, fileAutoArchive: false, maxBytesPerFile: 8 * 1024 * 1024 })
      assert.deepStrictEqual(r.right.storage, {
        bucket: "ci",
        prefix: "prod",
        region: "eu-west-1",
        endpoint: "http://127.0.0.1:9000",
        forcePathStyle: undefined,
        credentials: { accessKeyId: "AK", secretAccessKey: "SK", sessionToken: undefined },
        partSize: undefined
      })
    }))

  it.scoped("unknown keys and half-given credentials are refused with a message naming them", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      for (const [toml, pattern] of [
        ["[storage]\nbucket = \"ci\"\nprofile = \"default\"\n", /profile/],
        ["[storage]\nbucket = \"ci\"\naccess_key_id = \"AK\"\n", /go together/],
        ["[storage]\nprefix = \"p\"\n", /bucket/],
        ["[job]\nauto_archve = true\n", /auto_archve/],
        ["[file]\nauto_archive = \"yes\"\n", /auto_archive/]
      ] as const) {
        const r = yield* load(dir, toml)
        assert.isTrue(r._tag === "Left", toml)
        if (r._tag === "Left") assert.match(r.left.message, pattern, toml)
      }
    }))
})
