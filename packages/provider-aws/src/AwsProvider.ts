/**
 * A worker provider on AWS EC2: one instance per worker, as buildomat's AWS factory
 * (`buildomat-factory-aws`) makes them, driven in-process by the core server's provisioning
 * loop.
 *
 * - `create` runs `RunInstances` with the target's AMI, instance type, root disk, key pair,
 *   security groups and first subnet (the next subnet on `InsufficientInstanceCapacity`), tags
 *   the instance as buildomat does (`<tag>=1`, `<tag>-worker_id`, `<tag>-lease_id`,
 *   `Name=w-<worker>`), and gives it a boot script (user data) that fetches the agent from the
 *   core server (`GET <url>/file/agent.gz`, falling back to `/file/agent`) and starts it with the
 *   worker's bootstrap value. No public IP unless asked: instances reach the server through the
 *   VPC (a NAT gateway, or a private address of the server).
 * - `list` is `DescribeInstances` filtered by the tag key (and the VPC, if set): the instances
 *   that carry a worker id. Instances without the tag are never seen, so never touched.
 * - `destroy` is `TerminateInstances` with `Force` and `SkipOsShutdown`, after checking that the
 *   instance carries the tag.
 * - Throttling (`RequestLimitExceeded`, `Throttling`) and transient server errors are retried
 *   with jittered exponential backoff.
 * - A worker whose agent has not bootstrapped `bootTimeoutMs` after creation (default 8 minutes,
 *   as buildomat) is given up by the core loop, which destroys its instance and makes a new
 *   worker if a job still needs one.
 *
 * Credentials come from the standard AWS chain (environment, shared files, SSO, instance or
 * task role), a named `profile`, or static keys in the configuration.
 *
 * @since 0.1.0
 */
import type { DescribeInstancesCommandInput, Instance, RunInstancesCommandInput } from "@aws-sdk/client-ec2"
import { WorkerProvider } from "@buildomat/core"
import { Effect, Layer, Schema } from "effect"
import type { Scope } from "effect"
import { call, type Ec2Error, type RetryPolicy } from "./internal/ec2.js"
import { render } from "./internal/userData.js"

const DEFAULT_TAG = "buildomat"
const DEFAULT_BOOT_TIMEOUT_MS = 8 * 60 * 1000
/** The least time between two DescribeInstances listings by the reconcile loop (buildomat's AWS factory reconciles every 7 s). */
const LIST_INTERVAL_MS = 7_000
/** EC2 codes that mean "not here, try the next subnet" (buildomat: `InsufficientInstanceCapacity`). */
const CAPACITY_CODES: ReadonlySet<string> = new Set(["InsufficientInstanceCapacity", "Unsupported"])
/** Instance states in which an instance is a live worker machine. */
const LIVE_STATES: ReadonlySet<string> = new Set(["pending", "running"])

/**
 * How to make instances for one target.
 *
 * - `ami`: the image (`ami-...`). It must have bash and Node.js 20 or later on the PATH (and
 *   preferably curl); see `docs/aws.md`.
 * - `instanceType`: e.g. `"m7i.large"`.
 * - `rootSizeGb`: the root EBS volume size, GiB; default: the AMI's.
 * - `rootDevice`: the AMI's root device name, for `rootSizeGb`; default `"/dev/sda1"` (buildomat's
 *   choice; Amazon Linux and Debian images use `"/dev/xvda"`).
 * - `subnets`, `securityGroups`, `keyName`: override the provider-wide values for this target.
 *
 * @since 0.1.0
 * @category models
 */
export interface AwsTargetConfig {
  readonly ami: string
  readonly instanceType: string
  readonly rootSizeGb?: number | undefined
  readonly rootDevice?: string | undefined
  readonly subnets?: ReadonlyArray<string> | undefined
  readonly securityGroups?: ReadonlyArray<string> | undefined
  readonly keyName?: string | undefined
}

