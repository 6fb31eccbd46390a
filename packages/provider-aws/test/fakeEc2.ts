/**
 * A fake EC2 endpoint on loopback that speaks the EC2 Query API wire protocol for the calls the
 * provider makes, so that the real `@aws-sdk/client-ec2` client talks to it unchanged:
 *
 * - requests: `POST /`, `application/x-www-form-urlencoded`, `Action=...&Version=2016-11-15`,
 *   signed with SigV4 (the `Authorization` header is checked for shape, access key, region and
 *   service; the signature itself is not verified);
 * - answers: XML in the `http://ec2.amazonaws.com/doc/2016-11-15/` namespace; errors as EC2's
 *   `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`, HTTP
 *   400 for client errors, 500 for capacity and internal errors, 503 for `RequestLimitExceeded`
 *   (EC2 API reference, "Error codes for the Amazon EC2 API");
 * - parameters are checked against the EC2 API reference for `RunInstances`,
 *   `DescribeInstances` and `TerminateInstances` (`UnknownParameter`, `MissingParameter`,
 *   `InvalidParameterValue`, `InvalidParameterCombination`, `InvalidSubnetID.NotFound`,
 *   `InvalidInstanceID.NotFound`, `IdempotentParameterMismatch`), and user data must be base64 of
 *   at most 16 KiB.
 *
 * Its instances are real: once "running", an instance runs its user data with bash in a scratch
 * directory of its own (with `BUILDOMAT_SANDBOX` pointing there), in its own process group,
 * which `TerminateInstances` kills. Faults can be injected: no capacity in a subnet, throttling,
 * instances that never boot, instances hidden from `DescribeInstances` for a while (eventual
 * consistency), and termination behind the provider's back.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"

export type InstanceState = "pending" | "running" | "shutting-down" | "terminated" | "stopping" | "stopped"

const STATE_CODES: Record<InstanceState, number> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80
}

export interface FakeInstance {
  readonly id: string
  readonly imageId: string
  readonly instanceType: string
  readonly subnetId: string
  readonly vpcId: string
  readonly securityGroups: ReadonlyArray<string>
  readonly keyName: string | undefined
  readonly privateIp: string
  readonly publicIp: boolean
  readonly launchTime: Date
  readonly tags: Map<string, string>
  readonly userData: string
  readonly params: Readonly<Record<string, string>>
  readonly dir: string
  state: InstanceState
  pid: number | undefined
  terminatedBy: "api" | "out-of-band" | undefined
  hidden: boolean
}

export interface RecordedRequest {
  readonly action: string
  readonly params: Readonly<Record<string, string>>
  readonly status: number
  readonly code: string | undefined
}

export interface FakeEc2Options {
  /** Where instances get their scratch directories. */
  readonly root: string
  readonly region?: string
  readonly accessKeyId?: string
  /** Subnet id to its VPC. Default: subnet-0a and subnet-0b in vpc-0f. */
  readonly subnets?: Readonly<Record<string, string>>
  /** Instances per `DescribeInstances` page; default 2, so that paging is exercised. */
  readonly pageSize?: number
  /** Milliseconds from pending to running; default 100. */
  readonly bootDelayMs?: number
  /** Milliseconds during which a new instance is missing from `DescribeInstances`; default 0. */
  readonly invisibleMs?: number
  /** Environment variables for user data scripts, on top of PATH, HOME and BUILDOMAT_SANDBOX. */
  readonly env?: Readonly<Record<string, string>>
}

export interface FakeEc2 {
  readonly url: string
  readonly region: string
  readonly accessKeyId: string
  readonly requests: Array<RecordedRequest>
  readonly instances: Map<string, FakeInstance>
  /** Subnets that answer `InsufficientInstanceCapacity`. */
  readonly noCapacity: Set<string>
  /** The next `times` requests of `action` get `RequestLimitExceeded` (HTTP 503). */
  readonly throttle: (action: string, times: number) => void
  /** The next `n` instances never run their user data (a boot that hangs). */
  readonly hangNextBoots: (n: number) => void
  /** An instance that exists without the provider having made it (another team's, say). */
  readonly seed: (tags: Record<string, string>, state?: InstanceState) => FakeInstance
  /** Terminates an instance as the console would: the processes die at once. */
  readonly terminateOutOfBand: (id: string) => void
  /** What the instance's boot script printed. */
  readonly consoleOutput: (id: string) => string
  /** Requests for `action`. */
  readonly calls: (action: string) => Array<RecordedRequest>
}

const NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

const xmlEscape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;")

class Ec2Fault extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}
const clientError = (code: string, message: string) => new Ec2Fault(400, code, message)

/** Parameter names each action accepts (EC2 API reference, "Request Parameters"). */
const ALLOWED: Record<string, ReadonlyArray<RegExp>> = {
  RunInstances: [
    /^(ImageId|InstanceType|MinCount|MaxCount|KeyName|ClientToken|UserData|InstanceInitiatedShutdownBehavior|DryRun|SubnetId)$/,
    /^SecurityGroupId\.\d+$/,
    /^BlockDeviceMapping\.\d+\.(DeviceName|Ebs\.(VolumeSize|VolumeType|DeleteOnTermination|Encrypted|Iops|Throughput))$/,
    /^NetworkInterface\.\d+\.(DeviceIndex|SubnetId|AssociatePublicIpAddress|DeleteOnTermination|SecurityGroupId\.\d+)$/,
    /^TagSpecification\.\d+\.(ResourceType|Tag\.\d+\.(Key|Value))$/,
    /^MetadataOptions\.(HttpTokens|HttpEndpoint|HttpPutResponseHopLimit)$/
  ],
  DescribeInstances: [/^(MaxResults|NextToken|DryRun)$/, /^InstanceId\.\d+$/, /^Filter\.\d+\.(Name|Value\.\d+)$/],
  TerminateInstances: [/^(Force|SkipOsShutdown|DryRun)$/, /^InstanceId\.\d+$/]
}

/** `Prefix.1`, `Prefix.2`, ... in order. */
const list = (params: Record<string, string>, prefix: string): Array<string> => {
  const out: Array<string> = []
  for (let i = 1; params[`${prefix}.${i}`] !== undefined; i++) out.push(params[`${prefix}.${i}`]!)
  return out
}

const alive = (pid: number) => {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

const killGroup = (pid: number | undefined) => {
  if (pid === undefined) return
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    // already gone
  }
}

