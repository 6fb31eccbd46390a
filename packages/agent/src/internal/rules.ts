/**
 * Finding a job's outputs (buildomat §3.6, steps 1–2 and 4). Each rule other than `!` is a glob
 * expanded on the filesystem, in rule order, where `*` and `?` never cross `/` and `**` spans any
 * number of directories. The files found are deduplicated, filtered through the `!` rules, and
 * kept only if they are regular files (following symlinks). `!` rules use plain pattern matching,
 * where `*` *can* cross `/`: `!/work/*.log` also drops `/work/a/b.log` (buildomat's behaviour).
 *
 * @internal
 */
import type { OutputRules } from "@buildomat/core"
import * as fs from "node:fs/promises"
import { Effect } from "effect"
import picomatch from "picomatch"
import { glob } from "tinyglobby"
import * as Root from "./root.js"

/** A file to upload. */
export interface Found {
  /** The path the job sees, reported to the server (`/work/out.tgz`). */
  readonly path: string
  /** Where it really is (under the root). */
  readonly real: string
  /** Its size when found, in bytes. */
  readonly size: number
  /** A `%` rule found it: a change of size, or its disappearance, is only a warning. */
  readonly relaxed: boolean
  /** Indexes (in the rule list) of the `=` rules that found it. */
  readonly required: ReadonlyArray<number>
}

/** The files found, in discovery order, and the problems met (each fails the job). */
export interface Scan {
  readonly files: ReadonlyArray<Found>
  readonly errors: ReadonlyArray<string>
}

// Plain globs, as Rust's `glob` crate has them: no braces, no extended globs.
const globOptions = { dot: true, braceExpansion: false, extglob: false, expandDirectories: false } as const

const matcher = (pattern: string) =>
  picomatch(pattern, { bash: true, dot: true, nobrace: true, noextglob: true })

/** Expands the rules under `root` (the real directory the job's `/` maps to). */
export const scan = (rules: ReadonlyArray<OutputRules.OutputRule>, root: string): Effect.Effect<Scan> =>
  Effect.gen(function*() {
    const errors: Array<string> = []
    const ignores = rules.filter((r) => r.ignore).map((r) => matcher(Root.normalise(r.rule)))
    const candidates = new Map<string, { relaxed: boolean; required: Array<number> }>()

    for (const [index, rule] of rules.entries()) {
      if (rule.ignore) continue
      if (!rule.rule.startsWith("/") || rule.rule.split("/").includes("..")) {
        errors.push(`output rule ${JSON.stringify(rule.rule)} is invalid: it must be an absolute path without ".."`)
        continue
      }
      const pattern = rule.rule.replace(/^\/+/, "")
      if (pattern === "") continue
      const matches = yield* Effect.tryPromise(() =>
        glob(pattern, { ...globOptions, cwd: root, onlyFiles: false, followSymbolicLinks: true })
      ).pipe(Effect.either)
      if (matches._tag === "Left") {
        errors.push(`output rule ${JSON.stringify(rule.rule)}: ${String(matches.left.error)}`)
        continue
      }
      for (const match of [...matches.right].sort()) {
        const jobPath = "/" + match.replace(/\/+$/, "")
        if (ignores.some((ignored) => ignored(jobPath))) continue
        let entry = candidates.get(jobPath)
        if (entry === undefined) {
          entry = { relaxed: false, required: [] }
          candidates.set(jobPath, entry)
        }
        if (rule.size_change_ok) entry.relaxed = true
        if (rule.require_match) entry.required.push(index)
      }
    }

    const files: Array<Found> = []
    for (const [jobPath, entry] of candidates) {
      const real = Root.toReal(root, jobPath)
      const stat = yield* Effect.tryPromise(() => fs.stat(real)).pipe(Effect.either)
      if (stat._tag === "Left") {
        // Gone since the walk, or a dangling symlink: not a file to upload.
        const code = (stat.left.error as NodeJS.ErrnoException | undefined)?.code
        if (code !== "ENOENT" && code !== "ENOTDIR") errors.push(`could not stat ${jobPath}: ${String(stat.left.error)}`)
        continue
      }
      if (!stat.right.isFile()) continue
      files.push({ path: jobPath, real, size: stat.right.size, ...entry })
    }
    return { files, errors }
  })

/**
 * The error for each `=` rule that no uploaded file satisfied, given the indexes of the rules
 * that were satisfied.
 */
export const unusedRequired = (
  rules: ReadonlyArray<OutputRules.OutputRule>,
  used: ReadonlySet<number>
): ReadonlyArray<string> =>
  rules.flatMap((rule, index) =>
    rule.require_match && !used.has(index) ? [`rule ${JSON.stringify(rule.rule)} required a match, but was not used`] : []
  )
