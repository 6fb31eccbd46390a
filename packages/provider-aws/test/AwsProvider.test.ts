/**
 * The EC2 provider against a fake EC2 endpoint on loopback (test/fakeEc2.ts) that speaks the
 * Query API wire protocol, through the real `@aws-sdk/client-ec2` client. First the provider on
 * its own (requests, subnets, throttling, listing, destroying), then end to end with the real
 * core server and real agents fetched by the boot script from `GET /file/agent.gz`.
 */
import type { Client } from "@buildomat/core"
import { WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { AwsProvider } from "@buildomat/provider-aws"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FiberRef, LogLevel, Schema, Stream } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { render } from "../src/internal/userData.js"
import * as FakeEc2 from "./fakeEc2.js"

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true"

const ADMIN = "aws-test-admin-token-0123456789"
const BOOTSTRAP = "bootstrapvalue0123456789"

/** Only warnings and errors, for the rest of the test. */
const quiet = Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Warning)

/** Polls until `f` returns a value (not undefined), for at most `ms`. */
const eventually = <A>(what: string, f: () => A | undefined, ms = 30_000): Effect.Effect<A> =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    for (;;) {
      const a = f()
      if (a !== undefined) return a
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("25 millis")
    }
  })

const baseConfig = (fake: FakeEc2.FakeEc2, extra: Partial<AwsProvider.AwsProviderConfig> = {}): AwsProvider.AwsProviderConfig => ({
  region: fake.region,
  endpoint: fake.url,
  accessKeyId: fake.accessKeyId,
  secretAccessKey: "fake-secret-key",
  vpc: "vpc-0f",
  tag: "bmt",
  limit: 2,
  subnets: ["subnet-0a", "subnet-0b"],
  securityGroups: ["sg-0123abcd"],
  retryBaseDelayMs: 10,
  targets: { default: { ami: "ami-0123456789abcdef0", instanceType: "t3.micro", rootSizeGb: 20 } },
  ...extra
})

/** A fake EC2 whose instances do not run their user data unless asked, and a provider on it. */
const setup = (fakeOptions: Partial<FakeEc2.FakeEc2Options> = {}, extra: Partial<AwsProvider.AwsProviderConfig> = {}) =>
  Effect.gen(function*() {
    yield* quiet
    const dir = yield* Testing.tempDirectory("provider-aws-")
    const fake = yield* FakeEc2.start({ root: path.join(dir, "instances"), ...fakeOptions })
    const provider = yield* AwsProvider.make(baseConfig(fake, extra))
    return { dir, fake, provider }
  })

const request = (worker: string, lease?: string): WorkerProvider.CreateWorkerRequest => ({
  worker,
  target: "default",
  url: "http://10.0.0.1:9979",
  bootstrap: BOOTSTRAP,
  ...(lease !== undefined ? { lease } : {})
})

