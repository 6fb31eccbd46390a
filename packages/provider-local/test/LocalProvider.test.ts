import { WorkerProvider } from "@buildomat/core"
import { LocalProvider } from "@buildomat/provider-local"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, FiberRef, LogLevel, Schema, Scope } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { resolveAgentCommand } from "../src/internal/agentCommand.js"

const FAKE_AGENT = fileURLToPath(new URL("./fixtures/fake-agent.sh", import.meta.url))
const URL_ = "http://127.0.0.1:9979"
const BOOTSTRAP = "bootstrap-secret-0123456789"

/** A temporary directory removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.promises.mkdtemp(path.join(os.tmpdir(), "provider-local-"))),
  (dir) => Effect.promise(() => fs.promises.rm(dir, { recursive: true, force: true }))
)

/**
 * Whether `pid` is a live process. A zombie is dead: once its parent is killed a task is
 * reparented to init, which may reap it some time later.
 */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    assert.strictEqual((error as NodeJS.ErrnoException).code, "ESRCH")
    return false
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return process.platform !== "linux"
  }
}

/** Polls until `f` returns a value (not undefined), for at most `ms`. */
const eventually = <A>(f: () => A | undefined, ms = 10_000): Effect.Effect<A> =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    for (;;) {
      const a = f()
      if (a !== undefined) return a
      if (Date.now() > deadline) return yield* Effect.die(new Error("timed out waiting"))
      yield* Effect.sleep("20 millis")
    }
  })

/** The pids of the fake agent and of its child, once it has written them. */
const pidsOf = (scratch: string, worker: string) =>
  eventually(() => {
    try {
      const [agent, child] = fs.readFileSync(path.join(scratch, worker, "state", "pids"), "utf8").trim().split(" ")
      return { agent: Number(agent), child: Number(child) }
    } catch {
      return undefined
    }
  })

const request = (worker: string, target = "default"): WorkerProvider.CreateWorkerRequest => ({
  worker,
  target,
  url: URL_,
  bootstrap: BOOTSTRAP
})

/** Only warnings and errors from the provider, for the rest of the test. */
const quiet = Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Warning)

/** The workers' scratch directories under `scratch` (not the agents' shared code cache). */
const workerDirs = (scratch: string) => fs.readdirSync(scratch).filter((e) => e !== LocalProvider.PROVIDER_DIR)

/** A provider on a fresh scratch root, running the fake agent; it logs warnings and errors only. */
const setup = (config: Partial<LocalProvider.LocalProviderConfig> = {}) =>
  Effect.gen(function*() {
    yield* quiet
    const scratch = path.join(yield* tempDir, "scratch")
    const provider = yield* LocalProvider.make({
      scratchRoot: scratch,
      agentCommand: ["bash", FAKE_AGENT],
      ...config
    })
    return { scratch, provider }
  })