/**
 * What `make` needs. `region` and `targets` are required, and every target needs a subnet (its
 * own or the provider-wide ones).
 *
 * - `name`: the factory name shown in worker listings; default `"aws"`.
 * - `region`: the AWS region, e.g. `"us-west-2"`.
 * - `endpoint`: another EC2 endpoint URL (a test double, a proxy); default: the region's.
 * - `accessKeyId` + `secretAccessKey` (+ `sessionToken`): static credentials. Or `profile`: a
 *   profile of the shared AWS config files. Neither: the standard credential chain (environment,
 *   shared files, SSO, ECS task role, EC2 instance role). Keys and a profile together, or one key
 *   without the other, are refused.
 * - `vpc`: a VPC id; when set, `list` only sees instances in it (buildomat `aws.vpc`).
 * - `tag`: the tag key prefix T: instances get `T=1`, `T-worker_id`, `T-lease_id`; default
 *   `"buildomat"`. Use one prefix per server sharing an account.
 * - `limit`: the most instances (workers) at once; default `4` (buildomat `aws.limit_total`).
 * - `subnets`: subnet ids, tried in order; the next is used when EC2 answers
 *   `InsufficientInstanceCapacity` or `Unsupported` (buildomat `aws.subnet`).
 * - `securityGroups`: security group ids for the instance's network interface; empty or absent:
 *   the VPC's default group.
 * - `keyName`: an EC2 key pair for SSH; default none.
 * - `publicIp`: associate a public IPv4 address; default `false` (buildomat `aws.public_ip`).
 * - `bootTimeoutMs`: how long an instance may take until its agent bootstraps, from the worker's
 *   creation; default 480 000 (8 minutes, as buildomat). See `WorkerProvider.bootTimeoutMs`.
 * - `targets`: target name to `AwsTargetConfig`. The keys are the targets this provider serves.
 * - `maxAttempts`: how many times an EC2 request is made at most when throttled or failing
 *   transiently; default `8`. `retryBaseDelayMs`: the first pause, doubled each time with
 *   jitter up to 20 s; default `500`.
 * - `requestTimeoutMs`: the timeout of one EC2 HTTP request; default `30000`.
 * - `launchGraceMs`: for how long after `RunInstances` an instance counts as present although
 *   `DescribeInstances` does not show it yet (EC2 is eventually consistent); default `120000`.
 *
 * @since 0.1.0
 * @category models
 */
export interface AwsProviderConfig {
  readonly name?: string | undefined
  readonly region: string
  readonly endpoint?: string | undefined
  readonly accessKeyId?: string | undefined
  readonly secretAccessKey?: string | undefined
  readonly sessionToken?: string | undefined
  readonly profile?: string | undefined
  readonly vpc?: string | undefined
  readonly tag?: string | undefined
  readonly limit?: number | undefined
  readonly subnets?: ReadonlyArray<string> | undefined
  readonly securityGroups?: ReadonlyArray<string> | undefined
  readonly keyName?: string | undefined
  readonly publicIp?: boolean | undefined
  readonly bootTimeoutMs?: number | undefined
  readonly targets: Readonly<Record<string, AwsTargetConfig>>
  readonly maxAttempts?: number | undefined
  readonly retryBaseDelayMs?: number | undefined
  readonly requestTimeoutMs?: number | undefined
  readonly launchGraceMs?: number | undefined
}

/**
 * What is wrong with a configuration, or `undefined` if nothing: credentials given half or twice,
 * no targets, a target without a subnet, a tag that EC2 would refuse.
 *
 * @since 0.1.0
 * @category utils
 */
