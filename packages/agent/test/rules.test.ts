import { OutputRules } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Rules from "../src/internal/rules.js"

const rules = (...texts: Array<string>) => texts.map((t) => Either.getOrThrow(OutputRules.parse(t)))

/** A root holding `files` (path → contents), created for the test and removed after it. */
const rootWith = (files: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), "agent-rules-"))
      for (const [p, contents] of Object.entries(files)) {
        await fs.mkdir(path.dirname(path.join(root, p)), { recursive: true })
        await fs.writeFile(path.join(root, p), contents)
      }
      return root
    }),
    (root) => Effect.promise(() => fs.rm(root, { recursive: true, force: true }))
  )

const paths = (scan: Rules.Scan) => scan.files.map((f) => f.path)

describe("output rules", () => {
  it.scopedLive("`*` stays within one directory, `**` spans any depth; paths are job-visible", () =>
    Effect.gen(function*() {
      const root = yield* rootWith({
        "out/a.txt": "a",
        "out/.hidden.txt": "h",
        "out/sub/b.txt": "bb",
        "out/sub/deeper/c.txt": "ccc",
        "out/d.log": "d"
      })
      const star = yield* Rules.scan(rules("/out/*.txt"), root)
      assert.deepStrictEqual(paths(star), ["/out/.hidden.txt", "/out/a.txt"])
      const globstar = yield* Rules.scan(rules("/out/**/*.txt"), root)
      assert.deepStrictEqual(
        [...paths(globstar)].sort(),
        ["/out/.hidden.txt", "/out/a.txt", "/out/sub/b.txt", "/out/sub/deeper/c.txt"]
      )
      const c = globstar.files.find((f) => f.path === "/out/sub/deeper/c.txt")!
      assert.strictEqual(c.size, 3)
      assert.strictEqual(c.real, path.join(root, "out/sub/deeper/c.txt"))
      assert.deepStrictEqual(globstar.errors, [])
    }))

  it.scopedLive("`!` rules drop matches, and their `*` crosses `/` (as buildomat's)", () =>
    Effect.gen(function*() {
      const root = yield* rootWith({ "out/keep.bin": "", "out/x.tmp": "", "out/sub/y.tmp": "", "out/sub/z.bin": "" })
      const scan = yield* Rules.scan(rules("/out/**", "!/out/*.tmp"), root)
      assert.deepStrictEqual([...paths(scan)].sort(), ["/out/keep.bin", "/out/sub/z.bin"])
    }))

  it.scopedLive("keeps regular files only, following symlinks, and lists each file once", () =>
    Effect.gen(function*() {
      const root = yield* rootWith({ "out/file": "12345", "out/dir/inner": "" })
      yield* Effect.promise(() => fs.symlink("file", path.join(root, "out/link")))
      yield* Effect.promise(() => fs.symlink("missing", path.join(root, "out/dangling")))
      execFileSync("mkfifo", [path.join(root, "out/fifo")])
      const scan = yield* Rules.scan(rules("/out/*", "%/out/f*"), root)
      assert.deepStrictEqual(paths(scan), ["/out/file", "/out/link"])
      assert.strictEqual(scan.files[1]!.size, 5, "the size is the target's")
      assert.isTrue(scan.files[0]!.relaxed, "found again by a % rule")
      assert.isFalse(scan.files[1]!.relaxed)
    }))

  it.scopedLive("a `=` rule that finds nothing is reported; one that finds a file is satisfied", () =>
    Effect.gen(function*() {
      const root = yield* rootWith({ "out/a.tgz": "x", "out/skip.tgz": "y" })
      const list = rules("=/out/*.tgz", "=/out/*.zip", "=/out/skip.*", "!/out/skip.tgz")
      const scan = yield* Rules.scan(list, root)
      assert.deepStrictEqual(paths(scan), ["/out/a.tgz"])
      const used = new Set(scan.files.flatMap((f) => f.required))
      assert.deepStrictEqual(Rules.unusedRequired(list, used), [
        "rule \"/out/*.zip\" required a match, but was not used",
        "rule \"/out/skip.*\" required a match, but was not used"
      ])
      assert.deepStrictEqual(Rules.unusedRequired(list, new Set()).length, 3)
    }))

  it.scopedLive("never looks outside the root", () =>
    Effect.gen(function*() {
      const root = yield* rootWith({ "a": "" })
      const scan = yield* Rules.scan(rules("/../*"), root)
      assert.deepStrictEqual(paths(scan), [])
      assert.match(scan.errors[0]!, /without "\.\."/)
    }))
})