describe("LocalProvider", () => {
  it.scopedLive("create starts the agent in its own scratch directory with the agent's arguments", () =>
    Effect.gen(function*() {
      process.env.PROVIDER_LOCAL_TEST_SECRET = "server-secret"
      const { provider, scratch } = yield* setup({ env: { EXTRA_FOR_AGENT: "yes" } })
      assert.isTrue(fs.existsSync(scratch), "scratch root created")
      const instance = yield* provider.create(request("01TESTCREATE"))
      const { agent, child } = yield* pidsOf(scratch, "01TESTCREATE")
      const dir = path.join(scratch, "01TESTCREATE")

      assert.deepStrictEqual(instance, { instanceId: `local-${agent}`, worker: "01TESTCREATE", ip: "127.0.0.1" })
      assert.isTrue(alive(agent) && alive(child))
      assert.isTrue(fs.statSync(path.join(dir, "root")).isDirectory())
      assert.deepStrictEqual(
        fs.readFileSync(path.join(dir, "state", "args"), "utf8").trim().split("\n"),
        ["run", "--url", URL_, "--bootstrap", BOOTSTRAP, "--state-dir", path.join(dir, "state"), "--root", path.join(dir, "root")]
      )
      assert.strictEqual(fs.readFileSync(path.join(dir, "state", "cwd"), "utf8").trim(), dir)

      // Its own process group, led by the agent.
      const stat = fs.readFileSync(`/proc/${child}/stat`, "utf8")
      assert.strictEqual(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]), agent)

      // Only `env` and a few harmless variables from the server.
      const env = fs.readFileSync(path.join(dir, "state", "env"), "utf8")
      assert.include(env, "EXTRA_FOR_AGENT=yes\n")
      assert.include(env, `PATH=${process.env.PATH}\n`)
      assert.notInclude(env, "PROVIDER_LOCAL_TEST_SECRET")
      assert.notInclude(env, BOOTSTRAP)

      // stdout and stderr are in agent.log; the bootstrap value is not.
      const log = yield* eventually(() => {
        const text = fs.readFileSync(path.join(dir, "agent.log"), "utf8")
        return text.includes("on stderr") ? text : undefined
      })
      assert.include(log, "fake agent on stdout")
      assert.include(log, "<redacted>")
      assert.notInclude(log, BOOTSTRAP)

      assert.deepStrictEqual(yield* provider.list, [instance])
      delete process.env.PROVIDER_LOCAL_TEST_SECRET
    }))

  it.scopedLive("destroy kills the agent and its tasks, removes the scratch directory, and is idempotent", () =>
    Effect.gen(function*() {
      // A long grace: the agent honours SIGTERM, so destroy must not wait for SIGKILL.
      const { provider, scratch } = yield* setup({ killGraceMs: 30_000 })
      const instance = yield* provider.create(request("01TESTDESTROY"))
      const { agent, child } = yield* pidsOf(scratch, "01TESTDESTROY")
      assert.isTrue(alive(agent) && alive(child))

      yield* provider.destroy(instance.instanceId).pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("destroy waited for SIGKILL") })
      )
      assert.isFalse(alive(agent), "agent killed")
      assert.isFalse(yield* eventually(() => (alive(child) ? undefined : false)), "task killed")
      assert.isFalse(fs.existsSync(path.join(scratch, "01TESTDESTROY")), "scratch directory removed")
      assert.deepStrictEqual(yield* provider.list, [])

      yield* provider.destroy(instance.instanceId)
      yield* provider.destroy("local-999999999")
    }))

  it.scopedLive("concurrent destroys of one instance share one teardown", () =>
    Effect.gen(function*() {
      const { provider, scratch } = yield* setup()
      const instance = yield* provider.create(request("01TESTCONCDESTROY"))
      const { agent } = yield* pidsOf(scratch, "01TESTCONCDESTROY")
      yield* Effect.all([provider.destroy(instance.instanceId), provider.destroy(instance.instanceId)], {
        concurrency: "unbounded"
      })
      assert.isFalse(alive(agent))
      assert.isFalse(fs.existsSync(path.join(scratch, "01TESTCONCDESTROY")))
    }))

  it.scopedLive("an agent that ignores SIGTERM is SIGKILLed after the grace period", () =>
    Effect.gen(function*() {
      const { provider, scratch } = yield* setup({ killGraceMs: 300, env: { FAKE_AGENT_MODE: "ignore-term" } })
      const instance = yield* provider.create(request("01TESTSTUBBORN"))
      const { agent, child } = yield* pidsOf(scratch, "01TESTSTUBBORN")
      const started = Date.now()
      yield* provider.destroy(instance.instanceId)
      assert.isAtLeast(Date.now() - started, 300, "waited for the grace period before SIGKILL")
      assert.isFalse(alive(agent))
      assert.isFalse(yield* eventually(() => (alive(child) ? undefined : false)))
      assert.isFalse(fs.existsSync(path.join(scratch, "01TESTSTUBBORN")))
    }))

  it.scopedLive("an agent that exited by itself stays listed until destroy, which kills its leftover tasks", () =>
    Effect.gen(function*() {
      const { provider, scratch } = yield* setup({ env: { FAKE_AGENT_MODE: "exit" } })
      const instance = yield* provider.create(request("01TESTEXITED"))
      const { agent, child } = yield* pidsOf(scratch, "01TESTEXITED")
      yield* eventually(() => (alive(agent) ? undefined : true))
      assert.isTrue(alive(child), "the task outlived its agent")
      assert.deepStrictEqual(yield* provider.list, [instance])

      yield* provider.destroy(instance.instanceId)
      assert.isFalse(yield* eventually(() => (alive(child) ? undefined : false)))
      assert.isFalse(fs.existsSync(path.join(scratch, "01TESTEXITED")))
      assert.deepStrictEqual(yield* provider.list, [])
    }))

  it.scopedLive("the limit is enforced, also against concurrent creates, and destroy frees a slot", () =>
    Effect.gen(function*() {
      const { provider } = yield* setup({ limit: 2 })
      assert.strictEqual(provider.limit, 2)
      const results = yield* Effect.all(
        ["01TESTLIMA", "01TESTLIMB", "01TESTLIMC"].map((w) => Effect.either(provider.create(request(w)))),
        { concurrency: "unbounded" }
      )
      const failures = results.filter(Either.isLeft).map((e) => e.left)
      assert.strictEqual(failures.length, 1)
      assert.strictEqual(failures[0]!._tag, "ProviderError")
      assert.match(failures[0]!.message, /local provider "local": at its limit of 2 concurrent workers/)
      assert.strictEqual((yield* provider.list).length, 2)

      const first = results.find(Either.isRight)!.right
      yield* provider.destroy(first.instanceId)
      const again = yield* provider.create(request("01TESTLIMD"))
      assert.strictEqual(again.worker, "01TESTLIMD")
    }))

  it.scopedLive("an unserved target, a duplicate worker and an unsafe worker id are refused", () =>
    Effect.gen(function*() {
      const { provider, scratch } = yield* setup({ name: "box", targets: ["linux", "illumos"] })
      assert.deepStrictEqual(provider.targets, ["linux", "illumos"])

      const unserved = yield* Effect.flip(provider.create(request("01TESTTARGET", "windows")))
      assert.strictEqual(unserved.message, `local provider "box": does not serve target "windows" (it serves: linux, illumos)`)
      assert.isFalse(fs.existsSync(path.join(scratch, "01TESTTARGET")))

      yield* provider.create(request("01TESTDUP", "linux"))
      const dup = yield* Effect.flip(provider.create(request("01TESTDUP", "illumos")))
      assert.match(dup.message, /worker 01TESTDUP already has an instance/)

      for (const worker of ["..", "../x", "a/b", "", ".hidden"]) {
        const unsafe = yield* Effect.flip(provider.create(request(worker, "linux")))
        assert.match(unsafe.message, /is not a plain name/)
      }
      assert.strictEqual((yield* provider.list).length, 1)
    }))

  it.scopedLive("an agent command that cannot start fails create and leaves nothing behind", () =>
    Effect.gen(function*() {
      const { provider, scratch } = yield* setup({ limit: 1, agentCommand: ["/nonexistent/buildomat-agent"] })
      const error = yield* Effect.flip(provider.create(request("01TESTNOEXEC")))
      assert.match(error.message, /cannot start agent "\/nonexistent\/buildomat-agent": .*ENOENT/)
      assert.isFalse(fs.existsSync(path.join(scratch, "01TESTNOEXEC")))
      assert.deepStrictEqual(yield* provider.list, [])
      // The slot was released: the limit of 1 still lets the next attempt through to spawn.
      const again = yield* Effect.flip(provider.create(request("01TESTNOEXEC2")))
      assert.notMatch(again.message, /limit/)
    }))

  it.scopedLive("closing the scope destroys every instance and refuses new ones", () =>
    Effect.gen(function*() {
      yield* quiet
      const scratch = path.join(yield* tempDir, "scratch")
      const scope = yield* Scope.make()
      const provider = yield* LocalProvider.make({ scratchRoot: scratch, agentCommand: ["bash", FAKE_AGENT] }).pipe(
        Scope.extend(scope)
      )
      yield* provider.create(request("01TESTSCOPEA"))
      yield* provider.create(request("01TESTSCOPEB"))
      const pids = [...Object.values(yield* pidsOf(scratch, "01TESTSCOPEA")), ...Object.values(yield* pidsOf(scratch, "01TESTSCOPEB"))]
      assert.isTrue(pids.every(alive))

      yield* Scope.close(scope, Exit.void)
      assert.isTrue(yield* eventually(() => (pids.some(alive) ? undefined : true)))
      assert.deepStrictEqual(workerDirs(scratch), [])
      assert.deepStrictEqual(yield* provider.list, [])
      const refused = yield* Effect.flip(provider.create(request("01TESTSCOPEC")))
      assert.match(refused.message, /shut down/)
    }))

  it.scopedLive("layer provides WorkerProviders holding the provider", () =>
    Effect.gen(function*() {
      const scratch = path.join(yield* tempDir, "scratch")
      const providers = yield* WorkerProvider.WorkerProviders.pipe(
        Effect.provide(LocalProvider.layer({ name: "here", scratchRoot: scratch, agentCommand: ["bash", FAKE_AGENT] }))
      )
      assert.deepStrictEqual(providers.map((p) => [p.name, p.targets, p.limit]), [["here", ["default"], 4]])
    }))
})

