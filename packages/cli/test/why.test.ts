/**
 * `buildomat job show` says why a job is not running yet (`GET /ext/0/jobs/{job}/why`), against
 * the real server (SQLite in a temp dir, loopback HTTP) with a provider that never boots its
 * machines, so that jobs stay queued.
 */
import { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FiberRef, Layer, LogLevel } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { runCli } from "./support/run.js"

const ADMIN = "why-cli-admin-token-0123456789"

describe("buildomat job show: why a job waits", () => {
  it.scopedLive("no provider, inputs, limit and booting; nothing once the job is over", () =>
    Effect.gen(function*() {
      yield* Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Error)
      const dir = yield* Testing.tempDirectory("buildomat-cli-why-")
      const live = new Map<string, string>()
      const provider: WorkerProvider.WorkerProvider = {
        name: "slow",
        targets: ["default"],
        limit: 1,
        create: (req) => Effect.sync(() => (live.set(`m-${req.worker}`, req.worker), { instanceId: `m-${req.worker}`, worker: req.worker })),
        destroy: (id) => Effect.sync(() => void live.delete(id)),
        list: Effect.sync(() => [...live].map(([instanceId, worker]) => ({ instanceId, worker })))
      }
      const url = yield* Testing.serve(
        { dataDir: path.join(dir, "data"), adminToken: ADMIN },
        Layer.succeed(WorkerProvider.WorkerProviders, [provider])
      )
      const admin = yield* Testing.client(url, ADMIN)
      yield* admin.api.targets.create({ payload: { name: "nobody", desc: "served by no one" } })
      const { c, user } = yield* Testing.userClient(url, ADMIN, "alice")
      const config = path.join(dir, "credentials.toml")
      fs.writeFileSync(config, `[profile.default]\nurl = "${url}"\nsecret = "${user.token}"\n`)
      const show = (id: string) =>
        Effect.tap(runCli(["job", "show", id], { BUILDOMAT_CONFIG: config, HOME: dir }), (r) =>
          Effect.sync(() => assert.strictEqual(r.code, 0, r.stderr)))
      const task = [{ name: "t", script: "true", env_clear: false, env: {} }]

      const { id: orphan } = yield* c.api.jobs.submit({ payload: { name: "o", target: "nobody", output_rules: [], tasks: task } })
      const o = yield* show(orphan)
      assert.include(o.stdout, "state:    queued (place 1 in the queue of its target)\nwaiting:  [no_provider] no provider or factory serves target nobody\n")

      const { id: inputs } = yield* c.api.jobs.submit({ payload: { name: "i", target: "default", output_rules: [], tasks: task, inputs: ["src.tgz"] } })
      const i = yield* show(inputs)
      assert.include(i.stdout, "state:    waiting\nwaiting:  [waiting_inputs] waiting for 1 input to be uploaded: src.tgz\n")

      const { id: first } = yield* c.api.jobs.submit({ payload: { name: "1", target: "default", output_rules: [], tasks: task } })
      const { id: second } = yield* c.api.jobs.submit({ payload: { name: "2", target: "default", output_rules: [], tasks: task } })
      let s1 = yield* show(first)
      for (let n = 0; n < 100 && !s1.stdout.includes("[booting]"); n++) {
        yield* Effect.sleep("20 millis")
        s1 = yield* show(first)
      }
      assert.match(s1.stdout, /^waiting: {2}\[booting\] 1 worker is booting for target default \(\S+ of factory slow, made .* ago\); factory slow holds a lease on it; the job takes the first that is up$/m)
      const s2 = yield* show(second)
      assert.include(s2.stdout, "state:    queued (place 2 in the queue of its target)\n")
      assert.include(s2.stdout, "waiting:  [limit] the limit is reached: slow has 1 of 1 workers; the job waits for a worker to finish\n")
      assert.match(s2.stdout, /^ {10}\[booting\] 1 worker is booting/m)

      // Once over, no reasons.
      yield* c.api.jobs.cancel({ path: { job: orphan as any } })
      let done = yield* show(orphan)
      for (let n = 0; n < 100 && !done.stdout.includes("state:    cancelled"); n++) {
        yield* Effect.sleep("20 millis")
        done = yield* show(orphan)
      }
      assert.include(done.stdout, "state:    cancelled\n")
      assert.notInclude(done.stdout, "waiting:")
    }))
})
