/**
 * How a job gets the GitHub token it clones with: an installation token limited to
 * `contents: read` on the repository (and the job's `access_repos`), minted only once the core
 * job is running (queue time is unbounded and tokens last an hour), and never written into a
 * task's definition or environment: those are visible to anyone who can read the job in core
 * (`GET /0/job/{job}` shows every task's `env`).
 *
 * Two deliveries (`Config.TokenDelivery`):
 *
 * - **store** (buildomat): `deliverCloneTokenToJobStore` puts the token in core's job store as
 *   a secret (`PUT /0/jobs/{job}/store/GITHUB_TOKEN`) while the job runs, replacing it before it
 *   expires; the task reads it with `bmat store get GITHUB_TOKEN`. Needs core's job store.
 * - **broker** (works with any core): `grantCloneToken` makes a single-use URL on the App's own
 *   server (`/job-token/{run}/{nonce}`), which goes into the `authentication` task's
 *   environment. `redeemCloneToken` answers it once, only while the core job is running and
 *   (for the first grant) only while the `authentication` task is the one running; the answer
 *   carries the next single-use URL, so the job can renew its token, and nobody else can use
 *   an answered URL. Only a SHA-256 of each nonce is stored. Someone who can read the job in
 *   core could race the task for the first URL within those seconds; the task would then fail
 *   visibly instead of silently sharing the token.
 *
 * @since 0.1.0
 */
import type { Client } from "@buildomat/core"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Data, Effect, Option } from "effect"
import * as Crypto from "node:crypto"
import { AppConfig } from "./Config.js"
import { Store } from "./Store.js"
import { STORE_KEY } from "./Tasks.js"

/**
 * The route of the broker's URLs on the App's server.
 *
 * @since 0.1.0
 * @category constants
 */
export const BROKER_PATH = "/job-token"

/**
 * A grant cannot be redeemed: `status` is the HTTP status to answer (404 for anything unknown
 * or used, 409 while the job is not at the point where it may have the token).
 *
 * @since 0.1.0
 * @category errors
 */
export class RedeemError extends Data.TaggedError("RedeemError")<{ readonly status: number; readonly message: string }> {}

const hash = (nonce: string) => Crypto.createHash("sha256").update(nonce).digest("hex")

/**
 * Makes a single-use grant for a check run and returns its URL
 * (`{baseUrl}/job-token/{run}/{nonce}`, 43 random base64url characters of nonce).
 *
 * @since 0.1.0
 * @category broker
 */
export const grantCloneToken = (run: string) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    const store = yield* Store
    const nonce = Crypto.randomBytes(32).toString("base64url")
    yield* store.addJobToken(hash(nonce), run)
    return `${config.baseUrl}${BROKER_PATH}/${run}/${nonce}`
  })

/**
 * Redeems a grant. `check(first)` decides whether the job may have a token now (`first` is true
 * for the grant made at submission); `mint()` makes the token. Answers the body the
 * `authentication` task reads: the token, its expiry in Unix seconds and the next URL, one per
 * line. The grant is spent before the token is minted, so a grant is never answered twice.
 *
 * @since 0.1.0
 * @category broker
 */
export const redeemCloneToken = <E, R, E2, R2>(
  run: string,
  nonce: string,
  check: (first: boolean) => Effect.Effect<void, E, R>,
  mint: () => Effect.Effect<{ readonly token: string; readonly expiresAt: string }, E2, R2>
) =>
  Effect.gen(function*() {
    const store = yield* Store
    const h = hash(nonce)
    const grant = yield* store.peekJobToken(h)
    if (Option.isNone(grant) || grant.value.check_run !== run || grant.value.time_used !== null) {
      return yield* new RedeemError({ status: 404, message: "no such grant" })
    }
    const used = yield* store.usedJobTokens(run)
    yield* check(used === 0)
    const spent = yield* store.useJobToken(h)
    if (Option.isNone(spent)) return yield* new RedeemError({ status: 404, message: "no such grant" })
    const t = yield* mint()
    const next = yield* grantCloneToken(run)
    return `${t.token}\n${Math.floor(Date.parse(t.expiresAt) / 1000)}\n${next}\n`
  })

/**
 * Puts the token in core's job store as a secret: `PUT /0/jobs/{job}/store/GITHUB_TOKEN` with
 * `{ value, secret: true }` (buildomat). Fails if core has no job store.
 *
 * @since 0.1.0
 * @category store
 */
export const deliverCloneTokenToJobStore = (client: Client.Client, job: string, token: string) =>
  HttpClientRequest.put(`/0/jobs/${encodeURIComponent(job)}/store/${STORE_KEY}`).pipe(
    HttpClientRequest.bodyJson({ value: token, secret: true }),
    Effect.flatMap((req) => client.http.execute(req)),
    Effect.flatMap(HttpClientResponse.filterStatusOk),
    Effect.scoped,
    Effect.asVoid
  )