export const validate = (config: AwsProviderConfig): string | undefined => {
  const hasKey = config.accessKeyId !== undefined
  const hasSecret = config.secretAccessKey !== undefined
  if (hasKey !== hasSecret) return "access_key_id and secret_access_key must be given together"
  if (hasKey && config.profile !== undefined) return "give either static keys (access_key_id, secret_access_key) or a profile, not both"
  if (config.sessionToken !== undefined && !hasKey) return "session_token needs access_key_id and secret_access_key"
  const tag = config.tag ?? DEFAULT_TAG
  if (!/^[A-Za-z0-9_.:/=+@-]{1,100}$/.test(tag) || tag.toLowerCase().startsWith("aws:")) {
    return `tag ${JSON.stringify(tag)} is not a usable EC2 tag key prefix (1-100 of A-Z a-z 0-9 _ . : / = + - @, not "aws:")`
  }
  const names = Object.keys(config.targets)
  if (names.length === 0) return "no targets: add at least one [targets.<name>] table"
  for (const name of names) {
    const t = config.targets[name]!
    if ((t.subnets ?? config.subnets ?? []).length === 0) {
      return `target "${name}" has no subnet: set subnets for the provider or for the target`
    }
  }
  return undefined
}

/** Seconds in TOML, milliseconds in the configuration. */
const SecondsToMs = Schema.transform(Schema.Number.pipe(Schema.positive()), Schema.Number, {
  strict: true,
  decode: (s) => Math.round(s * 1000),
  encode: (ms) => ms / 1000
})

const Ids = (prefix: string) =>
  Schema.Array(Schema.String.pipe(Schema.pattern(new RegExp(`^${prefix}-[0-9a-f]+$`), {
    message: () => `expected an id like "${prefix}-0123abcd"`
  })))

const TargetSchema = Schema.Struct({
  ami: Schema.String.pipe(Schema.pattern(/^ami-[0-9a-f]+$/, { message: () => `expected an AMI id like "ami-0123abcd"` })),
  instanceType: Schema.propertySignature(Schema.NonEmptyTrimmedString).pipe(Schema.fromKey("instance_type")),
  rootSizeGb: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 65536)), { exact: true }).pipe(
    Schema.fromKey("root_size_gb")
  ),
  rootDevice: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }).pipe(Schema.fromKey("root_device")),
  subnets: Schema.optionalWith(Ids("subnet"), { exact: true }),
  securityGroups: Schema.optionalWith(Ids("sg"), { exact: true }).pipe(Schema.fromKey("security_groups")),
  keyName: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }).pipe(Schema.fromKey("key_name"))
}).annotations({ identifier: "AwsTargetConfig", parseOptions: { onExcessProperty: "error" } })

