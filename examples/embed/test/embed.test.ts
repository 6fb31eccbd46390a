import { Config, Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as NodePath from "node:path"
import { layer, report } from "../src/main.js"

describe("examples/embed", () => {
  it.scopedLive("runs a job on its second target and reports its end", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory()
      const ctx = yield* Layer.build(layer({ dataDir: NodePath.join(dir, "data"), adminToken: "embed-admin-token", port: 0 }))
      const url = Context.get(ctx, Config.ServerUrl)
      const { c, user } = yield* Testing.userClient(url, "embed-admin-token", "embedder")
      const { id } = yield* c.api.jobs.submit({
        payload: { name: "on linux", target: "linux", output_rules: [], tasks: [{ name: "t", script: "uname -s", env_clear: false, env: {} }] }
      })
      assert.strictEqual(yield* report(url, user.token, id), "completed")
      const events = yield* c.allEvents(id)
      assert.isTrue(events.some((e) => e.stream === "stdout" && e.payload === "Linux"))
    }))
})
