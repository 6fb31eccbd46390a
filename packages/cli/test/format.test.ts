import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { formatAge, formatBytes, parseKeyValues, stateLetter, table } from "../src/internal/format.js"

describe("parseKeyValues", () => {
  it("splits at the first '=' and keeps the rest of the value", () => {
    assert.deepStrictEqual(
      parseKeyValues(["A=1", "B=x=y", "EMPTY=", "A=2"], "--env (-e)"),
      Either.right({ A: "2", B: "x=y", EMPTY: "" })
    )
  })

  it("rejects an item without '=' or with an empty key, naming the option", () => {
    assert.deepStrictEqual(
      parseKeyValues(["A=1", "oops"], "--env (-e)"),
      Either.left(`--env (-e) requires KEY=VALUE, got "oops"`)
    )
    assert.deepStrictEqual(parseKeyValues(["=v"], "--tag (-T)"), Either.left(`--tag (-T) requires KEY=VALUE, got "=v"`))
  })
})

describe("formatting", () => {
  it("shows ages in the largest whole unit", () => {
    assert.strictEqual(formatAge(-5), "0s")
    assert.strictEqual(formatAge(59_999), "59s")
    assert.strictEqual(formatAge(60_000), "1m")
    assert.strictEqual(formatAge(3 * 3600_000 + 5), "3h")
    assert.strictEqual(formatAge(49 * 3600_000), "2d")
  })

  it("shows sizes for people", () => {
    assert.strictEqual(formatBytes(0), "0B")
    assert.strictEqual(formatBytes(1536), "1.5KiB")
    assert.strictEqual(formatBytes(20 * 1024 * 1024), "20.0MiB")
  })

  it("gives the state letters of `job list`", () => {
    assert.deepStrictEqual(
      [
        stateLetter("failed", false),
        stateLetter("completed", false),
        stateLetter("running", false),
        stateLetter("waiting", false),
        stateLetter("queued", false),
        stateLetter("failed", true),
        stateLetter("weird", false)
      ],
      ["F", "C", "r", "w", "q", "X", "?"]
    )
  })

  it("renders a plain borderless table with upper-case headings", () => {
    assert.strictEqual(
      table(["id", "name"], [["1", "alpha"], ["22", "b"]]),
      ["ID  NAME", "1   alpha", "22  b"].join("\n")
    )
  })
})
