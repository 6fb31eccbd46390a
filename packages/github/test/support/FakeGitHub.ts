/**
 * A GitHub on loopback, for tests: the REST endpoints the App uses, served from real git
 * repositories (bare, on disk), with GitHub's authentication rules (an RS256 App JWT for
 * `/app/...`, installation tokens that expire and are scoped to repositories and permissions),
 * smart HTTP git clones (`git http-backend`) that demand such a token, and check suites and
 * check runs kept in memory with every update recorded. Every API request is checked against
 * GitHub's OpenAPI description; the problems are collected in `violations`.
 */
import { Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as NodePath from "node:path"
import { checkRequest, checkStatus } from "./openapi.js"

export interface Account {
  readonly id: number
  readonly login: string
  readonly type: "User" | "Organization" | "Bot"
}

export interface FakeRepo {
  readonly id: number
  readonly owner: Account
  readonly name: string
  readonly visibility: "public" | "private"
  readonly defaultBranch: string
  readonly installation: number
  /** The bare repository: `<gitRoot>/<owner>/<name>.git`. */
  readonly gitDir: string
}

export interface Recorded {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly body: any
  status: number
  readonly auth: string
}

export interface CheckRun {
  readonly id: number
  readonly repo: number
  suite: number
  name: string
  head_sha: string
  external_id: string | null
  status: string
  conclusion: string | null
  details_url: string | null
  started_at: string | null
  completed_at: string | null
  output: { title?: string; summary?: string; text?: string } | null
  actions: Array<{ identifier: string; label: string; description: string }>
  /** Every body sent for this run, create first. */
  readonly history: Array<any>
}

export interface CheckSuite {
  readonly id: number
  readonly repo: number
  readonly head_sha: string
  readonly head_branch: string | null
  readonly app: number
}

interface Token {
  readonly installation: number
  readonly expiresAt: number
  readonly repositoryIds: ReadonlyArray<number> | undefined
  readonly permissions: Record<string, string>
}

export interface FakeGitHubOptions {
  readonly appId: number
  readonly appSlug?: string
  readonly publicKey: string
  readonly installations: ReadonlyArray<{ readonly id: number; readonly account: Account }>
  readonly repos: ReadonlyArray<FakeRepo>
  readonly gitRoot: string
  readonly orgMembers?: Record<string, ReadonlyArray<string>>
  /** `"owner/repo"` → login → permission (admin, write, read). */
  readonly collaborators?: Record<string, Record<string, string>>
  /** How long installation tokens last, in ms (GitHub: one hour). */
  readonly tokenLifetimeMs?: number
}

const INSTALL_PERMISSIONS = { checks: "write", contents: "read", metadata: "read", members: "read", pull_requests: "read" }

const b64url = (s: string) => Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64")

export const start = (opts: FakeGitHubOptions) =>
  Effect.acquireRelease(
    Effect.async<FakeGitHub>((resume) => {
      const fake = new FakeGitHub(opts)
      fake.server.listen(0, "127.0.0.1", () => resume(Effect.succeed(fake)))
    }),
    (fake) => Effect.async<void>((resume) => {
      fake.server.closeAllConnections()
      fake.server.close(() => resume(Effect.void))
    })
  )

export class FakeGitHub {
  readonly server: Http.Server
  readonly calls: Array<Recorded> = []
  readonly violations: Array<string> = []
  readonly runs = new Map<number, CheckRun>()
  readonly suites = new Map<number, CheckSuite>()
  readonly tokens = new Map<string, Token>()
  /** Tokens issued, in order, with what they were for. */
  readonly issued: Array<{ token: string; installation: number; repositoryIds: ReadonlyArray<number> | undefined; permissions: Record<string, string> }> = []
  /** Clones served: the token's repositories and who asked. */
  readonly clones: Array<{ repo: string; ok: boolean }> = []
  private nextId = 1000
  private faults: Array<{ method: string; path: RegExp; status: number; headers: Record<string, string>; body: unknown; count: number }> = []

  constructor(readonly opts: FakeGitHubOptions) {
    this.server = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        try {
          this.route(req, res, Buffer.concat(chunks))
        } catch (e) {
          this.violations.push(`fake GitHub crashed on ${req.method} ${req.url}: ${(e as Error).stack}`)
          res.writeHead(500).end()
        }
      })
    })
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  /** The clone URL template for the App: git smart HTTP on this server, token in the URL. */
  get cloneUrl(): string {
    return `http://x-access-token:{token}@127.0.0.1:${(this.server.address() as AddressInfo).port}/git/{owner}/{repo}.git`
  }

  /** Makes the next `count` matching requests fail with `status`. */
  failNext(method: string, path: RegExp, status: number, headers: Record<string, string> = {}, body: unknown = { message: "injected" }, count = 1) {
    this.faults.push({ method, path, status, headers, body, count })
  }

  runsNamed(name: string): Array<CheckRun> {
    return [...this.runs.values()].filter((r) => r.name === name)
  }

  private send(res: Http.ServerResponse, rec: Recorded | undefined, status: number, body?: unknown, headers: Record<string, string> = {}) {
    if (rec !== undefined) rec.status = status
    if (body === undefined) {
      res.writeHead(status, headers).end()
    } else {
      const text = JSON.stringify(body)
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers }).end(text)
    }
  }

  private verifyJwt(header: string | undefined): string | undefined {
    const m = /^bearer (.+)$/i.exec(header ?? "")
    if (m === null) return "no bearer JWT"
    const parts = m[1]!.split(".")
    if (parts.length !== 3) return "not a JWT"
    const [h, p, s] = parts as [string, string, string]
    const head = JSON.parse(b64url(h).toString("utf8"))
    if (head.alg !== "RS256") return `JWT alg ${head.alg}`
    const ok = Crypto.verify("RSA-SHA256", Buffer.from(`${h}.${p}`), this.opts.publicKey, b64url(s))
    if (!ok) return "JWT signature does not verify"
    const claims = JSON.parse(b64url(p).toString("utf8"))
    const now = Math.floor(Date.now() / 1000)
    if (String(claims.iss) !== String(this.opts.appId)) return `JWT iss ${claims.iss}`
    if (typeof claims.exp !== "number" || claims.exp <= now) return "JWT expired"
    if (claims.exp - claims.iat > 660) return "JWT lives longer than 10 minutes"
    if (claims.iat > now + 60) return "JWT issued in the future"
    return undefined
  }

  private token(header: string | undefined): Token | string {
    const m = /^(?:token|bearer) (.+)$/i.exec(header ?? "")
    if (m === null) return "no token"
    const t = this.tokens.get(m[1]!)
    if (t === undefined) return "unknown token"
    if (t.expiresAt <= Date.now()) return "expired token"
    return t
  }

  private repo(owner: string, name: string): FakeRepo | undefined {
    return this.opts.repos.find((r) => r.owner.login.toLowerCase() === owner.toLowerCase() && r.name.toLowerCase() === name.toLowerCase())
  }

  private mayRead(t: Token, r: FakeRepo, permission: string, level: "read" | "write"): boolean {
    if (t.installation !== r.installation) return false
    if (t.repositoryIds !== undefined && !t.repositoryIds.includes(r.id)) return false
    const have = t.permissions[permission]
    return have === "write" || (level === "read" && have === "read")
  }

  private git(dir: string, args: Array<string>): string {
    return execFileSync("git", ["--git-dir", dir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  }

  private gitBuffer(dir: string, args: Array<string>): Buffer {
    return execFileSync("git", ["--git-dir", dir, ...args], { stdio: ["ignore", "pipe", "pipe"] })
  }

  private repoJson(r: FakeRepo) {
    return {
      id: r.id,
      node_id: `R_${r.id}`,
      name: r.name,
      full_name: `${r.owner.login}/${r.name}`,
      owner: { login: r.owner.login, id: r.owner.id, type: r.owner.type },
      private: r.visibility === "private",
      visibility: r.visibility,
      default_branch: r.defaultBranch
    }
  }

  private runJson(run: CheckRun) {
    return {
      id: run.id,
      name: run.name,
      head_sha: run.head_sha,
      external_id: run.external_id,
      status: run.status,
      conclusion: run.conclusion,
      details_url: run.details_url,
      started_at: run.started_at,
      completed_at: run.completed_at,
      output: { title: run.output?.title ?? null, summary: run.output?.summary ?? null, text: run.output?.text ?? null, annotations_count: 0 },
      check_suite: { id: run.suite },
      app: { id: this.opts.appId }
    }
  }

  private suiteFor(repo: number, sha: string, branch: string | null): CheckSuite {
    const found = [...this.suites.values()].find((s) => s.repo === repo && s.head_sha === sha && s.app === this.opts.appId)
    if (found !== undefined) return found
    const s: CheckSuite = { id: this.nextId++, repo, head_sha: sha, head_branch: branch, app: this.opts.appId }
    this.suites.set(s.id, s)
    return s
  }

  /** Creates the suite GitHub makes by itself when a branch is pushed (before `check_suite.requested`). */
  pushSuite(repo: FakeRepo, sha: string, branch: string): CheckSuite {
    return this.suiteFor(repo.id, sha, branch)
  }

  private suiteJson(s: CheckSuite) {
    return { id: s.id, head_sha: s.head_sha, head_branch: s.head_branch, status: "queued", conclusion: null, app: { id: s.app } }
  }

  private route(req: Http.IncomingMessage, res: Http.ServerResponse, raw: Buffer) {
    const url = new URL(req.url ?? "/", "http://github.test")
    const method = req.method ?? "GET"
    if (url.pathname.startsWith("/git/")) return this.gitHttp(req, res, url, raw)

    let body: any
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString("utf8"))
      } catch {
        this.violations.push(`${method} ${url.pathname}: the body is not JSON`)
      }
    }
    const rec: Recorded = { method, path: url.pathname, query: url.search, body, status: 0, auth: (req.headers.authorization ?? "").split(" ")[0] ?? "" }
    this.calls.push(rec)
    for (const v of checkRequest(method, url.pathname, url.searchParams, body)) this.violations.push(v)
    if (req.headers["user-agent"] === undefined) this.violations.push(`${method} ${url.pathname}: no User-Agent (GitHub requires one)`)

    const fault = this.faults.find((f) => f.method === method && f.path.test(url.pathname) && f.count > 0)
    if (fault !== undefined) {
      fault.count--
      return this.send(res, rec, fault.status, fault.body, fault.headers)
    }
    const reply = (status: number, b?: unknown, headers?: Record<string, string>) => {
      for (const v of checkStatus(method, url.pathname, status)) this.violations.push(v)
      this.send(res, rec, status, b, headers)
    }
    const p = url.pathname
    let m: RegExpExecArray | null

    // ---------------- App (JWT) ----------------
    if (p.startsWith("/app")) {
      const problem = this.verifyJwt(req.headers.authorization)
      if (problem !== undefined) return reply(401, { message: `A JSON web token could not be decoded (${problem})` })
      if (method === "GET" && p === "/app") {
        return reply(200, { id: this.opts.appId, slug: this.opts.appSlug ?? "buildomat-test", name: "buildomat test", owner: { login: "buildomat" } })
      }
      if (method === "GET" && (m = /^\/app\/installations\/(\d+)$/.exec(p))) {
        const inst = this.opts.installations.find((i) => i.id === Number(m![1]))
        if (inst === undefined) return reply(404, { message: "Not Found" })
        return reply(200, { id: inst.id, account: { login: inst.account.login, id: inst.account.id, type: inst.account.type }, app_id: this.opts.appId })
      }
      if (method === "POST" && (m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(p))) {
        const inst = this.opts.installations.find((i) => i.id === Number(m![1]))
        if (inst === undefined) return reply(404, { message: "Not Found" })
        const ids: Array<number> | undefined = body?.repository_ids
        if (ids !== undefined) {
          for (const id of ids) {
            const r = this.opts.repos.find((x) => x.id === id)
            if (r === undefined || r.installation !== inst.id) return reply(422, { message: `repository ${id} is not part of the installation` })
          }
        }
        const permissions = body?.permissions ?? INSTALL_PERMISSIONS
        for (const [k, v] of Object.entries(permissions)) {
          const have = (INSTALL_PERMISSIONS as Record<string, string>)[k]
          if (have === undefined || (v === "write" && have !== "write")) return reply(422, { message: `permission ${k}:${v} is not granted` })
        }
        const token = `ghs_${Crypto.randomBytes(18).toString("base64url")}`
        const expiresAt = Date.now() + (this.opts.tokenLifetimeMs ?? 3600_000)
        this.tokens.set(token, { installation: inst.id, expiresAt, repositoryIds: ids, permissions })
        this.issued.push({ token, installation: inst.id, repositoryIds: ids, permissions })
        return reply(201, {
          token,
          expires_at: new Date(expiresAt).toISOString().replace(/\.\d+Z$/, "Z"),
          permissions,
          repository_selection: ids === undefined ? "all" : "selected"
        })
      }
      return reply(404, { message: "Not Found" })
    }

    // ---------------- everything else: an installation token ----------------
    const t = this.token(req.headers.authorization)
    if (typeof t === "string") return reply(401, { message: `Bad credentials (${t})` })

    if (method === "GET" && (m = /^\/orgs\/([^/]+)\/members\/([^/]+)$/.exec(p))) {
      if (t.permissions["members"] === undefined) return reply(404, { message: "Not Found" })
      const members = this.opts.orgMembers?.[decodeURIComponent(m[1]!)]
      if (members === undefined) return reply(404, { message: "Not Found" })
      return members.includes(decodeURIComponent(m[2]!)) ? reply(204) : reply(404, { message: "Not Found" })
    }

    m = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(p)
    if (m === null) return reply(404, { message: "Not Found" })
    const r = this.repo(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!))
    const rest = m[3] ?? ""
    if (r === undefined || !this.mayRead(t, r, "metadata", "read") && !this.mayRead(t, r, "contents", "read")) {
      return reply(404, { message: "Not Found" })
    }

    if (method === "GET" && rest === "") return reply(200, this.repoJson(r))

    if (method === "GET" && rest === "/commits") {
      if (!this.mayRead(t, r, "contents", "read")) return reply(404, { message: "Not Found" })
      const sha = this.git(r.gitDir, ["rev-parse", `refs/heads/${r.defaultBranch}`]).trim()
      return reply(200, [{ sha, commit: { message: this.git(r.gitDir, ["log", "-1", "--format=%s", sha]).trim() } }])
    }

    if (method === "GET" && (m = /^\/contents\/(.+)$/.exec(rest))) {
      if (!this.mayRead(t, r, "contents", "read")) return reply(404, { message: "Not Found" })
      const path = decodeURIComponent(m[1]!).replace(/\/+$/, "")
      const ref = url.searchParams.get("ref") ?? r.defaultBranch
      let type: string
      try {
        type = this.git(r.gitDir, ["cat-file", "-t", `${ref}:${path}`]).trim()
      } catch {
        return reply(404, { message: "Not Found" })
      }
      if (type === "tree") {
        const entries = this.git(r.gitDir, ["ls-tree", "-l", `${ref}:${path}`]).trim().split("\n").filter((l) => l !== "")
        return reply(200, entries.map((l) => {
          const [meta, name] = l.split("\t") as [string, string]
          const [, kind, sha, size] = meta.split(/\s+/) as [string, string, string, string]
          return { type: kind === "tree" ? "dir" : "file", name, path: `${path}/${name}`, sha, size: kind === "tree" ? 0 : Number(size) }
        }))
      }
      const content = this.gitBuffer(r.gitDir, ["cat-file", "blob", `${ref}:${path}`])
      return reply(200, {
        type: "file",
        encoding: "base64",
        name: NodePath.posix.basename(path),
        path,
        size: content.length,
        sha: this.git(r.gitDir, ["rev-parse", `${ref}:${path}`]).trim(),
        content: content.toString("base64").replace(/(.{60})/g, "$1\n")
      })
    }

    if (method === "GET" && (m = /^\/collaborators\/([^/]+)\/permission$/.exec(rest))) {
      const login = decodeURIComponent(m[1]!)
      const perm = this.opts.collaborators?.[`${r.owner.login}/${r.name}`]?.[login] ?? (login === r.owner.login ? "admin" : undefined)
      if (perm === undefined) return reply(404, { message: `${login} is not a user` })
      return reply(200, { permission: perm, role_name: perm, user: { login } })
    }

    if (method === "GET" && (m = /^\/commits\/([^/]+)\/check-suites$/.exec(rest))) {
      const appId = url.searchParams.get("app_id")
      const list = [...this.suites.values()].filter((s) => s.repo === r.id && s.head_sha === m![1] && (appId === null || String(s.app) === appId))
      return reply(200, { total_count: list.length, check_suites: list.map((s) => this.suiteJson(s)) })
    }

    if (method === "POST" && rest === "/check-suites") {
      if (!this.mayRead(t, r, "checks", "write")) return reply(403, { message: "Resource not accessible by integration" })
      const s: CheckSuite = { id: this.nextId++, repo: r.id, head_sha: body.head_sha, head_branch: null, app: this.opts.appId }
      this.suites.set(s.id, s)
      return reply(201, this.suiteJson(s))
    }

    if (method === "GET" && (m = /^\/check-suites\/(\d+)\/check-runs$/.exec(rest))) {
      const perPage = Number(url.searchParams.get("per_page") ?? "30")
      const page = Number(url.searchParams.get("page") ?? "1")
      const all = [...this.runs.values()].filter((x) => x.suite === Number(m![1]))
      const list = all.slice((page - 1) * perPage, page * perPage)
      return reply(200, { total_count: all.length, check_runs: list.map((x) => this.runJson(x)) })
    }

    if (method === "POST" && rest === "/check-runs") {
      if (!this.mayRead(t, r, "checks", "write")) return reply(403, { message: "Resource not accessible by integration" })
      const suite = this.suiteFor(r.id, body.head_sha, null)
      const run: CheckRun = {
        id: this.nextId++,
        repo: r.id,
        suite: suite.id,
        name: body.name,
        head_sha: body.head_sha,
        external_id: body.external_id ?? null,
        status: body.conclusion !== undefined ? "completed" : body.status ?? "queued",
        conclusion: body.conclusion ?? null,
        details_url: body.details_url ?? null,
        started_at: body.started_at ?? null,
        completed_at: body.completed_at ?? null,
        output: body.output ?? null,
        actions: body.actions ?? [],
        history: [body]
      }
      this.runs.set(run.id, run)
      return reply(201, this.runJson(run))
    }

    if (method === "PATCH" && (m = /^\/check-runs\/(\d+)$/.exec(rest))) {
      if (!this.mayRead(t, r, "checks", "write")) return reply(403, { message: "Resource not accessible by integration" })
      const run = this.runs.get(Number(m[1]))
      if (run === undefined || run.repo !== r.id) return reply(404, { message: "Not Found" })
      run.history.push(body)
      if (body.status !== undefined) run.status = body.status
      if (body.conclusion !== undefined) {
        run.conclusion = body.conclusion
        run.status = "completed"
      }
      if (body.details_url !== undefined) run.details_url = body.details_url
      if (body.started_at !== undefined) run.started_at = body.started_at
      if (body.completed_at !== undefined) run.completed_at = body.completed_at
      if (body.output !== undefined) run.output = body.output
      if (body.actions !== undefined) run.actions = body.actions
      return reply(200, this.runJson(run))
    }

    return reply(404, { message: "Not Found" })
  }

  /** Git smart HTTP, through `git http-backend`, for clones with an installation token. */
  private gitHttp(req: Http.IncomingMessage, res: Http.ServerResponse, url: URL, raw: Buffer) {
    const m = /^\/git\/([^/]+)\/([^/]+)\.git(\/.*)$/.exec(url.pathname)
    const r = m === null ? undefined : this.repo(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!))
    const auth = /^Basic (.+)$/i.exec(req.headers.authorization ?? "")
    const [user, password] = auth === null ? [] : Buffer.from(auth[1]!, "base64").toString("utf8").split(":")
    const t = password === undefined ? undefined : this.tokens.get(password)
    if (r === undefined || auth === null || user !== "x-access-token" || t === undefined || t.expiresAt <= Date.now() || !this.mayRead(t, r, "contents", "read")) {
      if (r !== undefined && auth !== null) this.clones.push({ repo: `${r.owner.login}/${r.name}`, ok: false })
      res.writeHead(401, { "www-authenticate": "Basic realm=\"GitHub\"" }).end()
      return
    }
    if (url.pathname.endsWith("/info/refs")) this.clones.push({ repo: `${r.owner.login}/${r.name}`, ok: true })
    const child = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: this.opts.gitRoot,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: `/${r.owner.login}/${r.name}.git${m![3]}`,
        REQUEST_METHOD: req.method ?? "GET",
        QUERY_STRING: url.search.replace(/^\?/, ""),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        CONTENT_LENGTH: String(raw.length),
        REMOTE_USER: "x-access-token",
        REMOTE_ADDR: "127.0.0.1",
        ...(req.headers["git-protocol"] !== undefined ? { GIT_PROTOCOL: String(req.headers["git-protocol"]) } : {}),
        ...(req.headers["content-encoding"] !== undefined ? { HTTP_CONTENT_ENCODING: String(req.headers["content-encoding"]) } : {})
      }
    })
    const out: Array<Buffer> = []
    child.stdout.on("data", (c: Buffer) => out.push(c))
    child.stderr.on("data", () => undefined)
    // A GET's empty body may reach a git that has already exited: EPIPE there is not an error.
    child.stdin.on("error", () => undefined)
    child.on("close", () => {
      const all = Buffer.concat(out)
      let split = all.indexOf("\r\n\r\n")
      let sep = 4
      if (split < 0) {
        split = all.indexOf("\n\n")
        sep = 2
      }
      const head = all.subarray(0, split).toString("utf8")
      const headers: Record<string, string> = {}
      let status = 200
      for (const line of head.split(/\r?\n/)) {
        const i = line.indexOf(":")
        if (i < 0) continue
        const k = line.slice(0, i).trim()
        const v = line.slice(i + 1).trim()
        if (k.toLowerCase() === "status") status = Number(v.split(" ")[0])
        else headers[k] = v
      }
      res.writeHead(status, headers).end(all.subarray(split + sep))
    })
    child.stdin.end(raw)
  }
}