describe("LocalProvider targets", () => {
  it.scopedLive("per-target limits, warm pools and scratch roots; the policies the reconcile loop reads", () =>
    Effect.gen(function*() {
      const other = path.join(yield* tempDir, "other")
      const { provider, scratch } = yield* setup({
        limit: 3,
        warm: 1,
        targets: { small: { limit: 1 }, big: { warm: 2, scratchRoot: other } }
      })
      assert.deepStrictEqual(provider.targets, ["small", "big"])
      assert.deepStrictEqual(provider.policies, { small: { limit: 1, warm: 1 }, big: { limit: 3, warm: 2 } })
      yield* provider.create(request("01SMALL1", "small"))
      const refused = yield* Effect.flip(provider.create(request("01SMALL2", "small")))
      assert.strictEqual(
        refused.message,
        `local provider "local": at its limit of 1 concurrent workers for target "small"; destroy one first`
      )
      yield* provider.create(request("01BIG1", "big"))
      assert.isTrue(fs.existsSync(path.join(scratch, "01SMALL1", "state")))
      assert.isTrue(fs.existsSync(path.join(other, "01BIG1", "state")), "big's workers are under its own scratch root")
      yield* provider.create(request("01BIG2", "big"))
      const full = yield* Effect.flip(provider.create(request("01BIG3", "big")))
      assert.match(full.message, /at its limit of 3 concurrent workers; destroy one first$/)
    }))

  it.scopedLive("a warm pool larger than its target's limit is refused", () =>
    Effect.gen(function*() {
      const scratch = path.join(yield* tempDir, "scratch")
      const error = yield* Effect.flip(
        LocalProvider.make({ scratchRoot: scratch, limit: 4, targets: { t: { limit: 2, warm: 3 } }, agentCommand: ["true"] })
      )
      assert.strictEqual(error.message, `local provider "local": target "t": warm (3) is more than its limit (2)`)
    }))

  it.scopedLive("user: agents run as that user (the server runs as root), or make says why it cannot", () =>
    Effect.gen(function*() {
      const uid = process.getuid?.()
      const notRoot = LocalProvider.resolveRunAs("nobody", 1000)
      assert.deepStrictEqual(
        notRoot,
        Either.left(
          `user = "nobody" needs the server (or factory process) to run as root to start agents as another user; it runs as uid 1000. Remove "user" or run it as root`
        )
      )
      assert.deepStrictEqual(LocalProvider.resolveRunAs("1234:5678", 0), Either.right({ uid: 1234, gid: 5678, name: "1234:5678" }))
      assert.deepStrictEqual(
        LocalProvider.resolveRunAs("no-such-user-here", 0),
        Either.left(`user "no-such-user-here" does not exist on this machine`)
      )
      const base = yield* tempDir
      if (uid !== 0) {
        const error = yield* Effect.flip(
          LocalProvider.make({ scratchRoot: path.join(base, "s"), targets: { t: { user: "nobody" } }, agentCommand: ["true"] })
        )
        assert.match(error.message, /^local provider "local": target "t": user = "nobody" needs the server .* to run as root/)
        return
      }
      // Root: a scratch root the user cannot reach is refused, naming the directory in the way.
      const hidden = yield* Effect.flip(
        LocalProvider.make({ scratchRoot: path.join(base, "s"), user: "nobody", agentCommand: ["true"] })
      )
      assert.strictEqual(
        hidden.message,
        `local provider "local": target "default": user "nobody" cannot reach ${path.join(base, "s")}: no search permission on ${base}; choose a scratch_root it can reach`
      )
      fs.chmodSync(base, 0o755)
      const { provider, scratch } = yield* Effect.gen(function*() {
        yield* quiet
        const scratch = path.join(base, "s")
        return {
          scratch,
          provider: yield* LocalProvider.make({ scratchRoot: scratch, targets: { default: { user: "nobody" } }, agentCommand: ["bash", FAKE_AGENT] })
        }
      })
      yield* provider.create(request("01RUNAS"))
      const { agent, child } = yield* pidsOf(scratch, "01RUNAS")
      const uidOf = (pid: number) => fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m)![1]
      const nobody = execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim()
      assert.strictEqual(uidOf(agent), nobody)
      assert.strictEqual(uidOf(child), nobody, "its tasks too")
      assert.strictEqual(String(fs.statSync(path.join(scratch, "01RUNAS", "state")).uid), nobody)
      const env = fs.readFileSync(path.join(scratch, "01RUNAS", "state", "env"), "utf8")
      assert.include(env, "USER=nobody\n")
      assert.include(env, `HOME=${path.join(scratch, "01RUNAS")}\n`)
      yield* provider.destroy(`local-${agent}`)
      assert.isFalse(alive(agent) || alive(child))
      assert.isFalse(fs.existsSync(path.join(scratch, "01RUNAS")))
    }))
})

