import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { splitLines } from "../src/internal/lines.js"

const enc = (s: string) => new TextEncoder().encode(s)
const lines = (...chunks: Array<Uint8Array>) =>
  Stream.fromIterable(chunks).pipe(splitLines, Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

describe("splitLines", () => {
  it.effect("splits on newlines across chunk boundaries and keeps a final unterminated line", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* lines(enc("one\ntw"), enc("o\n\nthr"), enc("ee")), ["one", "two", "", "three"])
    }))

  it.effect("trims trailing whitespace, including \\r, but not leading whitespace", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* lines(enc("  indented  \t\r\nwin\r\n")), ["  indented", "win"])
    }))

  it.effect("decodes a multi-byte character split between chunks, and replaces invalid bytes", () =>
    Effect.gen(function*() {
      const euro = enc("€\n") // e2 82 ac 0a
      const out = yield* lines(euro.subarray(0, 1), euro.subarray(1), Uint8Array.of(0x61, 0xff, 0x62, 0x0a))
      assert.deepStrictEqual(out, ["€", "a\uFFFDb"])
    }))

  it.effect("emits nothing for empty input", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* lines(), [])
    }))
})