describe("AwsProvider with a fake EC2", () => {
  it.scopedLive("create launches one instance as buildomat does: tags, boot script, private network, root disk", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup({ env: {} }, { keyName: "ops" })
      fake.hangNextBoots(1) // the script is checked below, not run
      const made = yield* provider.create(request("01WORKERA", "01JOBLEASE"))
      const inst = fake.instances.get(made.instanceId)!
      assert.deepStrictEqual(made, { instanceId: inst.id, worker: "01WORKERA", ip: inst.privateIp })
      assert.deepStrictEqual(Object.fromEntries(inst.tags), {
        Name: "w-01WORKERA",
        bmt: "1",
        "bmt-worker_id": "01WORKERA",
        "bmt-lease_id": "01JOBLEASE"
      })
      const [run] = fake.calls("RunInstances")
      assert.strictEqual(run!.status, 200)
      const p = run!.params
      assert.strictEqual(p.ImageId, "ami-0123456789abcdef0")
      assert.strictEqual(p.InstanceType, "t3.micro")
      assert.strictEqual(p.KeyName, "ops")
      assert.strictEqual(p["NetworkInterface.1.SubnetId"], "subnet-0a")
      assert.strictEqual(p["NetworkInterface.1.SecurityGroupId.1"], "sg-0123abcd")
      assert.strictEqual(p["NetworkInterface.1.AssociatePublicIpAddress"], "false")
      assert.strictEqual(p["BlockDeviceMapping.1.DeviceName"], "/dev/sda1")
      assert.strictEqual(p["BlockDeviceMapping.1.Ebs.VolumeSize"], "20")
      assert.strictEqual(p.InstanceInitiatedShutdownBehavior, "terminate")
      assert.strictEqual(p["MetadataOptions.HttpTokens"], "required")
      assert.strictEqual(p.ClientToken, "01WORKERA-0")
      assert.isFalse(inst.publicIp)
      // The boot script: buildomat's template for a Node agent, with this worker's values.
      assert.match(inst.userData, /^#!\/bin\/bash\n/)
      assert.include(inst.userData, "URL='http://10.0.0.1:9979'\n")
      assert.include(inst.userData, `STRAP='${BOOTSTRAP}'\n`)
      assert.include(inst.userData, "NODENAME='w-01WORKERA'\n")
      assert.include(inst.userData, `"$URL/file/agent.gz$HINTS"`)
      assert.include(inst.userData, `"$URL/file/agent$HINTS"`)
      assert.include(inst.userData, "the buildomat agent needs Node.js 20 or later")
    }))

  it.scopedLive("InsufficientInstanceCapacity in the first subnet: the second is used; none anywhere: a clear error", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup()
      fake.hangNextBoots(2)
      fake.noCapacity.add("subnet-0a")
      const made = yield* provider.create(request("01WORKERB"))
      assert.strictEqual(fake.instances.get(made.instanceId)!.subnetId, "subnet-0b")
      assert.deepStrictEqual(
        fake.calls("RunInstances").map((r) => [r.params["NetworkInterface.1.SubnetId"], r.params.ClientToken, r.code ?? r.status]),
        [["subnet-0a", "01WORKERB-0", "InsufficientInstanceCapacity"], ["subnet-0b", "01WORKERB-1", 200]]
      )

      fake.noCapacity.add("subnet-0b")
      const e = yield* Effect.flip(provider.create(request("01WORKERC")))
      assert.match(
        e.message,
        /^aws provider "aws": no subnet had capacity for t3\.micro \(worker 01WORKERC\): subnet-0a: InsufficientInstanceCapacity: We currently do not have sufficient t3\.micro capacity.*; subnet-0b: InsufficientInstanceCapacity: /
      )
      assert.strictEqual([...fake.instances.values()].length, 1)
    }))

  it.scopedLive("throttling (RequestLimitExceeded, HTTP 503) is retried with backoff, then reported with its code", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup({}, { maxAttempts: 4 })
      fake.hangNextBoots(1)
      fake.throttle("RunInstances", 3)
      fake.throttle("DescribeInstances", 2)
      const made = yield* provider.create(request("01WORKERD"))
      assert.deepStrictEqual(fake.calls("RunInstances").map((r) => r.code ?? r.status), [
        "RequestLimitExceeded",
        "RequestLimitExceeded",
        "RequestLimitExceeded",
        200
      ])
      // One instance, although the request was made four times.
      assert.strictEqual(fake.instances.size, 1)
      const listed = yield* provider.list
      assert.deepStrictEqual(listed.map((i) => i.instanceId), [made.instanceId])
      assert.deepStrictEqual(fake.calls("DescribeInstances").map((r) => r.code ?? r.status), ["RequestLimitExceeded", "RequestLimitExceeded", 200])

      fake.throttle("TerminateInstances", 4)
      const e = yield* Effect.flip(provider.destroy(made.instanceId))
      assert.strictEqual(e.message, `aws provider "aws": TerminateInstances ${made.instanceId} failed: RequestLimitExceeded: Request limit exceeded.`)
      assert.strictEqual(fake.calls("TerminateInstances").length, 4)
      assert.strictEqual(fake.instances.get(made.instanceId)!.state, "running")
      yield* provider.destroy(made.instanceId) // the limit is over: now it goes
      assert.strictEqual(fake.instances.get(made.instanceId)!.terminatedBy, "api")
    }))

  it.scopedLive("list pages by tag key and VPC, shows just-launched instances EC2 does not show yet, skips others", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup({ invisibleMs: 1_000, pageSize: 2 }, { launchGraceMs: 60_000 })
      fake.hangNextBoots(10)
      const untagged = fake.seed({ Name: "someone-elses" })
      const otherTag = fake.seed({ other: "1", "other-worker_id": "01OTHER" })
      const noWorker = fake.seed({ bmt: "1" }) // our tag key but no worker id: left alone
      const a = yield* provider.create(request("01WORKERE"))
      const b = yield* provider.create(request("01WORKERF"))
      // Not visible in DescribeInstances yet, listed anyway.
      const early = yield* provider.list
      assert.sameMembers(early.map((i) => i.worker), ["01WORKERE", "01WORKERF"])
      const describe = fake.calls("DescribeInstances").at(-1)!
      assert.strictEqual(describe.params["Filter.1.Name"], "tag-key")
      assert.strictEqual(describe.params["Filter.1.Value.1"], "bmt")
      assert.strictEqual(describe.params["Filter.2.Name"], "vpc-id")
      assert.strictEqual(describe.params["Filter.2.Value.1"], "vpc-0f")

      yield* eventually("the instances to be visible", () =>
        fake.instances.get(a.instanceId)!.hidden || fake.instances.get(b.instanceId)!.hidden ? undefined : true)
      const before = fake.calls("DescribeInstances").length
      const listed = yield* provider.list
      assert.deepStrictEqual(
        [...listed].sort((x, y) => x.worker.localeCompare(y.worker)),
        [
          { instanceId: a.instanceId, worker: "01WORKERE", ip: a.ip },
          { instanceId: b.instanceId, worker: "01WORKERF", ip: b.ip }
        ]
      )
      // Three tagged instances, two a page: two requests, the second with the first's token.
      const pages = fake.calls("DescribeInstances").slice(before)
      assert.strictEqual(pages.length, 2)
      assert.isUndefined(pages[0]!.params.NextToken)
      assert.isDefined(pages[1]!.params.NextToken)

      // A stopped worker instance is terminated (buildomat destroys stopped workers) and not listed.
      fake.instances.get(b.instanceId)!.state = "stopped"
      assert.deepStrictEqual((yield* provider.list).map((i) => i.instanceId), [a.instanceId])
      assert.strictEqual(fake.instances.get(b.instanceId)!.terminatedBy, "api")
      // A terminated one is not listed.
      fake.terminateOutOfBand(a.instanceId)
      assert.deepStrictEqual(yield* provider.list, [])

      for (const i of [untagged, otherTag, noWorker]) {
        assert.strictEqual(i.state, "running")
        assert.isUndefined(i.terminatedBy)
      }
    }))

  it.scopedLive("destroy terminates with Force and SkipOsShutdown, is idempotent, and never touches an untagged instance", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup()
      fake.hangNextBoots(1)
      const made = yield* provider.create(request("01WORKERG"))
      yield* provider.destroy(made.instanceId)
      const [term] = fake.calls("TerminateInstances")
      assert.deepStrictEqual(term!.params, {
        Action: "TerminateInstances",
        Version: "2016-11-15",
        "InstanceId.1": made.instanceId,
        Force: "true",
        SkipOsShutdown: "true"
      })
      yield* provider.destroy(made.instanceId) // shutting down or terminated: nothing more to do
      yield* provider.destroy("i-0123456789abcdef0") // unknown: gone already
      assert.strictEqual(fake.calls("TerminateInstances").length, 1)

      const untagged = fake.seed({ Name: "precious" })
      yield* provider.destroy(untagged.id)
      assert.strictEqual(fake.calls("TerminateInstances").length, 1)
      assert.strictEqual(untagged.state, "running")
    }))

  it.scopedLive("a just-launched instance EC2 does not show yet is not taken for gone by destroy", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup({ invisibleMs: 60_000 })
      fake.hangNextBoots(1)
      const made = yield* provider.create(request("01WORKERH"))
      const e = yield* Effect.flip(provider.destroy(made.instanceId))
      assert.strictEqual(e.message, `aws provider "aws": instance ${made.instanceId} is not visible in EC2 yet; will retry`)
      assert.strictEqual(fake.calls("TerminateInstances").length, 0)
      assert.isUndefined(fake.instances.get(made.instanceId)!.terminatedBy)
    }))

  it.scopedLive("an unserved target, a URL unfit for a shell script, and EC2 refusals are clear errors", () =>
    Effect.gen(function*() {
      const { fake, provider } = yield* setup()
      const unserved = yield* Effect.flip(provider.create({ ...request("01WORKERI"), target: "windows" }))
      assert.strictEqual(unserved.message, `aws provider "aws": does not serve target "windows" (it serves: default)`)
      const badUrl = yield* Effect.flip(provider.create({ ...request("01WORKERI"), url: "http://x/'$(reboot)'" }))
      assert.match(badUrl.message, /cannot write the boot script: the server URL .* is not an http\(s\) URL of plain characters/)
      assert.strictEqual(fake.calls("RunInstances").length, 0)

      const { provider: wrongSubnet } = yield* Effect.map(
        AwsProvider.make(baseConfig(fake, { name: "typo", subnets: ["subnet-0ffff"] })),
        (provider) => ({ provider })
      )
      const refused = yield* Effect.flip(wrongSubnet.create(request("01WORKERJ")))
      assert.strictEqual(
        refused.message,
        `aws provider "typo": RunInstances for worker 01WORKERJ in subnet-0ffff failed: InvalidSubnetID.NotFound: The subnet ID 'subnet-0ffff' does not exist`
      )
    }))

  it.scopedLive("wrong credentials are refused by EC2 and reported, not retried", () =>
    Effect.gen(function*() {
      yield* quiet
      const dir = yield* Testing.tempDirectory("provider-aws-")
      const fake = yield* FakeEc2.start({ root: dir })
      const provider = yield* AwsProvider.make(baseConfig(fake, { accessKeyId: "AKIAWRONGWRONGWRONG1" }))
      const e = yield* Effect.flip(provider.list)
      assert.strictEqual(e.message, `aws provider "aws": DescribeInstances failed: AuthFailure: AWS was not able to validate the provided access credentials`)
      assert.strictEqual(fake.requests.length, 1)
    }))
})

