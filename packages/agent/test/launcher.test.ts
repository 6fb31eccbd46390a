/**
 * `buildomat-agent-cached` (the built launcher, `npm run build`): the agent bundle run through a
 * V8 code cache, as the local provider starts it.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const LAUNCHER = fileURLToPath(new URL("../bundle/buildomat-agent-cached.cjs", import.meta.url))

const help = (cacheDir: string | undefined) =>
  execFileSync(process.execPath, [LAUNCHER, "--help"], {
    encoding: "utf8",
    env: { PATH: process.env["PATH"] ?? "", ...(cacheDir !== undefined ? { BUILDOMAT_AGENT_CODE_CACHE: cacheDir } : {}) }
  })

const cacheFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".v8cache")) : [])

describe("the code-cached launcher", () => {
  it("writes a cache on the first run, uses it after, and survives a corrupt one", () => {
    assert.isTrue(fs.existsSync(LAUNCHER), `${LAUNCHER} is missing: run \`npm run build\``)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-code-cache-"))
    try {
      const cacheDir = path.join(dir, "cache")
      const first = help(cacheDir)
      assert.match(first, /^Usage: buildomat-agent run --url URL/)
      const files = cacheFiles(cacheDir)
      assert.strictEqual(files.length, 1)
      const file = path.join(cacheDir, files[0]!)
      assert.isAbove(fs.statSync(file).size, 100_000)
      assert.strictEqual(fs.statSync(cacheDir).mode & 0o777, 0o700)

      // Accepted: the same output, and the cache is not rewritten.
      const before = fs.statSync(file).mtimeMs
      assert.strictEqual(help(cacheDir), first)
      assert.strictEqual(fs.statSync(file).mtimeMs, before)

      // Rejected by V8: compiled as usual, and replaced by a good cache.
      fs.writeFileSync(file, "not a code cache")
      assert.strictEqual(help(cacheDir), first)
      assert.isAbove(fs.statSync(file).size, 100_000)
      assert.deepStrictEqual(cacheFiles(cacheDir), files)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("runs the bundle plainly without BUILDOMAT_AGENT_CODE_CACHE", () => {
    const out = help(undefined)
    assert.match(out, /^Usage: buildomat-agent run --url URL/)
  })
})
