/**
 * The GitHub REST API as the App uses it: `@octokit/core` with the retry and throttling
 * plugins, authenticated as the App (a JWT, for `/app/...`) or as an installation (an
 * installation token, cached per installation and replaced before it expires, which fixes
 * buildomat's one-token-per-call-site).
 *
 * Sources: "Authenticating as a GitHub App" and "Authenticating as a GitHub App installation"
 * (docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app), "Best practices
 * for using the REST API" (one second between writes; honour `retry-after` and
 * `x-ratelimit-reset`), and buildomat-github.md §6.
 *
 * @since 0.1.0
 */
import { createAppAuth } from "@octokit/auth-app"
import { Octokit } from "@octokit/core"
import { retry } from "@octokit/plugin-retry"
import { throttling } from "@octokit/plugin-throttling"
import { Context, Data, Effect, Layer } from "effect"
import { AppConfig } from "./Config.js"

/**
 * A GitHub call failed: `status` is the HTTP status (undefined when no response came back),
 * `message` GitHub's message or the network error.
 *
 * @since 0.1.0
 * @category errors
 */
export class GitHubError extends Data.TaggedError("GitHubError")<{
  readonly status: number | undefined
  readonly route: string
  readonly message: string
}> {
  /** Whether GitHub said the thing does not exist (404). */
  get notFound(): boolean {
    return this.status === 404
  }
  /** Whether retrying cannot help: a 4xx other than 408 and 429. */
  get permanent(): boolean {
    return this.status !== undefined && this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429
  }
}

/**
 * A response: status, headers (lower-case names) and the decoded JSON body.
 *
 * @since 0.1.0
 * @category models
 */
export interface GitHubResponse<T> {
  readonly status: number
  readonly headers: Readonly<Record<string, string | number | undefined>>
  readonly data: T
}

/**
 * An installation token minted for a job: `token` and when it expires (RFC 3339).
 *
 * @since 0.1.0
 * @category models
 */
export interface JobToken {
  readonly token: string
  readonly expiresAt: string
}

/**
 * The service.
 *
 * - `app(route, params)`: a request authenticated with the App's JWT (`GET /app`,
 *   `GET /app/installations/{installation_id}`, ...);
 * - `installation(id)(route, params)`: a request with the installation's token;
 * - `installationToken(id)`: that token (cached; replaced `tokenRefreshMarginMs` before its
 *   `expires_at`);
 * - `mintJobToken(id, repositoryIds, permissions)`: a new token scoped to those repositories
 *   and permissions (never cached: each job gets its own), via
 *   `POST /app/installations/{installation_id}/access_tokens`.
 *
 * Routes are written as in GitHub's documentation, `"GET /repos/{owner}/{repo}"`, with the
 * parameters filling the braces and the rest sent as query (GET) or JSON body.
 *
 * @since 0.1.0
 * @category models
 */
export interface GitHubApiShape {
  readonly app: <T = unknown>(route: string, params?: Record<string, unknown>) => Effect.Effect<GitHubResponse<T>, GitHubError>
  readonly installation: (
    id: number
  ) => <T = unknown>(route: string, params?: Record<string, unknown>) => Effect.Effect<GitHubResponse<T>, GitHubError>
  readonly installationToken: (id: number) => Effect.Effect<string, GitHubError>
  readonly mintJobToken: (
    id: number,
    repositoryIds: ReadonlyArray<number>,
    permissions: Readonly<Record<string, "read" | "write">>
  ) => Effect.Effect<JobToken, GitHubError>
}

/**
 * @since 0.1.0
 * @category context
 */
export class GitHubApi extends Context.Tag("@buildomat/github/GitHubApi")<GitHubApi, GitHubApiShape>() {}

/**
 * The user agent of every request.
 *
 * @since 0.1.0
 * @category constants
 */
export const USER_AGENT = "buildomat-github-ts/0.1.0"

/**
 * A stand-in for the throttling plugin's "write" limiter group: at most one write at a time,
 * `minMs` apart (GitHub asks for one second between writes).
 */
const writeSpacer = (minMs: number) => {
  let next = 0
  let chain: Promise<unknown> = Promise.resolve()
  const schedule = (...args: Array<any>) => {
    const fnIndex = typeof args[0] === "function" ? 0 : 1
    const fn = args[fnIndex] as (...a: Array<unknown>) => Promise<unknown>
    const rest = args.slice(fnIndex + 1)
    const run = chain.then(async () => {
      const wait = next - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      next = Date.now() + minMs
      return fn(...rest)
    })
    chain = run.catch(() => undefined)
    return run
  }
  return { key: () => ({ schedule }) }
}

const toError = (route: string) => (e: unknown): GitHubError => {
  const err = e as { status?: unknown; message?: unknown; response?: { data?: { message?: unknown } } }
  const status = typeof err?.status === "number" ? err.status : undefined
  const ghMessage = err?.response?.data?.message
  return new GitHubError({
    status,
    route,
    message: typeof ghMessage === "string" ? ghMessage : String(err?.message ?? e)
  })
}

