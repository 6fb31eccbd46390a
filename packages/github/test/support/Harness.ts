/**
 * The world a GitHub App test runs in, all real and all on loopback: a git repository on disk,
 * the fake GitHub serving it (checked against GitHub's OpenAPI description), the core server
 * with the local provider starting real agents, and the App itself (`GitHubApp.layer`) with its
 * own SQLite file. Webhook payloads are GitHub's own examples (`@octokit/webhooks-examples`),
 * re-pointed at the test's repository and commits, and signed here.
 */
// Lets TypeScript name `WorkerProvider.ProviderError` (the local provider layer can fail) in `world`'s type.
import type { WorkerProvider as _WorkerProvider } from "@buildomat/core"
import { Testing } from "@buildomat/core/server"
import { GitHubApp } from "@buildomat/github"
import type { Config } from "@buildomat/github"
import { LocalProvider } from "@buildomat/provider-local"
import { sign } from "@octokit/webhooks-methods"
import { Context, Duration, Effect, Layer, Scope } from "effect"
import { execFileSync } from "node:child_process"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import * as Fake from "./FakeGitHub.js"

export const APP_ID = 29310
export const INSTALL = 1
export const SECRET = "test webhook secret: it is long enough"
export const ADMIN = "github-test-admin-token-0123456789"
export const OWNER: Fake.Account = { id: 21031067, login: "Codertocat", type: "User" }
export const OUTSIDER: Fake.Account = { id: 5551212, login: "outsider", type: "User" }
export const REPO_ID = 186853002

const require = createRequire(import.meta.url)
const examples: Array<{ name: string; examples: Array<any> }> = require("@octokit/webhooks-examples")

/** A deep copy of the first example payload of `event` that satisfies `pick`. */
export const example = (event: string, pick: (p: any) => boolean = () => true): any => {
  const def = examples.find((e) => e.name === event)
  const found = def?.examples.find(pick)
  if (found === undefined) throw new Error(`no example ${event} payload matches`)
  return structuredClone(found)
}

/** Runs git with a fixed identity. */
export const git = (cwd: string, ...args: Array<string>) =>
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=master", ...args], {
    cwd,
    encoding: "utf8"
  }).trim()

/** A repository: a work tree to commit in, and the bare copy GitHub serves. */
export interface TestRepo {
  readonly work: string
  readonly bare: string
  /** Writes files (path → content; null deletes), commits, pushes to `ref`; the new sha. */
  readonly commit: (files: Record<string, string | null>, message: string, ref?: string) => string
}

export const makeRepo = (root: string, owner: string, name: string): TestRepo => {
  const work = NodePath.join(root, "work", owner, name)
  const bare = NodePath.join(root, "git", owner, `${name}.git`)
  NodeFs.mkdirSync(work, { recursive: true })
  NodeFs.mkdirSync(NodePath.dirname(bare), { recursive: true })
  git(work, "init", "-q")
  execFileSync("git", ["init", "-q", "--bare", bare])
  git(work, "remote", "add", "origin", bare)
  return {
    work,
    bare,
    commit: (files, message, ref = "refs/heads/master") => {
      for (const [p, content] of Object.entries(files)) {
        const f = NodePath.join(work, p)
        if (content === null) {
          NodeFs.rmSync(f, { force: true })
        } else {
          NodeFs.mkdirSync(NodePath.dirname(f), { recursive: true })
          NodeFs.writeFileSync(f, content)
        }
      }
      git(work, "add", "-A")
      git(work, "commit", "-q", "--allow-empty", "-m", message)
      const sha = git(work, "rev-parse", "HEAD")
      git(work, "push", "-q", "-f", "origin", `HEAD:${ref}`)
      return sha
    }
  }
}

export interface World {
  readonly dir: string
  readonly fake: Fake.FakeGitHub
  readonly repo: TestRepo
  readonly repoInfo: Fake.FakeRepo
  readonly extraRepos: Record<string, TestRepo>
  readonly coreUrl: string
  readonly appUrl: string
  readonly dbPath: string
  /** Signs and POSTs a delivery; the HTTP status and body. */
  readonly deliver: (event: string, payload: unknown, opts?: { readonly uuid?: string; readonly signature?: string; readonly body?: string }) => Effect.Effect<{ status: number; json: any }>
  /** Polls `f` every 100 ms until it returns a value other than undefined, for up to `timeout`. */
  readonly until: <A>(what: string, f: () => A | undefined | Promise<A | undefined>, timeout?: Duration.DurationInput) => Effect.Effect<A>
}

