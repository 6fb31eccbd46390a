/**
 * The server's `tracing` option: by default the server makes no spans (Effect's default tracer
 * would keep them nowhere, at a cost on every request); with `tracing: true` the tracer an
 * embedder provides sees a span per request and per SQL statement.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Tracer } from "effect"
import * as Testing from "../src/server/Testing.js"
import { ADMIN, tempDir } from "./harness.js"

/** A tracer that records the name of every span it is asked for, then makes it as usual. */
const recording = Effect.gen(function*() {
  const names: Array<string> = []
  const inner = yield* Effect.tracer
  const tracer = Tracer.make({
    span: (name, ...rest) => {
      names.push(name)
      return inner.span(name, ...rest)
    },
    context: inner.context
  })
  return { names, layer: Layer.setTracer(tracer) }
})

const serveWith = (tracing: boolean | undefined) =>
  Effect.gen(function*() {
    const dir = yield* tempDir()
    const { names, layer } = yield* recording
    const { layer: provider } = yield* Testing.manualProvider({ limit: 1 })
    const url = yield* Testing.serve(
      { dataDir: dir, adminToken: ADMIN, ...(tracing === undefined ? {} : { tracing }) },
      Layer.merge(provider, layer)
    )
    const res = yield* Effect.promise(() =>
      fetch(`${url}/0/users`, { headers: { authorization: `Bearer ${ADMIN}` } })
    )
    assert.strictEqual(res.status, 200)
    return names
  })

describe("Tracing", () => {
  it.scopedLive("by default the server makes no spans, even with a tracer provided", () =>
    Effect.gen(function*() {
      const names = yield* serveWith(undefined)
      assert.deepStrictEqual(names.filter((n) => n.startsWith("http.server") || n.startsWith("sql.")), [])
    }))

  it.scopedLive("with tracing: true, the provided tracer sees the request and its SQL statements", () =>
    Effect.gen(function*() {
      const names = yield* serveWith(true)
      assert.ok(names.some((n) => n.startsWith("http.server GET")), JSON.stringify(names.slice(0, 20)))
      assert.ok(names.some((n) => n.startsWith("sql.")), JSON.stringify(names.slice(0, 20)))
    }))
})