describe("AwsProviderConfigSchema", () => {
  const decode = Schema.decodeUnknownEither(AwsProvider.AwsProviderConfigSchema)
  const minimal = {
    region: "eu-west-1",
    subnets: ["subnet-0a1"],
    targets: { default: { ami: "ami-0abc", instance_type: "m7i.large" } }
  }

  it("decodes snake_case keys and fills in defaults", () => {
    const r = decode({
      ...minimal,
      name: "ec2",
      vpc: "vpc-0f",
      tag: "bm",
      limit: 8,
      security_groups: ["sg-01"],
      key_name: "ops",
      public_ip: true,
      boot_timeout_s: 300,
      max_attempts: 5,
      retry_base_delay_ms: 250,
      request_timeout_ms: 5000,
      profile: "ci",
      targets: {
        default: { ami: "ami-0abc", instance_type: "m7i.large", root_size_gb: 40, root_device: "/dev/xvda" },
        big: { ami: "ami-0def", instance_type: "m7i.4xlarge", subnets: ["subnet-0b2"], security_groups: ["sg-02"], key_name: "k" }
      }
    })
    assert.deepStrictEqual(r._tag === "Right" ? r.right : r.left.message, {
      name: "ec2",
      region: "eu-west-1",
      vpc: "vpc-0f",
      tag: "bm",
      limit: 8,
      subnets: ["subnet-0a1"],
      securityGroups: ["sg-01"],
      keyName: "ops",
      publicIp: true,
      bootTimeoutMs: 300_000,
      maxAttempts: 5,
      retryBaseDelayMs: 250,
      requestTimeoutMs: 5000,
      profile: "ci",
      targets: {
        default: { ami: "ami-0abc", instanceType: "m7i.large", rootSizeGb: 40, rootDevice: "/dev/xvda" },
        big: { ami: "ami-0def", instanceType: "m7i.4xlarge", subnets: ["subnet-0b2"], securityGroups: ["sg-02"], keyName: "k" }
      }
    } as any)
    const d = decode(minimal)
    assert.deepStrictEqual(d._tag === "Right" ? d.right : d.left.message, {
      name: "aws",
      region: "eu-west-1",
      tag: "buildomat",
      limit: 4,
      subnets: ["subnet-0a1"],
      publicIp: false,
      bootTimeoutMs: 480_000,
      maxAttempts: 8,
      retryBaseDelayMs: 500,
      requestTimeoutMs: 30_000,
      targets: { default: { ami: "ami-0abc", instanceType: "m7i.large" } }
    } as any)
  })

  it("rejects unknown keys, half or double credentials, targets without subnets, bad ids, by name", () => {
    const message = (input: unknown) => {
      const r = decode(input)
      assert.strictEqual(r._tag, "Left", JSON.stringify(input))
      return r._tag === "Left" ? r.left.message : ""
    }
    assert.match(message({ ...minimal, subnet: "subnet-0a1" }), /\["subnet"\]\n\s*└─ is unexpected, expected: "name" \| "region"/)
    assert.match(
      message({ ...minimal, targets: { default: { ami: "ami-0abc", instance_type: "x", disk: 1 } } }),
      /\["default"\][\s\S]*\["disk"\]\n\s*└─ is unexpected, expected: "ami" \| "instance_type"/
    )
    assert.include(message({ ...minimal, access_key_id: "AKIA" }), "access_key_id and secret_access_key must be given together")
    assert.include(
      message({ ...minimal, access_key_id: "AKIA", secret_access_key: "s", profile: "p" }),
      "give either static keys (access_key_id, secret_access_key) or a profile, not both"
    )
    const { subnets: _, ...noSubnets } = minimal
    assert.include(message(noSubnets), `target "default" has no subnet: set subnets for the provider or for the target`)
    assert.include(message({ ...minimal, targets: {} }), "no targets")
    assert.include(message({ ...minimal, subnets: ["subnet_1"] }), `expected an id like "subnet-0123abcd"`)
    assert.include(message({ ...minimal, targets: { default: { ami: "ubuntu", instance_type: "t3.micro" } } }), "expected an AMI id")
    assert.include(message({ ...minimal, region: "mars" }), `expected a region like "us-west-2"`)
    assert.include(message({ ...minimal, tag: "aws:mine" }), "is not a usable EC2 tag key prefix")
  })

  it.scoped("make refuses an invalid configuration with ProviderError", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(AwsProvider.make({ region: "us-west-2", targets: {} }))
      assert.strictEqual(e._tag, "ProviderError")
      assert.strictEqual(e.message, `aws provider "aws": invalid configuration: no targets: add at least one [targets.<name>] table`)
    }))
})