/**
 * Decodes an `AwsProviderConfig` from a TOML table (as parsed by `smol-toml`), filling in the
 * defaults. Keys are snake_case; unknown keys are rejected by name; `validate` runs last.
 *
 * ```toml
 * name = "aws"                              # optional
 * region = "us-west-2"
 * # access_key_id = "..."                   # optional static keys, or:
 * # secret_access_key = "..."
 * # profile = "buildomat"                   # optional; default: the standard chain
 * vpc = "vpc-0123abcd"                      # optional
 * tag = "buildomat"                         # optional
 * limit = 8                                 # optional, integer >= 1
 * subnets = ["subnet-0aaa", "subnet-0bbb"]  # tried in order
 * security_groups = ["sg-0123abcd"]         # optional
 * key_name = "ops"                          # optional
 * public_ip = false                         # optional
 * boot_timeout_s = 480                      # optional, seconds
 * max_attempts = 8                          # optional, EC2 request attempts when throttled
 * retry_base_delay_ms = 500                 # optional
 * request_timeout_ms = 30000                # optional
 * # endpoint = "http://127.0.0.1:4566"      # optional, another EC2 endpoint
 *
 * [targets.default]
 * ami = "ami-0123456789abcdef0"
 * instance_type = "m7i.large"
 * root_size_gb = 40                         # optional
 * root_device = "/dev/xvda"                 # optional, default "/dev/sda1"
 * # subnets, security_groups, key_name      # optional per-target overrides
 * ```
 *
 * Errors are `ParseError`s that name the offending key.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AwsProviderConfigSchema = Schema.Struct({
  name: Schema.optionalWith(Schema.NonEmptyTrimmedString, { default: () => "aws" }),
  region: Schema.String.pipe(Schema.pattern(/^[a-z]{2}(-[a-z]+)+-\d+$/, { message: () => `expected a region like "us-west-2"` })),
  endpoint: Schema.optionalWith(
    Schema.String.pipe(Schema.pattern(/^https?:\/\/\S+$/, { message: () => "expected an http(s) URL" })),
    { exact: true }
  ),
  accessKeyId: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }).pipe(Schema.fromKey("access_key_id")),
  secretAccessKey: Schema.optionalWith(Schema.NonEmptyString, { exact: true }).pipe(Schema.fromKey("secret_access_key")),
  sessionToken: Schema.optionalWith(Schema.NonEmptyString, { exact: true }).pipe(Schema.fromKey("session_token")),
  profile: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }),
  vpc: Schema.optionalWith(
    Schema.String.pipe(Schema.pattern(/^vpc-[0-9a-f]+$/, { message: () => `expected a VPC id like "vpc-0123abcd"` })),
    { exact: true }
  ),
  tag: Schema.optionalWith(Schema.NonEmptyTrimmedString, { default: () => DEFAULT_TAG }),
  limit: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => 4 }),
  subnets: Schema.optionalWith(Ids("subnet"), { exact: true }),
  securityGroups: Schema.optionalWith(Ids("sg"), { exact: true }).pipe(Schema.fromKey("security_groups")),
  keyName: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }).pipe(Schema.fromKey("key_name")),
  publicIp: Schema.optionalWith(Schema.Boolean, { default: () => false }).pipe(Schema.fromKey("public_ip")),
  bootTimeoutMs: Schema.optionalWith(SecondsToMs, { default: () => DEFAULT_BOOT_TIMEOUT_MS }).pipe(
    Schema.fromKey("boot_timeout_s")
  ),
  targets: Schema.Record({ key: Schema.String, value: TargetSchema }),
  maxAttempts: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100)), { default: () => 8 }).pipe(
    Schema.fromKey("max_attempts")
  ),
  retryBaseDelayMs: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 500 }).pipe(
    Schema.fromKey("retry_base_delay_ms")
  ),
  requestTimeoutMs: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(100)), { default: () => 30_000 }).pipe(
    Schema.fromKey("request_timeout_ms")
  )
}).annotations({ identifier: "AwsProviderConfig", parseOptions: { onExcessProperty: "error" } }).pipe(
  Schema.filter((c) => validate(c), { identifier: "ValidAwsProviderConfig" })
)

/**
 * The tags an instance of `worker` gets (buildomat's AWS factory): `Name=w-<worker>`, `T=1`,
 * `T-worker_id=<worker>`, and `T-lease_id=<job>` when the job is known.
 *
 * @since 0.1.0
 * @category utils
 */
export const instanceTags = (tag: string, worker: string, lease?: string | undefined) => [
  { Key: "Name", Value: `w-${worker}` },
  { Key: tag, Value: "1" },
  { Key: `${tag}-worker_id`, Value: worker },
  ...(lease !== undefined ? [{ Key: `${tag}-lease_id`, Value: lease }] : [])
]

const tagOf = (instance: Instance, key: string): string | undefined =>
  instance.Tags?.find((t) => t.Key === key)?.Value

interface Launched {
  readonly worker: string
  readonly ip: string | undefined
  readonly at: number
}

