/**
 * The reference server's configuration file: the AWS provider section next to the local one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Testing } from "@buildomat/core/server"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as ServerConfig from "../src/Config.js"

const write = (dir: string, text: string) => {
  const file = NodePath.join(dir, "buildomat.toml")
  NodeFs.writeFileSync(file, text)
  return file
}

const AWS = `
[providers.aws]
region = "us-west-2"
subnets = ["subnet-0a", "subnet-0b"]
security_groups = ["sg-01"]
limit = 3
[providers.aws.targets.linux]
ami = "ami-0123"
instance_type = "m7i.large"
`

describe("reference server configuration", () => {
  it.scoped("decodes [providers.aws] beside [providers.local]", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const config = yield* ServerConfig.load(write(dir, `[admin]\ntoken = "t0123456789"\n[providers.local]\ntargets = ["default"]\n${AWS}`))
      assert.deepStrictEqual(config.local?.targets, ["default"])
      assert.strictEqual(config.aws?.region, "us-west-2")
      assert.strictEqual(config.aws?.limit, 3)
      assert.deepStrictEqual(config.aws?.subnets, ["subnet-0a", "subnet-0b"])
      assert.deepStrictEqual(config.aws?.targets, { linux: { ami: "ami-0123", instanceType: "m7i.large" } })
    }))

  it.scoped("names the section and key of a mistake, and refuses a target served twice", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const typo = yield* Effect.flip(ServerConfig.load(write(dir, `${AWS}\nsubnet = "subnet-0c"\n`)))
      assert.match(typo.message, /buildomat\.toml: \[providers\.aws\]: [\s\S]*\["subnet"\]\n\s*└─ is unexpected/)
      const twice = yield* Effect.flip(
        ServerConfig.load(write(dir, `[providers.local]\ntargets = ["linux"]\n${AWS}`))
      )
      assert.match(twice.message, /target "linux" is served by both \[providers\.local\] and \[providers\.aws\]; give each target one provider$/)
    }))

  it.scoped("[factory]: providers left to a factory process, per-target local tables, and what factory.js reads", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const text = `[server]\nlisten = "0.0.0.0:9999"\n[admin]\ntoken = "t0123456789"\n` +
        `[factory]\ntoken = "ftoken"\nproviders = ["local"]\nboot_timeout_s = 90\n` +
        `[providers.local]\nscratch_root = "w"\nlimit = 3\n[providers.local.targets.fast]\nwarm = 2\nscratch_root = "fast"\n` +
        `[providers.local.targets.slow]\nlimit = 1\n`
      const file = write(dir, text)
      const config = yield* ServerConfig.load(file)
      assert.deepStrictEqual(config.remote, ["local"])
      assert.strictEqual(config.bootTimeoutMs, 90_000)
      assert.deepStrictEqual(config.local?.targets, { fast: { warm: 2, scratchRoot: NodePath.join(dir, "fast") }, slow: { limit: 1 } })
      assert.strictEqual(config.local?.scratchRoot, NodePath.join(dir, "w"))

      const f = yield* ServerConfig.loadFactory(file, undefined)
      assert.strictEqual(f.url, "http://127.0.0.1:9999")
      assert.strictEqual(f.token, "ftoken")
      assert.strictEqual(f.bootTimeoutMs, 90_000)
      assert.strictEqual(f.provider.kind, "local")
      const saved = process.env["BUILDOMAT_FACTORY_TOKEN"]
      process.env["BUILDOMAT_FACTORY_TOKEN"] = "from-env"
      assert.strictEqual((yield* ServerConfig.loadFactory(file, "local")).token, "from-env")
      if (saved === undefined) delete process.env["BUILDOMAT_FACTORY_TOKEN"]
      else process.env["BUILDOMAT_FACTORY_TOKEN"] = saved

      const typo = yield* Effect.flip(ServerConfig.load(write(dir, `[factory]\ntokn = "x"\n`)))
      assert.match(typo.message, /\["tokn"\]\n[\s│]*└─ is unexpected/)
      const missing = yield* Effect.flip(ServerConfig.load(write(dir, `[factory]\nproviders = ["aws"]\n`)))
      assert.match(missing.message, /\[factory\] providers names "aws", but there is no \[providers\.aws\]$/)
      const which = yield* Effect.flip(ServerConfig.loadFactory(write(dir, `[factory]\ntoken = "x"\n[providers.local]\n${AWS}`), undefined))
      assert.match(which.message, /say which provider to run: --provider local\|aws$/)
      const warmTooBig = yield* Effect.flip(ServerConfig.load(write(dir, `[providers.local.targets.x]\nlimit = 1\nwarm = 2\n`)))
      assert.match(warmTooBig.message, /target "x": warm \(2\) is more than its limit \(1\)/)
    }))
})
