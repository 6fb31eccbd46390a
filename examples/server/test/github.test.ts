/**
 * The reference server runs the GitHub App from the same TOML file: a `[github]` table, decoded
 * with unknown keys refused, defaults taken from the rest of the file.
 */
import { Config as CoreConfig, Testing } from "@buildomat/core/server"
import { GitHubApp } from "@buildomat/github"
import { assert, describe, it } from "@effect/vitest"
import { sign } from "@octokit/webhooks-methods"
import { Context, Effect, Layer, Option, Scope } from "effect"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as ServerConfig from "../src/Config.js"
import * as ServerLayer from "../src/ServerLayer.js"

const write = (dir: string, name: string, text: string) => {
  const f = NodePath.join(dir, name)
  NodeFs.writeFileSync(f, text)
  return f
}

const key = () => Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString()

const toml = (extra = "") => `
[server]
listen = "127.0.0.1:0"
data_dir = "data"

[admin]
token = "example-admin-token-0123456789"

[providers.local]
limit = 1

[github]
app_id = 4242
private_key_path = "privkey.pem"
webhook_secret = "hook secret"
listen = "127.0.0.1:0"
allow_owners = ["octo-org"]
${extra}
`

describe("the reference server's [github] table", () => {
  it.scoped("rejects unknown keys and missing ones, naming them", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      write(dir, "privkey.pem", key())
      const unknown = yield* ServerConfig.load(write(dir, "a.toml", toml("web_hook_secret = \"typo\""))).pipe(Effect.flip)
      assert.match(unknown.message, /\[github\]: .*web_hook_secret/)
      assert.match(unknown.message, /is unexpected/)
      const coreTypo = yield* ServerConfig.load(write(dir, "b.toml", toml("[github.core]\nidentity = \"admin\""))).pipe(Effect.flip)
      assert.match(coreTypo.message, /identity/)
      const noKey = yield* ServerConfig.load(write(dir, "c.toml", toml().replace("private_key_path = \"privkey.pem\"", ""))).pipe(Effect.flip)
      assert.match(noKey.message, /exactly one of private_key_path and private_key/)
      const noOwners = yield* ServerConfig.load(write(dir, "d.toml", toml().replace("allow_owners = [\"octo-org\"]", ""))).pipe(Effect.flip)
      assert.match(noOwners.message, /allow_owners/)
    }))

  it.scoped("defaults to this server, its admin token and its data directory; the App serves its webhook", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      write(dir, "privkey.pem", key())
      const config = yield* ServerConfig.load(write(dir, "buildomat.toml", toml()))
      const gh = config.github!
      assert.strictEqual(gh.appId, 4242)
      assert.strictEqual(gh.core.token, "example-admin-token-0123456789")
      assert.strictEqual(gh.core.identity, "repo_users")
      assert.strictEqual(gh.databasePath, NodePath.join(dir, "data", "github", "data.sqlite3"))
      assert.strictEqual(gh.confroot, ".github/buildomat")
      assert.strictEqual(gh.cloneUrl, "https://x-access-token:{token}@github.com/{owner}/{repo}.git")
      assert.isTrue(config.githubUsesThisServer)

      const scope = yield* Scope.Scope
      const ctx = yield* Layer.buildWithScope(ServerLayer.layer(config), scope)
      const coreUrl = Context.get(ctx, CoreConfig.ServerUrl)
      const appUrl = Option.getOrThrow(Context.getOption(ctx, GitHubApp.AppUrl))
      assert.notStrictEqual(coreUrl, appUrl)
      const body = JSON.stringify({ zen: "Keep it logically awesome.", hook_id: 1 })
      const post = (signature: string) =>
        Effect.promise(() =>
          fetch(`${appUrl}/webhook`, {
            method: "POST",
            headers: { "x-github-event": "ping", "x-github-delivery": "d-1", "x-hub-signature-256": signature, "content-type": "application/json" },
            body
          }).then((r) => r.status))
      assert.strictEqual(yield* post("sha256=" + "0".repeat(64)), 401)
      assert.strictEqual(yield* post(yield* Effect.promise(() => sign("hook secret", body))), 200)
      assert.isTrue(NodeFs.existsSync(gh.databasePath))
      const status = yield* Effect.promise(() => fetch(`${appUrl}/status`).then((r) => r.status))
      assert.strictEqual(status, 200)
    }))
})