export interface WorldOptions {
  /** Start core with real agents (the e2e tests), or point the App at a core that is not there. */
  readonly core?: boolean
  readonly orgMembers?: Record<string, ReadonlyArray<string>>
  readonly collaborators?: Record<string, Record<string, string>>
  readonly tokenLifetimeMs?: number
  readonly tailRedrawMs?: number
  readonly config?: Partial<Config.GitHubAppConfig>
  readonly visibility?: "public" | "private"
  /** More repositories of the same owner and installation (name → id). */
  readonly extraRepos?: Record<string, number>
}

/** Builds the world in the current scope. */
export const world = (opts: WorldOptions = {}) =>
  Effect.gen(function*() {
    const dir = yield* Testing.tempDirectory("bmat-gh-")
    const keys = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    const privateKey = keys.privateKey.export({ type: "pkcs8", format: "pem" }).toString()
    const publicKey = keys.publicKey.export({ type: "spki", format: "pem" }).toString()
    const repo = makeRepo(dir, OWNER.login, "Hello-World")
    const repoInfo: Fake.FakeRepo = {
      id: REPO_ID,
      owner: OWNER,
      name: "Hello-World",
      visibility: opts.visibility ?? "public",
      defaultBranch: "master",
      installation: INSTALL,
      gitDir: repo.bare
    }
    const extra = Object.entries(opts.extraRepos ?? {}).map(([name, id]) => {
      const r = makeRepo(dir, OWNER.login, name)
      return { repo: r, info: { ...repoInfo, id, name, gitDir: r.bare } satisfies Fake.FakeRepo }
    })
    const fake = yield* Fake.start({
      appId: APP_ID,
      publicKey,
      installations: [{ id: INSTALL, account: OWNER }],
      repos: [repoInfo, ...extra.map((e) => e.info)],
      gitRoot: NodePath.join(dir, "git"),
      ...(opts.orgMembers !== undefined ? { orgMembers: opts.orgMembers } : {}),
      ...(opts.collaborators !== undefined ? { collaborators: opts.collaborators } : {}),
      ...(opts.tokenLifetimeMs !== undefined ? { tokenLifetimeMs: opts.tokenLifetimeMs } : {})
    })
    const coreUrl = opts.core === true
      ? yield* Testing.serve(
        { dataDir: NodePath.join(dir, "core"), adminToken: ADMIN },
        LocalProvider.layer({ scratchRoot: NodePath.join(dir, "workers"), limit: 4, killGraceMs: 500 })
      )
      : "http://127.0.0.1:9"
    const dbPath = NodePath.join(dir, "app", "data.sqlite3")
    const config: Config.GitHubAppConfig = {
      appId: APP_ID,
      privateKey,
      webhookSecret: SECRET,
      host: "127.0.0.1",
      port: 0,
      databasePath: dbPath,
      confroot: ".github/buildomat",
      allowOwners: [OWNER.login],
      apiUrl: fake.url,
      cloneUrl: fake.cloneUrl,
      workerSetup: "local",
      tokenDelivery: "broker",
      core: { url: coreUrl, token: ADMIN, identity: "repo_users" },
      pollIntervalMs: 250,
      tailRedrawMs: opts.tailRedrawMs ?? 0,
      writeIntervalMs: 0,
      retryAfterBaseMs: 10,
      tokenRefreshMarginMs: 5 * 60 * 1000,
      ...opts.config
    }
    const scope = yield* Scope.Scope
    const ctx = yield* Layer.buildWithScope(GitHubApp.layer(config), scope)
    const appUrl = Context.get(ctx, GitHubApp.AppUrl)

    const deliver: World["deliver"] = (event, payload, o = {}) =>
      Effect.promise(async () => {
        const body = o.body ?? JSON.stringify(payload)
        const signature = o.signature ?? (await sign(SECRET, body))
        const res = await fetch(`${appUrl}/webhook`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": o.uuid ?? Crypto.randomUUID(),
            "x-github-hook-id": "1",
            ...(signature !== "" ? { "x-hub-signature-256": signature } : {})
          },
          body
        })
        const text = await res.text()
        let json: any
        try {
          json = JSON.parse(text)
        } catch {
          json = text
        }
        return { status: res.status, json }
      })

    const until: World["until"] = (what, f, timeout = "45 seconds") =>
      Effect.gen(function*() {
        const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
        for (;;) {
          const v = yield* Effect.promise(async () => await f())
          if (v !== undefined) return v
          if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
          yield* Effect.promise(() => new Promise((r) => setTimeout(r, 100)))
        }
      })

    const extraRepos = Object.fromEntries(extra.map((e) => [e.info.name, e.repo]))
    return { dir, fake, repo, repoInfo, extraRepos, coreUrl, appUrl, dbPath, deliver, until } satisfies World
  })