describe("the boot script", () => {
  const script = (() => {
    const r = render({ url: "http://127.0.0.1:1/", bootstrap: BOOTSTRAP, nodename: "w-01X" })
    if (r._tag === "Left") throw new Error(r.reason)
    return r.script
  })()

  it("is valid bash, small enough for EC2 user data (16 KiB), and drops the URL's trailing slash", () => {
    execFileSync("/bin/bash", ["-n"], { input: script })
    assert.isBelow(Buffer.byteLength(script), 16384)
    assert.include(script, "URL='http://127.0.0.1:1'\n")
  })

  it.scoped("stops with a visible message when node is missing or too old", () =>
    Effect.gen(function*() {
      const dir = yield* Testing.tempDirectory("userdata-")
      const file = path.join(dir, "user-data")
      fs.writeFileSync(file, script)
      const run = (PATH: string) =>
        spawnSync("/bin/bash", [file], { env: { PATH, BUILDOMAT_SANDBOX: dir }, encoding: "utf8", timeout: 10_000 })

      const missing = run(path.join(dir, "empty-bin"))
      assert.strictEqual(missing.status, 1)
      assert.strictEqual(
        missing.stderr,
        "buildomat: FATAL: node is not installed: the buildomat agent needs Node.js 20 or later on the PATH; use an image that has it (see docs/aws.md)\n"
      )

      const bin = path.join(dir, "old-bin")
      fs.mkdirSync(bin)
      fs.writeFileSync(path.join(bin, "node"), "#!/bin/bash\nif [[ $1 == --version ]]; then echo v18.19.1; exit 0; fi\nexit 1\n", { mode: 0o755 })
      const old = run(`${bin}:/usr/bin:/bin`)
      assert.strictEqual(old.status, 1)
      assert.strictEqual(
        old.stderr,
        `buildomat: FATAL: node v18.19.1 at ${bin}/node is too old: the buildomat agent needs Node.js 20 or later\n`
      )
      assert.isFalse(fs.existsSync(path.join(dir, "opt")), "nothing installed")
    }))
})

