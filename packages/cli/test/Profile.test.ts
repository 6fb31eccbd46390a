import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Profile from "../src/Profile.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "buildomat-cli-profile-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const load = (env: Record<string, string>, profile?: string) =>
  Profile.load(profile === undefined ? {} : { profile }).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.provide(NodeContext.layer)
  )

const failure = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(self)
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    return yield* Effect.flip(self)
  })

const FILE = `
default_profile = "staging"

[profile.default]
url = "http://default.example"
secret = "default-secret"

[profile.staging]
url = "http://staging.example"
secret = "staging-secret"
admin_token = "staging-admin"

[profile.prod]
url = "http://prod.example"
secret = "prod-secret"
`

describe("Profile", () => {
  it.scoped("picks -p, then BUILDOMAT_PROFILE, then default_profile, then \"default\"", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "credentials.toml")
      fs.writeFileSync(file, FILE)
      const env = { BUILDOMAT_CONFIG: file }

      const fromFlag = yield* load({ ...env, BUILDOMAT_PROFILE: "default" }, "prod")
      assert.strictEqual(fromFlag.name, "prod")
      assert.strictEqual(fromFlag.url, "http://prod.example")
      assert.strictEqual(fromFlag.source, file)

      const fromEnv = yield* load({ ...env, BUILDOMAT_PROFILE: "default" })
      assert.strictEqual(fromEnv.name, "default")
      assert.strictEqual(fromEnv.secret, "default-secret")

      const fromDefault = yield* load(env)
      assert.strictEqual(fromDefault.name, "staging")
      assert.strictEqual(fromDefault.admin_token, "staging-admin")
      assert.strictEqual(Profile.adminToken(fromDefault), "staging-admin")

      fs.writeFileSync(file, FILE.replace(`default_profile = "staging"`, ""))
      const fallback = yield* load(env)
      assert.strictEqual(fallback.name, "default")
      assert.strictEqual(fallback.url, "http://default.example")
      // No admin token: admin commands use the user token.
      assert.strictEqual(Profile.adminToken(fallback), "default-secret")
    }))

  it.scoped("finds the file under XDG_CONFIG_HOME, then HOME/.config, and falls back to config.toml", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const xdg = path.join(dir, "xdg", "buildomat")
      fs.mkdirSync(xdg, { recursive: true })
      fs.writeFileSync(path.join(xdg, "credentials.toml"), FILE)
      const a = yield* load({ XDG_CONFIG_HOME: path.join(dir, "xdg"), HOME: path.join(dir, "nohome") })
      assert.strictEqual(a.source, path.join(xdg, "credentials.toml"))

      const home = path.join(dir, "home", ".config", "buildomat")
      fs.mkdirSync(home, { recursive: true })
      fs.writeFileSync(path.join(home, "config.toml"), FILE)
      const b = yield* load({ HOME: path.join(dir, "home") })
      assert.strictEqual(b.source, path.join(home, "config.toml"))
      assert.strictEqual(b.name, "staging")
    }))

  it.scoped("lets the environment override fields, and form a whole profile without a file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "credentials.toml")
      fs.writeFileSync(file, FILE)

      const overridden = yield* load({
        BUILDOMAT_CONFIG: file,
        BUILDOMAT_TOKEN: "env-token",
        INPUT_ADMIN_TOKEN: "input-admin"
      }, "prod")
      assert.strictEqual(overridden.url, "http://prod.example")
      assert.strictEqual(overridden.secret, "env-token")
      assert.strictEqual(overridden.admin_token, "input-admin")

      // BUILDOMAT_* win over INPUT_*.
      const both = yield* load({ BUILDOMAT_CONFIG: file, BUILDOMAT_URL: "http://b", INPUT_URL: "http://i" }, "prod")
      assert.strictEqual(both.url, "http://b")

      // INPUT_URL + INPUT_SECRET: the whole profile; the (missing, or broken) file is not read.
      const missing = path.join(dir, "nope.toml")
      const input = yield* load({ BUILDOMAT_CONFIG: missing, INPUT_URL: "http://ci", INPUT_SECRET: "ci-secret" })
      assert.deepStrictEqual(input, { name: "environment", url: "http://ci", secret: "ci-secret", source: "environment" })

      fs.writeFileSync(file, "this is = not [ toml")
      const env = yield* load({
        BUILDOMAT_CONFIG: file,
        BUILDOMAT_URL: "http://env",
        BUILDOMAT_TOKEN: "t",
        BUILDOMAT_ADMIN_TOKEN: "a"
      })
      assert.strictEqual(env.url, "http://env")
      assert.strictEqual(Profile.adminToken(env), "a")

      // Empty variables count as unset.
      const empty = yield* load({ BUILDOMAT_CONFIG: path.join(dir, "nope.toml"), INPUT_URL: "", INPUT_SECRET: "" }).pipe(
        Effect.flip
      )
      assert.include(empty.message, "no buildomat credentials")
    }))

  it.scoped("rejects unknown keys, naming the key and the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "credentials.toml")
      fs.writeFileSync(file, `colour = "blue"\n${FILE}\n[profile.extra]\nurl = "x"\nsecret = "y"\ntoken = "z"\n`)
      const e = yield* failure(load({ BUILDOMAT_CONFIG: file }))
      assert.strictEqual(e._tag, "ProfileError")
      assert.include(e.message, file)
      assert.include(e.message, `unknown key "colour"`)
      assert.include(e.message, `unknown key "profile.extra.token"`)
      assert.strictEqual(e.message, `${file}: unknown key "colour"; unknown key "profile.extra.token"`)
    }))

  it.scoped("reports missing keys, bad types and TOML syntax errors with the file name", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "credentials.toml")
      fs.writeFileSync(file, `[profile.default]\nurl = 7\n`)
      const e1 = yield* failure(load({ BUILDOMAT_CONFIG: file }))
      assert.include(e1.message, file)
      assert.include(e1.message, `missing key "profile.default.secret"`)
      assert.include(e1.message, `"profile.default.url"`)

      fs.writeFileSync(file, `[profile.default\nurl = "x"\n`)
      const e2 = yield* failure(load({ BUILDOMAT_CONFIG: file }))
      assert.include(e2.message, `${file}: invalid TOML`)
    }))

  it.scoped("says which file it looked for and which variables work when nothing is configured", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const e = yield* failure(load({ HOME: dir }))
      const expected = path.join(dir, ".config", "buildomat", "credentials.toml")
      assert.include(e.message, expected)
      assert.include(e.message, "BUILDOMAT_URL and BUILDOMAT_TOKEN")
      assert.include(e.message, "INPUT_URL and INPUT_SECRET")
    }))

  it.scoped("names the profile, where its name came from, and the profiles that exist", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "credentials.toml")
      fs.writeFileSync(file, FILE)
      const e = yield* failure(load({ BUILDOMAT_CONFIG: file }, "qa"))
      assert.include(e.message, `profile "qa" (from -p argument) not found in ${file}`)
      assert.include(e.message, "default, staging, prod")
      const e2 = yield* failure(load({ BUILDOMAT_CONFIG: file, BUILDOMAT_PROFILE: "x" }))
      assert.include(e2.message, "BUILDOMAT_PROFILE")
    }))
})