/** The payloads of a push to master, as GitHub sends them to an App: `push`, then `check_suite.requested`. */
export const pushPayloads = (w: World, sha: string, before: string) => {
  const push = example("push", (p) => p.ref === "refs/heads/master" && p.installation !== undefined)
  push.after = sha
  push.before = before
  push.head_commit = { ...push.head_commit, id: sha }
  push.installation = { ...push.installation, id: INSTALL }
  push.repository.visibility = w.repoInfo.visibility
  push.repository.private = w.repoInfo.visibility === "private"
  // GitHub creates the App's suite for the new head before it tells the App.
  const suite = w.fake.pushSuite(w.repoInfo, sha, "master")
  const requested = example("check_suite", (p) => p.action === "requested")
  requested.check_suite.id = suite.id
  requested.check_suite.head_sha = sha
  requested.check_suite.before = before
  requested.check_suite.after = sha
  requested.check_suite.head_branch = "master"
  requested.check_suite.app.id = APP_ID
  requested.installation = { ...requested.installation, id: INSTALL }
  requested.repository.visibility = w.repoInfo.visibility
  requested.repository.private = w.repoInfo.visibility === "private"
  return { push, requested, suite }
}

/** The repository object of the example payloads (Codertocat/Hello-World). */
export const baseRepository = () => example("push", (p) => p.ref === "refs/heads/master" && p.installation !== undefined).repository

/** A user object in the shape of the examples' `sender`. */
export const senderOf = (a: Fake.Account) => ({ ...example("push").sender, login: a.login, id: a.id, type: a.type, node_id: `U_${a.id}` })

/** A `check_run` delivery (`rerequested`, or `requested_action` with `identifier`) about one of our runs. */
export const checkRunPayload = (run: Fake.CheckRun, sender: Fake.Account, action: "rerequested" | "requested_action", identifier?: string) => {
  const p = example("check_run", (x) => x.action === "requested_action")
  p.action = action
  p.installation = { id: INSTALL }
  p.repository = baseRepository()
  p.sender = senderOf(sender)
  p.check_run.id = run.id
  p.check_run.name = run.name
  p.check_run.head_sha = run.head_sha
  p.check_run.external_id = run.external_id
  p.check_run.app.id = APP_ID
  p.check_run.check_suite.id = run.suite
  if (action === "requested_action") p.requested_action = { identifier }
  else delete p.requested_action
  return p
}

/** A `pull_request.opened` delivery for `sha`, from `author`'s fork. */
export const pullRequestPayload = (sha: string, author: Fake.Account, action: "opened" | "synchronize" = "opened") => {
  const p = example("pull_request", (x) => x.action === "opened" && x.installation !== undefined)
  p.action = action
  p.installation = { id: INSTALL }
  p.sender = senderOf(author)
  p.pull_request.user = senderOf(author)
  p.pull_request.head.sha = sha
  p.pull_request.head.user = senderOf(author)
  p.pull_request.head.repo = { ...p.pull_request.head.repo, id: 777000 + author.id % 1000, full_name: `${author.login}/Hello-World`, owner: senderOf(author), fork: true }
  p.pull_request.head.label = `${author.login}:changes`
  return p
}