// ---------------------------------------------------------------------------------------------
// End to end: the core server, the provider, the fake EC2 running boot scripts, real agents
// ---------------------------------------------------------------------------------------------

const task = (name: string, script: string) => ({ name, script, env_clear: false, env: {} })

/** Waits for the job to end, following the watch stream. */
const finish = (c: Client.Client, id: string) =>
  Effect.gen(function*() {
    yield* c.watch(id, { minseq: 1 }).pipe(Stream.runDrain, Effect.timeout("90 seconds"))
    return yield* c.api.jobs.get({ path: { job: id as any } })
  })

const serveWithEc2 = (fakeOptions: Partial<FakeEc2.FakeEc2Options> = {}, extra: Partial<AwsProvider.AwsProviderConfig> = {}) =>
  Effect.gen(function*() {
    yield* quiet
    const dir = yield* Testing.tempDirectory("provider-aws-e2e-")
    const fake = yield* FakeEc2.start({ root: path.join(dir, "instances"), ...fakeOptions })
    const url = yield* Testing.serve(
      { dataDir: path.join(dir, "data"), adminToken: ADMIN },
      AwsProvider.layer(baseConfig(fake, { limit: 1, ...extra }))
    )
    const { c } = yield* Testing.userClient(url, ADMIN, "alice")
    return { fake, url, c }
  })