describe("LocalProviderConfigSchema", () => {
  const decode = Schema.decodeUnknownEither(LocalProvider.LocalProviderConfigSchema)

  it("decodes snake_case TOML keys and fills in the defaults", () => {
    assert.deepStrictEqual(decode({ scratch_root: "/var/tmp/b" }), Either.right({
      name: "local",
      targets: ["default"],
      limit: 4,
      scratchRoot: "/var/tmp/b",
      killGraceMs: 2000
    }))
    assert.deepStrictEqual(
      decode({
        name: "l",
        targets: ["a"],
        limit: 1,
        scratch_root: "s",
        agent_command: ["node", "x.js"],
        env: { A: "b" },
        kill_grace_ms: 0
      }),
      Either.right({
        name: "l",
        targets: ["a"],
        limit: 1,
        scratchRoot: "s",
        agentCommand: ["node", "x.js"],
        env: { A: "b" },
        killGraceMs: 0
      })
    )
  })

  it("decodes a table per target", () => {
    assert.deepStrictEqual(
      decode({ scratch_root: "s", warm: 1, user: "build", targets: { default: { limit: 2, warm: 2, scratch_root: "/x", user: "ci" } } }),
      Either.right({
        name: "local",
        targets: { default: { limit: 2, warm: 2, scratchRoot: "/x", user: "ci" } },
        limit: 4,
        warm: 1,
        user: "build",
        scratchRoot: "s",
        killGraceMs: 2000
      })
    )
    assert.deepStrictEqual(LocalProvider.targetNames({ targets: { a: {}, b: { warm: 1 } } }), ["a", "b"])
  })

  it("rejects unknown keys, a missing scratch_root and bad values, naming the key", () => {
    const message = (input: unknown) => Either.match(decode(input), { onLeft: (e) => e.message, onRight: () => "decoded" })
    assert.match(message({ scratch_root: "s", scratchRoot: "s" }), /\["scratchRoot"\][\s\S]*is unexpected/)
    assert.match(message({ scratch_root: "s", limt: 3 }), /\["limt"\][\s\S]*is unexpected/)
    assert.match(message({}), /\["scratch_root"\][\s\S]*is missing/)
    assert.match(message({ scratch_root: "s", limit: 0 }), /\["limit"\]/)
    assert.match(message({ scratch_root: "s", limit: 1.5 }), /\["limit"\]/)
    assert.match(message({ scratch_root: "s", agent_command: [] }), /\["agent_command"\]/)
    assert.match(message({ scratch_root: "s", kill_grace_ms: -1 }), /\["kill_grace_ms"\]/)
    assert.match(message({ scratch_root: "s", targets: { a: { limt: 1 } } }), /\["limt"\][\s\S]*is unexpected/)
    assert.match(message({ scratch_root: "s", targets: { a: { warm: -1 } } }), /\["warm"\]/)
    assert.match(message({ scratch_root: "s", limit: 2, targets: { a: { warm: 3 } } }), /target "a": warm \(3\) is more than its limit \(2\)/)
    assert.match(message({ scratch_root: "s", targets: [] }), /no targets/)
  })
})

