/**
 * Output rules: which files a job keeps. buildomat's grammar is
 * `[ '!' | '=' | '%' | '=%' | '%=' ] '/' pattern`: `!` ignores matching files (and combines with
 * nothing), `=` requires at least one match or the job fails, `%` tolerates a file whose size
 * changes (or that disappears) while it is uploaded. The pattern is an absolute glob where `*`
 * stays within one path component and `**` spans directories.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import type { WorkerPingOutputRule } from "./Workers.js"

/**
 * A parsed rule, in the shape the agent receives (`WorkerPingOutputRule`).
 *
 * @since 0.1.0
 * @category models
 */
export type OutputRule = WorkerPingOutputRule

/**
 * Parses one rule. Fails with a message saying what is wrong: a repeated or combined `!`
 * sigil, a pattern that is not absolute, an empty pattern.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Either.Either<OutputRule, string> => {
  let ignore = false
  let require_match = false
  let size_change_ok = false
  let i = 0
  for (; i < input.length; i++) {
    const c = input[i]
    if (c === "!") {
      if (ignore) return Either.left(`output rule ${JSON.stringify(input)}: "!" repeated`)
      ignore = true
    } else if (c === "=") {
      if (require_match) return Either.left(`output rule ${JSON.stringify(input)}: "=" repeated`)
      require_match = true
    } else if (c === "%") {
      if (size_change_ok) return Either.left(`output rule ${JSON.stringify(input)}: "%" repeated`)
      size_change_ok = true
    } else {
      break
    }
  }
  const rule = input.slice(i)
  if (ignore && (require_match || size_change_ok)) {
    return Either.left(`output rule ${JSON.stringify(input)}: "!" (ignore) cannot be combined with "=" or "%"`)
  }
  if (!rule.startsWith("/")) {
    return Either.left(`output rule ${JSON.stringify(input)}: the pattern must be an absolute path starting with "/"`)
  }
  if (rule.includes("\0")) {
    return Either.left(`output rule ${JSON.stringify(input)}: the pattern must not contain NUL`)
  }
  return Either.right({ rule, ignore, require_match, size_change_ok })
}

/**
 * Renders a rule back with its sigils in buildomat's order (`!`, `%`, `=`), as the job view
 * shows them.
 *
 * @since 0.1.0
 * @category formatting
 */
export const render = (r: OutputRule): string =>
  `${r.ignore ? "!" : ""}${r.size_change_ok ? "%" : ""}${r.require_match ? "=" : ""}${r.rule}`