/** Starts the fake for the rest of the scope; its instances' processes are killed with it. */
export const start = (options: FakeEc2Options): Effect.Effect<FakeEc2, never, import("effect").Scope.Scope> =>
  Effect.gen(function*() {
    const region = options.region ?? "us-west-2"
    const accessKeyId = options.accessKeyId ?? "AKIAFAKEFAKEFAKE0001"
    const subnets: Record<string, string> = { ...(options.subnets ?? { "subnet-0a": "vpc-0f", "subnet-0b": "vpc-0f" }) }
    const pageSize = options.pageSize ?? 2
    const bootDelayMs = options.bootDelayMs ?? 100
    const invisibleMs = options.invisibleMs ?? 0
    const requests: Array<RecordedRequest> = []
    const instances = new Map<string, FakeInstance>()
    const byToken = new Map<string, { key: string; id: string }>()
    const noCapacity = new Set<string>()
    const throttles = new Map<string, number>()
    const timers = new Set<NodeJS.Timeout>()
    let hang = 0
    let ipCounter = 10

    const later = (ms: number, f: () => void) => {
      const t = setTimeout(() => {
        timers.delete(t)
        f()
      }, ms)
      timers.add(t)
    }

    const newId = (prefix: string) => `${prefix}-${crypto.randomBytes(9).toString("hex").slice(0, 17)}`

    const boot = (inst: FakeInstance, runUserData: boolean) => {
      if (inst.state !== "pending") return
      inst.state = "running"
      if (!runUserData) return
      fs.mkdirSync(inst.dir, { recursive: true })
      const script = path.join(inst.dir, "user-data")
      fs.writeFileSync(script, inst.userData, { mode: 0o700 })
      const out = fs.openSync(path.join(inst.dir, "console.log"), "a")
      const child = spawn("/bin/bash", [script], {
        cwd: inst.dir,
        detached: true, // its own process group: the whole "machine"
        stdio: ["ignore", out, out],
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: inst.dir,
          BUILDOMAT_SANDBOX: inst.dir,
          ...options.env
        }
      })
      fs.closeSync(out)
      child.on("error", () => {})
      child.unref()
      inst.pid = child.pid
    }

    const terminate = (inst: FakeInstance, by: "api" | "out-of-band") => {
      if (inst.state === "terminated" || inst.state === "shutting-down") return
      inst.state = "shutting-down"
      inst.terminatedBy = by
      killGroup(inst.pid)
      later(100, () => {
        inst.state = "terminated"
      })
    }

    const instanceXml = (i: FakeInstance) =>
      `<item><instanceId>${i.id}</instanceId><imageId>${xmlEscape(i.imageId)}</imageId>` +
      `<instanceState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></instanceState>` +
      `<privateDnsName>ip-${i.privateIp.replace(/\./g, "-")}.${region}.compute.internal</privateDnsName><dnsName/>` +
      (i.keyName !== undefined ? `<keyName>${xmlEscape(i.keyName)}</keyName>` : "") +
      `<amiLaunchIndex>0</amiLaunchIndex><instanceType>${xmlEscape(i.instanceType)}</instanceType>` +
      `<launchTime>${i.launchTime.toISOString()}</launchTime>` +
      `<placement><availabilityZone>${region}a</availabilityZone><tenancy>default</tenancy></placement>` +
      `<subnetId>${i.subnetId}</subnetId><vpcId>${i.vpcId}</vpcId><privateIpAddress>${i.privateIp}</privateIpAddress>` +
      `<groupSet>${i.securityGroups.map((g) => `<item><groupId>${g}</groupId><groupName>${g}</groupName></item>`).join("")}</groupSet>` +
      `<tagSet>${
        [...i.tags].map(([k, v]) => `<item><key>${xmlEscape(k)}</key><value>${xmlEscape(v)}</value></item>`).join("")
      }</tagSet></item>`

    const ok = (action: string, inner: string) =>
      `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}"><requestId>${crypto.randomUUID()}</requestId>${inner}</${action}Response>`

    const reservation = (i: FakeInstance) =>
      `<item><reservationId>r-${i.id.slice(2)}</reservationId><ownerId>123456789012</ownerId><groupSet/>` +
      `<instancesSet>${instanceXml(i)}</instancesSet></item>`

    const visible = (i: FakeInstance) => !i.hidden

    const runInstances = (p: Record<string, string>) => {
      for (const k of ["MinCount", "MaxCount", "ImageId"]) {
        if (p[k] === undefined) throw clientError("MissingParameter", `The request must contain the parameter ${k}`)
      }
      if (p.MinCount !== "1" || p.MaxCount !== "1") {
        throw clientError("InvalidParameterValue", "this fake makes exactly one instance per request (MinCount=MaxCount=1)")
      }
      if (!/^ami-[0-9a-f]+$/.test(p.ImageId!)) throw clientError("InvalidAMIID.Malformed", `Invalid id: "${p.ImageId}"`)
      const instanceType = p.InstanceType ?? "m1.small"
      if (!/^[a-z0-9-]+\.[a-z0-9-]+$/.test(instanceType)) {
        throw clientError("InvalidParameterValue", `Invalid value '${instanceType}' for InstanceType.`)
      }
      const eni = p["NetworkInterface.1.DeviceIndex"] !== undefined || p["NetworkInterface.1.SubnetId"] !== undefined
      if (eni && (p.SubnetId !== undefined || p["SecurityGroupId.1"] !== undefined)) {
        throw new Ec2Fault(
          400,
          "InvalidParameterCombination",
          "Network interfaces and an instance-level subnet ID or security groups may not be specified on the same request"
        )
      }
      if (eni && p["NetworkInterface.1.DeviceIndex"] !== "0") {
        throw clientError("InvalidParameterValue", "The primary network interface must have device index 0")
      }
      const subnetId = eni ? p["NetworkInterface.1.SubnetId"] : p.SubnetId
      if (subnetId === undefined) throw clientError("MissingParameter", "this fake has no default VPC: give a subnet")
      const vpcId = subnets[subnetId]
      if (vpcId === undefined) throw clientError("InvalidSubnetID.NotFound", `The subnet ID '${subnetId}' does not exist`)
      const groups = eni ? list(p, "NetworkInterface.1.SecurityGroupId") : list(p, "SecurityGroupId")
      for (const g of groups) {
        if (!/^sg-[0-9a-f]+$/.test(g)) throw clientError("InvalidGroupId.Malformed", `Invalid id: "${g}"`)
      }
      let userData = ""
      if (p.UserData !== undefined) {
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(p.UserData)) {
          throw clientError("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
        }
        const raw = Buffer.from(p.UserData, "base64")
        if (raw.length > 16384) {
          throw clientError("InvalidParameterValue", `User data is limited to 16384 bytes; got ${raw.length}`)
        }
        userData = raw.toString("utf8")
      }
      const tags = new Map<string, string>()
      for (let n = 1; p[`TagSpecification.${n}.ResourceType`] !== undefined; n++) {
        const type = p[`TagSpecification.${n}.ResourceType`]!
        if (!["instance", "volume", "network-interface"].includes(type)) {
          throw clientError("InvalidParameterValue", `'${type}' is not a valid taggable resource type for this operation.`)
        }
        for (let t = 1; p[`TagSpecification.${n}.Tag.${t}.Key`] !== undefined; t++) {
          const key = p[`TagSpecification.${n}.Tag.${t}.Key`]!
          const value = p[`TagSpecification.${n}.Tag.${t}.Value`] ?? ""
          if (key.length > 128 || value.length > 256 || key.toLowerCase().startsWith("aws:")) {
            throw clientError("InvalidParameterValue", `Tag key or value invalid: ${key}`)
          }
          if (type === "instance") tags.set(key, value)
        }
      }
      if (p.ClientToken !== undefined) {
        const key = JSON.stringify(Object.entries(p).filter(([k]) => k !== "Action" && k !== "Version").sort())
        const prior = byToken.get(p.ClientToken)
        if (prior !== undefined) {
          if (prior.key !== key) {
            throw clientError("IdempotentParameterMismatch", "The client token you have provided is associated with a resource that has different parameters")
          }
          return ok("RunInstances", reservation(instances.get(prior.id)!).replace(/^<item>|<\/item>$/g, ""))
        }
      }
      if (noCapacity.has(subnetId)) {
        throw new Ec2Fault(
          500,
          "InsufficientInstanceCapacity",
          `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${region}a). Our system will be working on provisioning additional capacity.`
        )
      }
      const id = newId("i")
      ipCounter++
      const inst: FakeInstance = {
        id,
        imageId: p.ImageId!,
        instanceType,
        subnetId,
        vpcId,
        securityGroups: groups,
        keyName: p.KeyName,
        privateIp: `10.0.${Math.floor(ipCounter / 250)}.${ipCounter % 250}`,
        publicIp: p["NetworkInterface.1.AssociatePublicIpAddress"] === "true",
        launchTime: new Date(),
        tags,
        userData,
        params: p,
        dir: path.join(options.root, id),
        state: "pending",
        pid: undefined,
        terminatedBy: undefined,
        hidden: invisibleMs > 0
      }
      instances.set(id, inst)
      if (p.ClientToken !== undefined) {
        byToken.set(p.ClientToken, {
          key: JSON.stringify(Object.entries(p).filter(([k]) => k !== "Action" && k !== "Version").sort()),
          id
        })
      }
      if (invisibleMs > 0) later(invisibleMs, () => (inst.hidden = false))
      const runUserData = hang === 0
      if (hang > 0) hang--
      later(bootDelayMs, () => boot(inst, runUserData))
      return ok("RunInstances", reservation(inst).replace(/^<item>|<\/item>$/g, ""))
    }

    const describeInstances = (p: Record<string, string>) => {
      const ids = list(p, "InstanceId")
      if (ids.length > 0 && p.MaxResults !== undefined) {
        throw clientError("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
      }
      let max = 1000
      if (p.MaxResults !== undefined) {
        max = Number(p.MaxResults)
        if (!Number.isInteger(max) || max < 5 || max > 1000) {
          throw clientError("InvalidParameterValue", "Value for parameter maxResults is invalid: must be between 5 and 1000")
        }
      }
      const filters: Array<{ name: string; values: Array<string> }> = []
      for (let n = 1; p[`Filter.${n}.Name`] !== undefined; n++) {
        filters.push({ name: p[`Filter.${n}.Name`]!, values: list(p, `Filter.${n}.Value`) })
      }
      let found = [...instances.values()].filter(visible)
      if (ids.length > 0) {
        for (const id of ids) {
          if (!/^i-[0-9a-f]+$/.test(id)) throw clientError("InvalidInstanceID.Malformed", `Invalid id: "${id}"`)
          if (!found.some((i) => i.id === id)) {
            throw clientError("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`)
          }
        }
        found = found.filter((i) => ids.includes(i.id))
      }
      for (const f of filters) {
        const match = (i: FakeInstance): boolean => {
          switch (f.name) {
            case "tag-key":
              return f.values.some((v) => i.tags.has(v))
            case "vpc-id":
              return f.values.includes(i.vpcId)
            case "subnet-id":
              return f.values.includes(i.subnetId)
            case "instance-state-name":
              return f.values.includes(i.state)
            case "instance-id":
              return f.values.includes(i.id)
            default:
              if (f.name.startsWith("tag:")) return f.values.includes(i.tags.get(f.name.slice(4)) ?? "\u0000")
              throw clientError("InvalidParameterValue", `The filter '${f.name}' is invalid`)
          }
        }
        found = found.filter(match)
      }
      const offset = p.NextToken !== undefined ? Number(Buffer.from(p.NextToken, "base64").toString("utf8")) : 0
      if (!Number.isInteger(offset) || offset < 0) throw clientError("InvalidParameterValue", "Invalid NextToken")
      const size = Math.min(max, pageSize)
      const page = found.slice(offset, offset + size)
      const next = offset + size < found.length ? Buffer.from(String(offset + size)).toString("base64") : undefined
      return ok(
        "DescribeInstances",
        `<reservationSet>${page.map(reservation).join("")}</reservationSet>` +
          (next !== undefined ? `<nextToken>${next}</nextToken>` : "")
      )
    }

    const terminateInstances = (p: Record<string, string>) => {
      const ids = list(p, "InstanceId")
      if (ids.length === 0) throw clientError("MissingParameter", "The request must contain the parameter InstanceId")
      for (const id of ids) {
        const i = instances.get(id)
        if (i === undefined || !visible(i)) {
          throw clientError("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`)
        }
      }
      const items = ids.map((id) => {
        const i = instances.get(id)!
        const previous = i.state
        terminate(i, "api")
        return `<item><instanceId>${id}</instanceId>` +
          `<currentState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></currentState>` +
          `<previousState><code>${STATE_CODES[previous]}</code><name>${previous}</name></previousState></item>`
      })
      return ok("TerminateInstances", `<instancesSet>${items.join("")}</instancesSet>`)
    }

    const checkAuth = (req: http.IncomingMessage) => {
      const auth = req.headers.authorization ?? ""
      const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/
        .exec(auth)
      if (m === null || req.headers["x-amz-date"] === undefined) {
        throw new Ec2Fault(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
      }
      if (m[1] !== accessKeyId) throw new Ec2Fault(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
      if (m[3] !== region || m[4] !== "ec2") {
        throw new Ec2Fault(401, "AuthFailure", `Credential should be scoped to a valid region and service ec2, not '${m[3]}/${m[4]}'`)
      }
    }

    const handle = (req: http.IncomingMessage, body: string): { status: number; xml: string; action: string; params: Record<string, string>; code?: string } => {
      const params: Record<string, string> = {}
      for (const [k, v] of new URLSearchParams(body)) params[k] = v
      const action = params.Action ?? "?"
      try {
        if (req.method !== "POST" || req.url !== "/") throw clientError("InvalidAction", `${req.method} ${req.url} is not an EC2 request`)
        if (!(req.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded")) {
          throw clientError("InvalidParameterValue", "expected an application/x-www-form-urlencoded body")
        }
        checkAuth(req)
        if (params.Version !== "2016-11-15") throw clientError("InvalidParameterValue", `unsupported Version ${params.Version}`)
        const allowed = ALLOWED[action]
        if (allowed === undefined) throw clientError("InvalidAction", `The action ${action} is not valid for this web service.`)
        for (const k of Object.keys(params)) {
          if (k === "Action" || k === "Version") continue
          if (!allowed.some((r) => r.test(k))) throw clientError("UnknownParameter", `The parameter ${k} is not recognized`)
        }
        const left = throttles.get(action) ?? 0
        if (left > 0) {
          throttles.set(action, left - 1)
          throw new Ec2Fault(503, "RequestLimitExceeded", "Request limit exceeded.")
        }
        const xml = action === "RunInstances"
          ? runInstances(params)
          : action === "DescribeInstances"
          ? describeInstances(params)
          : terminateInstances(params)
        return { status: 200, xml, action, params }
      } catch (e) {
        const f = e instanceof Ec2Fault ? e : new Ec2Fault(500, "InternalError", String(e))
        const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${f.code}</Code><Message>${
          xmlEscape(f.message)
        }</Message></Error></Errors><RequestID>${crypto.randomUUID()}</RequestID></Response>`
        return { status: f.status, xml, action, params, code: f.code }
      }
    }

    const server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const r = handle(req, Buffer.concat(chunks).toString("utf8"))
        requests.push({ action: r.action, params: r.params, status: r.status, code: r.code })
        res.writeHead(r.status, { "content-type": "text/xml;charset=UTF-8", "x-amzn-requestid": crypto.randomUUID() })
        res.end(r.xml)
      })
    })

    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as { port: number }).port)))
      }),
      () =>
        Effect.gen(function*() {
          for (const t of timers) clearTimeout(t)
          for (const i of instances.values()) killGroup(i.pid)
          // Wait for the "machines" to be gone, so that their directories can be removed.
          const deadline = Date.now() + 5_000
          while ([...instances.values()].some((i) => i.pid !== undefined && alive(i.pid)) && Date.now() < deadline) {
            yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
          }
          server.closeAllConnections()
          yield* Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
          })
        })
    )

    return {
      url: `http://127.0.0.1:${port}`,
      region,
      accessKeyId,
      requests,
      instances,
      noCapacity,
      throttle: (action, times) => throttles.set(action, (throttles.get(action) ?? 0) + times),
      hangNextBoots: (n) => (hang += n),
      seed: (tags, state = "running") => {
        const id = newId("i")
        const inst: FakeInstance = {
          id,
          imageId: "ami-0000seed",
          instanceType: "t3.nano",
          subnetId: Object.keys(subnets)[0]!,
          vpcId: Object.values(subnets)[0]!,
          securityGroups: [],
          keyName: undefined,
          privateIp: `10.9.0.${instances.size + 1}`,
          publicIp: false,
          launchTime: new Date(),
          tags: new Map(Object.entries(tags)),
          userData: "",
          params: {},
          dir: path.join(options.root, id),
          state,
          pid: undefined,
          terminatedBy: undefined,
          hidden: false
        }
        instances.set(id, inst)
        return inst
      },
      terminateOutOfBand: (id) => {
        const i = instances.get(id)
        if (i !== undefined) terminate(i, "out-of-band")
      },
      consoleOutput: (id) => {
        try {
          return fs.readFileSync(path.join(options.root, id, "console.log"), "utf8")
        } catch {
          return ""
        }
      },
      calls: (action) => requests.filter((r) => r.action === action)
    } satisfies FakeEc2
  })