/**
 * Makes an EC2 worker provider. Fails with `ProviderError` if the configuration is invalid (see
 * `validate`). The EC2 client is closed with the scope; instances are not terminated then: they
 * belong to workers recorded in the server's database, and the next server reconciles them.
 *
 * - `create({ worker, target, url, bootstrap, lease })`: fails with `ProviderError` if `target`
 *   is not served, if `url` cannot go into a shell script, if every subnet lacks capacity (the
 *   message lists each subnet's answer), or if EC2 refuses the request (the message has the EC2
 *   error code and message). Returns `{ instanceId, worker, ip }` with the instance's private IP.
 *   Each subnet attempt has its own `ClientToken` (`<worker>-<n>`), so a retried request never
 *   makes a second instance.
 * - `destroy(instanceId)`: `DescribeInstances` for it, then `TerminateInstances` (`Force`,
 *   `SkipOsShutdown`) if it is pending, running, stopping or stopped. Succeeds at once for an
 *   instance already shutting down, terminated or gone; fails (to be retried) for one launched
 *   within `launchGraceMs` that EC2 does not show yet; logs an error and does nothing for an
 *   instance without the `tag` key.
 * - `list`: the pending and running instances with the tag key (and in `vpc`), as
 *   `{ instanceId, worker: <T-worker_id>, ip }`, all pages; plus instances launched within
 *   `launchGraceMs` that EC2 does not show yet. Tagged instances that are stopped or stopping are
 *   terminated (buildomat destroys stopped workers) and left out. Instances with the tag key but
 *   no worker id are left out, and alone.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: AwsProviderConfig
): Effect.Effect<WorkerProvider.WorkerProvider, WorkerProvider.ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = config.name ?? "aws"
    const fail = (message: string, cause?: unknown) =>
      new WorkerProvider.ProviderError({ message: `aws provider "${name}": ${message}`, cause })
    const invalid = validate(config)
    if (invalid !== undefined) return yield* fail(`invalid configuration: ${invalid}`)

    const tag = config.tag ?? DEFAULT_TAG
    const limit = config.limit ?? 4
    const targets = Object.keys(config.targets)
    const launchGraceMs = config.launchGraceMs ?? 120_000
    const policy: RetryPolicy = {
      attempts: config.maxAttempts ?? 8,
      baseDelayMs: config.retryBaseDelayMs ?? 500,
      maxDelayMs: 20_000
    }

    // Loaded here, not with the module: a server that imports this provider without configuring
    // it does not pay for the EC2 SDK at start.
    const ec2 = yield* Effect.promise(() => import("@aws-sdk/client-ec2"))
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new ec2.EC2Client({
          region: config.region,
          ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
          ...(config.profile !== undefined ? { profile: config.profile } : {}),
          ...(config.accessKeyId !== undefined && config.secretAccessKey !== undefined
            ? {
              credentials: {
                accessKeyId: config.accessKeyId,
                secretAccessKey: config.secretAccessKey,
                ...(config.sessionToken !== undefined ? { sessionToken: config.sessionToken } : {})
              }
            }
            : {}),
          maxAttempts: 1, // retries are ours (internal/ec2.ts)
          requestHandler: { requestTimeout: config.requestTimeoutMs ?? 30_000, connectionTimeout: 10_000 }
        })
      ),
      (c) => Effect.sync(() => c.destroy())
    )

    /** Instances we launched recently, until EC2 shows them (eventual consistency). */
    const launched = new Map<string, Launched>()
    const recent = (id: string) => {
      const l = launched.get(id)
      return l !== undefined && Date.now() - l.at < launchGraceMs
    }
    const describe = (input: DescribeInstancesCommandInput) =>
      call("DescribeInstances", (abortSignal) => client.send(new ec2.DescribeInstancesCommand(input), { abortSignal }), policy)
    const ec2Message = (e: Ec2Error) => `${e.code}: ${e.message}`

    const terminate = (instanceId: string) =>
      call(
        "TerminateInstances",
        (abortSignal) =>
          client.send(new ec2.TerminateInstancesCommand({ InstanceIds: [instanceId], Force: true, SkipOsShutdown: true }), {
            abortSignal
          }),
        policy
      )

    const create = (request: WorkerProvider.CreateWorkerRequest) =>
      Effect.gen(function*() {
        const { worker } = request
        const target = config.targets[request.target]
        if (target === undefined) {
          return yield* fail(`does not serve target "${request.target}" (it serves: ${targets.join(", ") || "none"})`)
        }
        const userData = render({ url: request.url, bootstrap: request.bootstrap, nodename: `w-${worker}` })
        if (userData._tag === "Left") return yield* fail(`cannot write the boot script: ${userData.reason}`)
        const subnets = target.subnets ?? config.subnets ?? []
        const groups = target.securityGroups ?? config.securityGroups ?? []
        const keyName = target.keyName ?? config.keyName
        const refusals: Array<string> = []
        for (const [i, subnet] of subnets.entries()) {
          const input: RunInstancesCommandInput = {
            ImageId: target.ami,
            InstanceType: target.instanceType as RunInstancesCommandInput["InstanceType"],
            MinCount: 1,
            MaxCount: 1,
            ClientToken: `${worker}-${i}`,
            ...(keyName !== undefined ? { KeyName: keyName } : {}),
            UserData: Buffer.from(userData.script, "utf8").toString("base64"),
            InstanceInitiatedShutdownBehavior: "terminate",
            MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled" },
            ...(target.rootSizeGb !== undefined
              ? {
                BlockDeviceMappings: [{
                  DeviceName: target.rootDevice ?? "/dev/sda1",
                  Ebs: { VolumeSize: target.rootSizeGb, DeleteOnTermination: true }
                }]
              }
              : {}),
            NetworkInterfaces: [{
              DeviceIndex: 0,
              SubnetId: subnet,
              ...(groups.length > 0 ? { Groups: [...groups] } : {}),
              AssociatePublicIpAddress: config.publicIp ?? false,
              DeleteOnTermination: true
            }],
            TagSpecifications: [{ ResourceType: "instance", Tags: instanceTags(tag, worker, request.lease) }]
          }
          const result = yield* call(
            "RunInstances",
            (abortSignal) => client.send(new ec2.RunInstancesCommand(input), { abortSignal }),
            policy
          ).pipe(Effect.either)
          if (result._tag === "Left") {
            const e = result.left
            if (CAPACITY_CODES.has(e.code)) {
              yield* Effect.logWarning(`EC2 has no capacity for ${target.instanceType} in ${subnet}; trying the next subnet`).pipe(
                Effect.annotateLogs({ worker, code: e.code })
              )
              refusals.push(`${subnet}: ${ec2Message(e)}`)
              continue
            }
            return yield* fail(`RunInstances for worker ${worker} in ${subnet} failed: ${ec2Message(e)}`, e)
          }
          const instances = result.right.Instances ?? []
          const instance = instances[0]
          if (instances.length !== 1 || instance?.InstanceId === undefined) {
            return yield* fail(`RunInstances for worker ${worker} returned ${instances.length} instances, expected 1`)
          }
          const ip = instance.PrivateIpAddress
          launched.set(instance.InstanceId, { worker, ip, at: Date.now() })
          yield* Effect.logInfo("EC2 instance launched").pipe(
            Effect.annotateLogs({
              worker,
              target: request.target,
              instance: instance.InstanceId,
              subnet,
              ip: ip ?? "-"
            })
          )
          return { instanceId: instance.InstanceId, worker, ip } satisfies WorkerProvider.WorkerInstance
        }
        return yield* fail(
          `no subnet had capacity for ${target.instanceType} (worker ${worker}): ${refusals.join("; ")}`
        )
      }).pipe(
        Effect.annotateLogs({ provider: name }),
        Effect.withSpan("AwsProvider.create", { attributes: { provider: name, worker: request.worker } })
      )

    const destroy = (instanceId: string) =>
      Effect.gen(function*() {
        const found = yield* describe({ InstanceIds: [instanceId] }).pipe(
          Effect.map((out) => out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId)),
          Effect.catchIf((e) => e.code === "InvalidInstanceID.NotFound", () => Effect.succeed(undefined)),
          Effect.mapError((e) => fail(`DescribeInstances ${instanceId} failed: ${ec2Message(e)}`, e))
        )
        if (found === undefined) {
          if (recent(instanceId)) return yield* fail(`instance ${instanceId} is not visible in EC2 yet; will retry`)
          launched.delete(instanceId)
          return
        }
        if (tagOf(found, tag) === undefined) {
          launched.delete(instanceId)
          return yield* Effect.logError(`instance ${instanceId} has no "${tag}" tag; not ours, leaving it alone`)
        }
        const state = found.State?.Name ?? "unknown"
        if (state === "shutting-down" || state === "terminated") {
          launched.delete(instanceId)
          return
        }
        yield* terminate(instanceId).pipe(
          Effect.catchIf((e) => e.code === "InvalidInstanceID.NotFound", () => Effect.void),
          Effect.mapError((e) => fail(`TerminateInstances ${instanceId} failed: ${ec2Message(e)}`, e))
        )
        launched.delete(instanceId)
        yield* Effect.logInfo("EC2 instance terminated").pipe(
          Effect.annotateLogs({ instance: instanceId, worker: tagOf(found, `${tag}-worker_id`) ?? "-" })
        )
      }).pipe(
        Effect.annotateLogs({ provider: name }),
        Effect.withSpan("AwsProvider.destroy", { attributes: { provider: name, instanceId } })
      )

    const list = Effect.gen(function*() {
      const filters = [
        { Name: "tag-key", Values: [tag] },
        ...(config.vpc !== undefined ? [{ Name: "vpc-id", Values: [config.vpc] }] : [])
      ]
      const seen: Array<Instance> = []
      let nextToken: string | undefined
      do {
        const token = nextToken
        const page = yield* describe({
          Filters: filters,
          MaxResults: 1000,
          ...(token !== undefined ? { NextToken: token } : {})
        }).pipe(Effect.mapError((e) => fail(`DescribeInstances failed: ${ec2Message(e)}`, e)))
        for (const r of page.Reservations ?? []) seen.push(...(r.Instances ?? []))
        nextToken = page.NextToken !== undefined && page.NextToken !== "" ? page.NextToken : undefined
      } while (nextToken !== undefined)

      const out: Array<WorkerProvider.WorkerInstance> = []
      const shown = new Set<string>()
      for (const i of seen) {
        if (i.InstanceId === undefined) continue
        shown.add(i.InstanceId)
        launched.delete(i.InstanceId)
        const worker = tagOf(i, `${tag}-worker_id`)
        if (worker === undefined) continue // buildomat: warn and ignore, never destroy
        const state = i.State?.Name ?? "unknown"
        if (LIVE_STATES.has(state)) {
          out.push({ instanceId: i.InstanceId, worker, ip: i.PrivateIpAddress })
        } else if (state === "stopped" || state === "stopping") {
          yield* Effect.logWarning(`instance ${i.InstanceId} of worker ${worker} is ${state}; terminating it`)
          yield* terminate(i.InstanceId).pipe(
            Effect.catchAll((e) => Effect.logWarning(`TerminateInstances ${i.InstanceId}: ${ec2Message(e)}`))
          )
        }
      }
      for (const [id, l] of launched) {
        if (shown.has(id)) continue
        if (recent(id)) out.push({ instanceId: id, worker: l.worker, ip: l.ip })
        else launched.delete(id)
      }
      return out
    }).pipe(Effect.annotateLogs({ provider: name }), Effect.withSpan("AwsProvider.list", { attributes: { provider: name } }))

    return {
      name,
      targets,
      limit,
      bootTimeoutMs: config.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS,
      // DescribeInstances at most every 7 s, the pace of buildomat's AWS factory.
      listIntervalMs: LIST_INTERVAL_MS,
      create,
      destroy,
      list
    } satisfies WorkerProvider.WorkerProvider
  })

/**
 * A `WorkerProviders` layer holding just this provider, built by `make` (see there). To run it
 * beside other providers, build the array yourself:
 * `Layer.scoped(WorkerProviders, Effect.all([LocalProvider.make(a), AwsProvider.make(b)]))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: AwsProviderConfig
): Layer.Layer<WorkerProvider.WorkerProviders, WorkerProvider.ProviderError> =>
  Layer.scoped(WorkerProvider.WorkerProviders, Effect.map(make(config), (provider) => [provider]))