const workerOf = (i: FakeEc2.FakeInstance) => i.tags.get("bmt-worker_id")!

describe("end to end through EC2", () => {
  it.scopedLive("a job runs on an instance whose boot script fetched the agent from the server; the instance is then terminated", () =>
    Effect.gen(function*() {
      const { c, fake, url } = yield* serveWithEc2({ invisibleMs: 1_500 })
      const untagged = fake.seed({ Name: "not-ours" })
      const foreign = fake.seed({ other: "1", "other-worker_id": "01SOMEONEELSE" })
      const { id } = yield* c.api.jobs.submit({
        payload: {
          name: "on ec2",
          target: "default",
          output_rules: ["/out/*"],
          tasks: [task("build", "mkdir -p out\necho hello from ec2\necho artefact > out/a.txt")]
        }
      })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed", JSON.stringify(yield* c.allEvents(id)))
      const events = yield* c.allEvents(id)
      assert.isTrue(events.some((e) => e.stream === "stdout" && e.payload === "hello from ec2"))
      const outputs = yield* c.api.jobs.outputs({ path: { job: id as any } })
      assert.deepStrictEqual(outputs.map((o) => [o.path, o.size]), [["/out/a.txt", 9]])

      const ours = [...fake.instances.values()].filter((i) => i.tags.has("bmt"))
      assert.strictEqual(ours.length, 1)
      const inst = ours[0]!
      assert.strictEqual(inst.tags.get("bmt-lease_id"), id)
      const assigned = events.find((e) => e.stream === "control" && e.payload.startsWith("job assigned to worker"))!
      assert.include(assigned.payload, `job assigned to worker ${workerOf(inst)} [factory aws, ${inst.id}]`)
      // The boot script fetched the gzipped agent from this server and started it in the background.
      const consoleOut = fake.consoleOutput(inst.id)
      assert.match(consoleOut, /buildomat: fetched the agent from http:\/\/127\.0\.0\.1:\d+ \(\d+ bytes\); node v\d+/)
      assert.include(consoleOut, "buildomat: agent started in the background")
      assert.include(inst.userData, `URL='${url}'`)

      // Recycled once the job is done: terminated through the API.
      yield* eventually("the instance to be terminated", () => (inst.terminatedBy === "api" ? true : undefined))
      assert.strictEqual(fake.calls("TerminateInstances").length, 1)
      // Nobody else's instance was touched, through several reconcile passes.
      yield* Effect.sleep("1500 millis")
      for (const i of [untagged, foreign]) {
        assert.strictEqual(i.state, "running")
        assert.isUndefined(i.terminatedBy)
      }
      for (const r of fake.calls("TerminateInstances")) assert.strictEqual(r.params["InstanceId.1"], inst.id)
    }))

  it.scopedLive("no capacity in the first subnet and throttled requests: the job still runs, in the second subnet", () =>
    Effect.gen(function*() {
      const { c, fake } = yield* serveWithEc2()
      fake.noCapacity.add("subnet-0a")
      fake.throttle("RunInstances", 2)
      fake.throttle("DescribeInstances", 2)
      const { id } = yield* c.api.jobs.submit({
        payload: { name: "capacity", target: "default", output_rules: [], tasks: [task("t", "echo ok")] }
      })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      const [inst] = [...fake.instances.values()]
      assert.strictEqual(inst!.subnetId, "subnet-0b")
      assert.deepStrictEqual(
        fake.calls("RunInstances").map((r) => [r.params["NetworkInterface.1.SubnetId"], r.code ?? r.status]),
        [
          ["subnet-0a", "RequestLimitExceeded"],
          ["subnet-0a", "RequestLimitExceeded"],
          ["subnet-0a", "InsufficientInstanceCapacity"],
          ["subnet-0b", 200]
        ]
      )
      // The reconcile loop's listing (or the destroy's lookup) meets the throttling too, and retries.
      yield* eventually("a throttled DescribeInstances", () =>
        fake.calls("DescribeInstances").some((r) => r.code === "RequestLimitExceeded") ? true : undefined)
      yield* eventually("a DescribeInstances after the throttling", () =>
        fake.calls("DescribeInstances").some((r) => r.code === undefined && r.status === 200) ? true : undefined)
    }))

  it.scopedLive("an instance that never boots is destroyed after the boot timeout, and a new worker runs the job", () =>
    Effect.gen(function*() {
      const { c, fake } = yield* serveWithEc2({}, { bootTimeoutMs: 3_000 })
      fake.hangNextBoots(1)
      const { id } = yield* c.api.jobs.submit({
        payload: { name: "hung boot", target: "default", output_rules: [], tasks: [task("t", "echo second try")] }
      })
      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "completed")
      const [hung, good] = [...fake.instances.values()]
      assert.isDefined(good, "a second instance was made")
      assert.isUndefined(hung!.pid, "the first never ran its boot script")
      assert.strictEqual(hung!.terminatedBy, "api")
      assert.notStrictEqual(workerOf(hung!), workerOf(good!))
      const events = yield* c.allEvents(id)
      const assigned = events.filter((e) => e.payload.startsWith("job assigned to worker"))
      assert.strictEqual(assigned.length, 1)
      assert.include(assigned[0]!.payload, `job assigned to worker ${workerOf(good!)} `)
      // The hung worker was given up about when the timeout said (limit 1: the second waited for it).
      assert.isAtLeast(good!.launchTime.getTime() - hung!.launchTime.getTime(), 3_000)
    }))

  it.scopedLive("an instance terminated under a running job: the job fails saying so, and the worker is gone", () =>
    Effect.gen(function*() {
      const { c, fake } = yield* serveWithEc2()
      const { id } = yield* c.api.jobs.submit({
        payload: { name: "doomed", target: "default", output_rules: [], tasks: [task("t", "echo started\nsleep 300")] }
      })
      yield* c.watch(id, { minseq: 1 }).pipe(
        Stream.takeUntil((m) => m._tag === "event" && m.event.payload === "started"),
        Stream.runDrain,
        Effect.timeout("60 seconds")
      )
      const [inst] = [...fake.instances.values()]
      fake.terminateOutOfBand(inst!.id)

      const job = yield* finish(c, id)
      assert.strictEqual(job.state, "failed")
      const control = (yield* c.allEvents(id)).filter((e) => e.stream === "control").map((e) => e.payload)
      assert.include(
        control,
        `instance ${inst!.id} of worker ${workerOf(inst!)} is gone from provider aws (terminated outside buildomat?); aborting job`
      )
      assert.strictEqual(fake.calls("TerminateInstances").length, 0, "nothing left to terminate")

      // The worker no longer holds the only slot (limit 1): the next job gets a new instance.
      const next = yield* c.api.jobs.submit({
        payload: { name: "after", target: "default", output_rules: [], tasks: [task("t", "echo fine")] }
      })
      assert.strictEqual((yield* finish(c, next.id)).state, "completed")
      assert.strictEqual([...fake.instances.values()].length, 2)
    }))
})