/**
 * Makes the service from the configuration (`appId`, `privateKey`, `apiUrl`,
 * `writeIntervalMs`, `retryAfterBaseMs`, `tokenRefreshMarginMs`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.gen(function*() {
  const config = yield* AppConfig
  const GitHubOctokit = Octokit.plugin(retry, throttling)
  const octokit = new GitHubOctokit({
    baseUrl: config.apiUrl,
    userAgent: USER_AGENT,
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: (m: string) => Effect.runFork(Effect.logWarning(`github: ${m}`)),
      error: (m: string) => Effect.runFork(Effect.logError(`github: ${m}`))
    },
    retry: { retries: 3, retryAfterBaseValue: config.retryAfterBaseMs },
    throttle: {
      // Honour GitHub's rate limits: wait as it says, then try again, up to three times.
      onRateLimit: (after: number, options: { method: string; url: string }, _o: unknown, count: number) => {
        Effect.runFork(Effect.logWarning(`github: rate limited on ${options.method} ${options.url}; retrying in ${after} s`))
        return count < 3
      },
      onSecondaryRateLimit: (after: number, options: { method: string; url: string }, _o: unknown, count: number) => {
        Effect.runFork(Effect.logWarning(`github: secondary rate limit on ${options.method} ${options.url}; retrying in ${after} s`))
        return count < 3
      },
      retryAfterBaseValue: config.retryAfterBaseMs,
      fallbackSecondaryRateRetryAfter: 60,
      write: writeSpacer(config.writeIntervalMs)
    } as any
  })
  const auth = createAppAuth({ appId: config.appId, privateKey: config.privateKey, request: octokit.request })

  const tokens = new Map<number, { token: string; expiresAt: number }>()
  const pending = new Map<number, Promise<string>>()
  const installationTokenP = (id: number): Promise<string> => {
    const cached = tokens.get(id)
    if (cached !== undefined && cached.expiresAt - Date.now() > config.tokenRefreshMarginMs) return Promise.resolve(cached.token)
    const inflight = pending.get(id)
    if (inflight !== undefined) return inflight
    const p = (async () => {
      const a = (await auth({ type: "installation", installationId: id, refresh: true })) as { token: string; expiresAt: string }
      tokens.set(id, { token: a.token, expiresAt: Date.parse(a.expiresAt) })
      return a.token
    })().finally(() => pending.delete(id))
    pending.set(id, p)
    return p
  }

  const send = <T>(route: string, params: Record<string, unknown>, authorization: string) =>
    Effect.tryPromise({
      try: async (signal) => {
        const r = await octokit.request(route, { ...params, headers: { authorization }, request: { signal } })
        return { status: r.status, headers: r.headers as Record<string, string | number | undefined>, data: r.data as T }
      },
      catch: toError(route)
    })

  const app = <T>(route: string, params: Record<string, unknown> = {}) =>
    Effect.tryPromise({
      try: () => auth({ type: "app" }) as Promise<{ token: string }>,
      catch: toError("app JWT")
    }).pipe(Effect.flatMap((a) => send<T>(route, params, `bearer ${a.token}`)))

  const installationToken = (id: number) =>
    Effect.tryPromise({ try: () => installationTokenP(id), catch: toError(`POST /app/installations/${id}/access_tokens`) })

  const installation = (id: number) => <T>(route: string, params: Record<string, unknown> = {}) =>
    installationToken(id).pipe(Effect.flatMap((t) => send<T>(route, params, `token ${t}`)))

  const mintJobToken = (id: number, repositoryIds: ReadonlyArray<number>, permissions: Readonly<Record<string, "read" | "write">>) =>
    app<{ token: string; expires_at: string }>("POST /app/installations/{installation_id}/access_tokens", {
      installation_id: id,
      repository_ids: [...new Set(repositoryIds)],
      permissions
    }).pipe(Effect.map((r) => ({ token: r.data.token, expiresAt: r.data.expires_at })))

  return GitHubApi.of({ app, installation, installationToken, mintJobToken })
})

/**
 * The service as a layer; needs `AppConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(GitHubApi, make)

/**
 * Every page of a list endpoint (`per_page=100`, `page=1, 2, ...` until a short page), for
 * endpoints that answer `{ total_count, <key>: [...] }` (`key` given) or a bare array.
 * buildomat read only the first 100; this reads them all, up to `maxPages`.
 *
 * @since 0.1.0
 * @category utils
 */
export const paginate = <T>(
  call: <R>(route: string, params?: Record<string, unknown>) => Effect.Effect<GitHubResponse<R>, GitHubError>,
  route: string,
  params: Record<string, unknown>,
  key?: string,
  maxPages = 50
): Effect.Effect<ReadonlyArray<T>, GitHubError> =>
  Effect.gen(function*() {
    const out: Array<T> = []
    for (let page = 1; page <= maxPages; page++) {
      const r = yield* call<unknown>(route, { ...params, per_page: 100, page })
      const items = (key === undefined ? r.data : (r.data as Record<string, unknown>)[key]) as Array<T> | undefined
      const list = Array.isArray(items) ? items : []
      out.push(...list)
      if (list.length < 100) break
    }
    return out
  })
