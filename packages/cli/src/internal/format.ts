import Table from "cli-table3"
import { Console, Effect, Either } from "effect"

/**
 * Parses `KEY=VALUE` pairs (`-e`, `-T`): split at the first `=`, so values may contain `=`; the
 * key must not be empty. A repeated key keeps the last value. `what` names the option in the
 * error message.
 */
export const parseKeyValues = (
  items: ReadonlyArray<string>,
  what: string
): Either.Either<Record<string, string>, string> => {
  const out: Record<string, string> = {}
  for (const item of items) {
    const at = item.indexOf("=")
    if (at <= 0) return Either.left(`${what} requires KEY=VALUE, got ${JSON.stringify(item)}`)
    out[item.slice(0, at)] = item.slice(at + 1)
  }
  return Either.right(out)
}

/** Age as buildomat shows it: the largest whole unit, `42s`, `5m`, `3h`, `12d`. */
export const formatAge = (ms: number): string => {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m`
  if (s < 86400) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86400)}d`
}

/** A byte count for people: `512B`, `1.5KiB`, `20.0MiB`. */
export const formatBytes = (n: number): string => {
  if (n < 1024) return `${n}B`
  const units = ["KiB", "MiB", "GiB", "TiB"]
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)}${units[i]}`
}

/** The one-letter state of `job list`: upper case for terminal states, lower case otherwise. */
export const stateLetter = (state: string, cancelled: boolean): string => {
  if (state === "failed" && cancelled) return "X"
  switch (state) {
    case "failed":
      return "F"
    case "completed":
      return "C"
    case "running":
      return "r"
    case "waiting":
      return "w"
    case "queued":
      return "q"
    default:
      return "?"
  }
}

/** The state as people read it: a cancelled job is `cancelled`, not `failed`. */
export const displayState = (state: string, cancelled: boolean): string =>
  state === "failed" && cancelled ? "cancelled" : state

/**
 * A borderless table in buildomat's style: upper-case headings, columns separated by two
 * spaces, no colours (so that output piped to a file stays plain).
 */
export const table = (headings: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const t = new Table({
    head: headings.map((h) => h.toUpperCase()),
    chars: {
      top: "",
      "top-mid": "",
      "top-left": "",
      "top-right": "",
      bottom: "",
      "bottom-mid": "",
      "bottom-left": "",
      "bottom-right": "",
      left: "",
      "left-mid": "",
      mid: "",
      "mid-mid": "",
      right: "",
      "right-mid": "",
      middle: "  "
    },
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true }
  })
  for (const row of rows) t.push([...row])
  return t.toString().split("\n").map((l) => l.trimEnd()).join("\n")
}

/** Prints a table on stdout. */
export const printTable = (headings: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  Console.log(table(headings, rows))

/** Prints a value as JSON on stdout (two-space indentation, as `jq` would). */
export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** Prints a line on stdout. */
export const out = (line: string) => Console.log(line)

/** Prints a line on stderr. */
export const err = (line: string) => Console.error(line)

/** The current time in milliseconds; a function so that tests can compare against it. */
export const now = Effect.sync(() => Date.now())
