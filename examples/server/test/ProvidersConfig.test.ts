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
})