describe("default agent command", () => {
  /** A fake `node_modules/@buildomat/agent` exporting `./bundle/cached`, and a file to resolve from. */
  const fakePackage = (withBundle: boolean) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const pkg = path.join(dir, "node_modules", "@buildomat", "agent")
      fs.mkdirSync(path.join(pkg, "bundle"), { recursive: true })
      fs.writeFileSync(
        path.join(pkg, "package.json"),
        JSON.stringify({ name: "@buildomat/agent", type: "module", exports: { "./bundle/cached": "./bundle/buildomat-agent-cached.cjs" } })
      )
      if (withBundle) fs.writeFileSync(path.join(pkg, "bundle", "buildomat-agent-cached.cjs"), "")
      return { from: path.join(dir, "index.js"), bundle: path.join(fs.realpathSync(pkg), "bundle", "buildomat-agent-cached.cjs") }
    })

  it.scoped("resolves @buildomat/agent/bundle/cached to [node, launcher]", () =>
    Effect.gen(function*() {
      const { bundle, from } = yield* fakePackage(true)
      assert.deepStrictEqual(yield* resolveAgentCommand(from), [process.execPath, bundle])
    }))

  it.scoped("says to run `npm run build` when the bundle is missing", () =>
    Effect.gen(function*() {
      const { from } = yield* fakePackage(false)
      const error = yield* Effect.flip(resolveAgentCommand(from))
      assert.strictEqual(error._tag, "ProviderError")
      assert.include(error.message, "@buildomat/agent/bundle/cached")
      assert.include(error.message, "npm run build")
    }))

  it.scopedLive("make without agentCommand uses the built bundle, or fails create with that advice", () =>
    Effect.gen(function*() {
      yield* quiet
      const scratch = path.join(yield* tempDir, "scratch")
      const resolved = yield* Effect.either(LocalProvider.defaultAgentCommand)
      if (Either.isRight(resolved)) {
        // The bundle is built: it is node running the agent package's bundle.
        assert.strictEqual(resolved.right[0], process.execPath)
        assert.match(resolved.right[1]!, /buildomat-agent-cached\.cjs$/)
        return
      }
      const provider = yield* LocalProvider.make({ scratchRoot: scratch })
      const error = yield* Effect.flip(provider.create(request("01TESTNOBUNDLE")))
      assert.match(error.message, /^local provider "local": cannot find the agent bundle/)
      assert.include(error.message, "npm run build")
      assert.deepStrictEqual(yield* provider.list, [])
    }))
})
