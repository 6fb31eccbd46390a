import { OutputRules } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"

const ok = (s: string) => Either.getOrThrow(OutputRules.parse(s))
const err = (s: string) => Either.flip(OutputRules.parse(s)).pipe(Either.getOrThrow)

describe("OutputRules", () => {
  it("parses buildomat's sigils", () => {
    assert.deepStrictEqual(ok("/work/*.tgz"), { rule: "/work/*.tgz", ignore: false, require_match: false, size_change_ok: false })
    assert.deepStrictEqual(ok("!/work/tmp/**"), { rule: "/work/tmp/**", ignore: true, require_match: false, size_change_ok: false })
    assert.deepStrictEqual(ok("=%/out/log"), { rule: "/out/log", ignore: false, require_match: true, size_change_ok: true })
    assert.deepStrictEqual(ok("%=/out/log"), ok("=%/out/log"))
  })

  it("renders sigils back in buildomat's order", () => {
    assert.strictEqual(OutputRules.render(ok("=%/out/log")), "%=/out/log")
    assert.strictEqual(OutputRules.render(ok("!/a")), "!/a")
  })

  it("refuses what buildomat refuses, saying why", () => {
    assert.match(err("work/*.tgz"), /absolute/)
    assert.match(err("!=/a"), /cannot be combined/)
    assert.match(err("==/a"), /repeated/)
    assert.match(err(""), /absolute/)
  })
})
