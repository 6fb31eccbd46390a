/**
 * The App's records in its database: deliveries, repositories, users, installations, check
 * suites and check-run instances, core users and job-token grants. The row shapes and their
 * rules follow buildomat's `github/database` (buildomat-github.md §1).
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as Crypto from "node:crypto"
import { ulid } from "./internal/ids.js"

/**
 * A stored webhook delivery. `payload` is the body exactly as received; `headers` a JSON object
 * of every request header (lower-case names); `ack` is NULL until processed, then the version of
 * the handler that processed it (1); `last_error` is why it was set aside, if it was.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeliveryRow {
  readonly seq: number
  readonly uuid: string
  readonly event: string
  readonly headers: string
  readonly payload: string
  readonly recvtime: string
  readonly ack: number | null
  readonly attempts: number
  readonly last_error: string | null
  readonly not_before: string | null
}

/**
 * A GitHub repository as last seen in a delivery: its id (stable across renames), owner login,
 * name, and `visibility` (`public`, `private`, `internal`; NULL if never seen). Fork repositories
 * of pull requests are kept too.
 *
 * @since 0.1.0
 * @category models
 */
export interface RepositoryRow {
  readonly id: number
  readonly owner: string
  readonly name: string
  readonly visibility: string | null
}

/**
 * A GitHub account; `usertype` is `user`, `bot` or `org` (from GitHub's `User`, `Bot`,
 * `Organization`).
 *
 * @since 0.1.0
 * @category models
 */
export interface UserRow {
  readonly id: number
  readonly login: string
  readonly usertype: string
  readonly name: string | null
  readonly email: string | null
}

/**
 * The states of a check suite (buildomat-github.md §1.2): `created` (plan to load), `parked`
 * (waiting for authorisation, or the plan failed), `planned` (runs to create), `running`,
 * `complete`, `retired` (the repository is not enabled).
 *
 * @since 0.1.0
 * @category models
 */
export type SuiteState = "created" | "parked" | "planned" | "running" | "complete" | "retired"

/**
 * Our record of a GitHub check suite (one commit of one repository). `url_key` is the secret
 * part of every page URL of the suite; `plan` is JSON `{ jobfiles: JobFile[] }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckSuiteRow {
  readonly id: string
  readonly repo: number
  readonly install: number
  readonly github_id: number
  readonly head_sha: string
  readonly head_branch: string | null
  readonly state: SuiteState
  readonly plan: string | null
  readonly plan_sha: string | null
  readonly url_key: string
  readonly pr_by: number | null
  readonly requested_by: number | null
  readonly approved_by: number | null
}

/**
 * One instance of a named check in a suite; a re-run makes a new row. `id` is the
 * `external_id` on GitHub. `variety` is `control` or `basic`; `private` the variety's JSON
 * state; `active` whether this is the current instance of its name; `flushed` whether GitHub has
 * its latest status.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckRunRow {
  readonly id: string
  readonly check_suite: string
  readonly name: string
  readonly variety: string
  readonly content: string | null
  readonly config: string | null
  readonly private: string | null
  readonly active: number
  readonly flushed: number
  readonly github_id: number | null
  readonly dependencies: string | null
}

/**
 * A basic run as the status page lists it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecentRun {
  readonly run_id: string
  readonly name: string
  readonly private: string | null
  readonly active: number
  readonly run_github_id: number | null
  readonly suite_id: string
  readonly url_key: string
  readonly head_sha: string
  readonly head_branch: string | null
  readonly repo: number
  readonly owner: string | null
  readonly repo_name: string | null
  readonly visibility: string | null
}

/**
 * A delivery with the same `X-GitHub-Delivery` was stored with a different event or payload.
 *
 * @since 0.1.0
 * @category errors
 */
export class DeliveryConflict extends Schema.TaggedError<DeliveryConflict>()("DeliveryConflict", {
  uuid: Schema.String,
  seq: Schema.Number
}) {}

const now = () => new Date().toISOString()

/**
 * A new `url_key`: 48 random alphanumerics.
 *
 * @since 0.1.0
 * @category utils
 */
export const newUrlKey = (): string => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  const out: Array<string> = []
  while (out.length < 48) {
    for (const b of Crypto.randomBytes(64)) {
      if (b < 248 && out.length < 48) out.push(alphabet[b % 62]!)
    }
  }
  return out.join("")
}

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const orDie = Effect.orDie

  // ------------------------------------------------------------------------------------------
  // Deliveries
  // ------------------------------------------------------------------------------------------

  /**
   * Stores a delivery unless one with the same uuid exists: an identical one (same event and
   * payload) returns its seq with `duplicate: true`; a different one is a `DeliveryConflict`.
   */
  const storeDelivery = (d: { uuid: string; event: string; headers: Record<string, string>; payload: string; recvtime: string }) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const old = yield* sql<DeliveryRow>`SELECT * FROM delivery WHERE uuid = ${d.uuid}`
        if (old[0] !== undefined) {
          const o = old[0]
          return o.event === d.event && o.payload === d.payload
            ? { _tag: "Duplicate" as const, seq: o.seq }
            : { _tag: "Conflict" as const, seq: o.seq }
        }
        const [{ next }] = yield* sql<{ next: number }>`SELECT coalesce(max(seq) + 1, 0) AS next FROM delivery`
        yield* sql`INSERT INTO delivery ${
          sql.insert({
            seq: next,
            uuid: d.uuid,
            event: d.event,
            headers: JSON.stringify(d.headers),
            payload: d.payload,
            recvtime: d.recvtime,
            ack: null,
            attempts: 0
          })
        }`
        return { _tag: "Stored" as const, seq: next }
      })
    ).pipe(
      orDie,
      Effect.flatMap((r) =>
        r._tag === "Conflict"
          ? Effect.fail(new DeliveryConflict({ uuid: d.uuid, seq: r.seq }))
          : Effect.succeed({ seq: r.seq, duplicate: r._tag === "Duplicate" })
      )
    )

  /** The oldest unacknowledged delivery, if any. */
  const nextUnacked = sql<DeliveryRow>`SELECT * FROM delivery WHERE ack IS NULL ORDER BY seq LIMIT 1`.pipe(
    Effect.map((r) => Option.fromNullable(r[0])),
    orDie
  )

  /** Marks a delivery processed; `error` records why it was set aside instead. */
  const ackDelivery = (seq: number, error?: string) =>
    sql`UPDATE delivery SET ack = 1, last_error = ${error ?? null}, not_before = NULL WHERE seq = ${seq}`.pipe(orDie, Effect.asVoid)

  /** Records a failed attempt and when to try again. */
  const deferDelivery = (seq: number, error: string, notBefore: string) =>
    sql`UPDATE delivery SET attempts = attempts + 1, last_error = ${error}, not_before = ${notBefore} WHERE seq = ${seq}`.pipe(
      orDie,
      Effect.asVoid
    )

  /** `del unack`: makes a delivery pending again (it keeps its place in the order). */
  const unackDelivery = (seq: number) =>
    sql<{ seq: number }>`UPDATE delivery SET ack = NULL, attempts = 0, last_error = NULL, not_before = NULL WHERE seq = ${seq} RETURNING seq`.pipe(
      Effect.map((r) => r.length > 0),
      orDie
    )

  /** The `n` most recent deliveries (all if `n` is undefined), oldest first. */
  const listDeliveries = (n?: number) =>
    (n === undefined
      ? sql<DeliveryRow>`SELECT * FROM delivery ORDER BY seq`
      : sql<DeliveryRow>`SELECT * FROM (SELECT * FROM delivery ORDER BY seq DESC LIMIT ${n}) ORDER BY seq`).pipe(orDie)

  const getDelivery = (seq: number) =>
    sql<DeliveryRow>`SELECT * FROM delivery WHERE seq = ${seq}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), orDie)

  // ------------------------------------------------------------------------------------------
  // Repositories, users, installations
  // ------------------------------------------------------------------------------------------

  const upsertRepository = (r: RepositoryRow) =>
    sql`INSERT INTO repository ${sql.insert({ ...r })}
      ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, name = excluded.name,
        visibility = coalesce(excluded.visibility, repository.visibility)`.pipe(orDie, Effect.asVoid)

  const getRepository = (id: number) =>
    sql<RepositoryRow>`SELECT * FROM repository WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), orDie)

  const repositoryByName = (owner: string, name: string) =>
    sql<RepositoryRow>`SELECT * FROM repository WHERE lower(owner) = lower(${owner}) AND lower(name) = lower(${name})`.pipe(
      Effect.map((r) => Option.fromNullable(r[0])),
      orDie
    )

  const listRepositories = sql<RepositoryRow>`SELECT * FROM repository ORDER BY id`.pipe(orDie)

  const upsertUser = (u: UserRow) =>
    sql`INSERT INTO user ${sql.insert({ ...u })}
      ON CONFLICT (id) DO UPDATE SET login = excluded.login, usertype = excluded.usertype,
        name = coalesce(excluded.name, user.name), email = coalesce(excluded.email, user.email)`.pipe(orDie, Effect.asVoid)

  const getUser = (id: number) =>
    sql<UserRow>`SELECT * FROM user WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), orDie)

  const upsertInstall = (id: number, owner: number) =>
    sql`INSERT INTO install (id, owner) VALUES (${id}, ${owner}) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner`.pipe(
      orDie,
      Effect.asVoid
    )

  const getInstall = (id: number) =>
    sql<{ id: number; owner: number }>`SELECT * FROM install WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), orDie)

  // ------------------------------------------------------------------------------------------
  // Check suites
  // ------------------------------------------------------------------------------------------

  /** Finds or creates the suite for (repo, github_id); idempotent. */
  const ensureSuite = (s: { repo: number; install: number; github_id: number; head_sha: string; head_branch: string | null }) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const old = yield* sql<CheckSuiteRow>`SELECT * FROM check_suite WHERE repo = ${s.repo} AND github_id = ${s.github_id}`
        if (old[0] !== undefined) return old[0]
        const row: CheckSuiteRow = {
          id: ulid(),
          repo: s.repo,
          install: s.install,
          github_id: s.github_id,
          head_sha: s.head_sha,
          head_branch: s.head_branch,
          state: "created",
          plan: null,
          plan_sha: null,
          url_key: newUrlKey(),
          pr_by: null,
          requested_by: null,
          approved_by: null
        }
        yield* sql`INSERT INTO check_suite ${sql.insert({ ...row })}`
        return row
      })
    ).pipe(orDie)

  const getSuite = (id: string) =>
    sql<CheckSuiteRow>`SELECT * FROM check_suite WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), orDie)

  const suiteByGithubId = (repo: number, githubId: number) =>
    sql<CheckSuiteRow>`SELECT * FROM check_suite WHERE repo = ${repo} AND github_id = ${githubId}`.pipe(
      Effect.map((r) => Option.fromNullable(r[0])),
      orDie
    )

  /** Suites the loop works on (created, planned, running), oldest first. */
  const activeSuites = sql<CheckSuiteRow>`SELECT * FROM check_suite
    WHERE state IN ('created', 'planned', 'running') ORDER BY id`.pipe(orDie)

  const listSuites = sql<CheckSuiteRow>`SELECT * FROM check_suite ORDER BY id`.pipe(orDie)

  /** Updates the mutable columns of a suite. */
  const updateSuite = (
    id: string,
    f: Partial<Pick<CheckSuiteRow, "state" | "plan" | "plan_sha" | "pr_by" | "requested_by" | "approved_by">>
  ) => (Object.keys(f).length === 0 ? Effect.void : sql`UPDATE check_suite SET ${sql.update(f)} WHERE id = ${id}`.pipe(orDie, Effect.asVoid))

  // ------------------------------------------------------------------------------------------
  // Check runs
  // ------------------------------------------------------------------------------------------

  /**
   * The active run of this name and variety in the suite, or a new one (buildomat
   * `ensure_check_run`): active runs of the same name but another variety are deactivated.
   */
  const ensureRun = (suite: string, name: string, variety: string, dependencies: unknown) =>
    sql.withTransaction(
      Effect.gen(function*() {
        yield* sql`UPDATE check_run SET active = 0 WHERE check_suite = ${suite} AND name = ${name} AND variety <> ${variety} AND active = 1`
        const old = yield* sql<CheckRunRow>`SELECT * FROM check_run
          WHERE check_suite = ${suite} AND name = ${name} AND variety = ${variety} AND active = 1`
        if (old[0] !== undefined) return old[0]
        const row: CheckRunRow = {
          id: ulid(),
          check_suite: suite,
          name,
          variety,
          content: null,
          config: null,
          private: null,
          active: 1,
          flushed: 0,
          github_id: null,
          dependencies: JSON.stringify(dependencies ?? {})
        }
        yield* sql`INSERT INTO check_run ${sql.insert({ ...row })}`
        return row
      })
    ).pipe(orDie)

  const getRun = (id: string) =>
    sql<CheckRunRow>`SELECT * FROM check_run WHERE id = ${id}`.pipe(Effect.map((r) => Option.fromNullable(r[0])), orDie)

  const runsOfSuite = (suite: string) => sql<CheckRunRow>`SELECT * FROM check_run WHERE check_suite = ${suite} ORDER BY id`.pipe(orDie)

  /** Updates the mutable columns of a run. */
  const updateRun = (
    id: string,
    f: Partial<Pick<CheckRunRow, "content" | "config" | "private" | "active" | "flushed" | "github_id">>
  ) => (Object.keys(f).length === 0 ? Effect.void : sql`UPDATE check_run SET ${sql.update(f)} WHERE id = ${id}`.pipe(orDie, Effect.asVoid))

  // ------------------------------------------------------------------------------------------
  // Core users (CoreAccess "repo_users") and job-token grants (CloneToken "broker")
  // ------------------------------------------------------------------------------------------

  const getCoreUser = (repo: number) =>
    sql<{ repo: number; name: string; token: string }>`SELECT repo, name, token FROM core_user WHERE repo = ${repo}`.pipe(
      Effect.map((r) => Option.fromNullable(r[0])),
      orDie
    )

  const putCoreUser = (repo: number, name: string, token: string) =>
    sql`INSERT INTO core_user ${sql.insert({ repo, name, token, time_create: now() })}`.pipe(orDie, Effect.asVoid)

  const addJobToken = (nonceHash: string, run: string) =>
    sql`INSERT INTO job_token ${sql.insert({ nonce_hash: nonceHash, check_run: run, time_create: now() })}`.pipe(orDie, Effect.asVoid)

  /** Marks a grant used, once: `Some(run)` for the first caller, `None` for any other. */
  const useJobToken = (nonceHash: string) =>
    sql<{ check_run: string }>`UPDATE job_token SET time_used = ${now()}
      WHERE nonce_hash = ${nonceHash} AND time_used IS NULL RETURNING check_run`.pipe(
      Effect.map((r) => Option.map(Option.fromNullable(r[0]), (x) => x.check_run)),
      orDie
    )

  const peekJobToken = (nonceHash: string) =>
    sql<{ check_run: string; time_used: string | null }>`SELECT check_run, time_used FROM job_token WHERE nonce_hash = ${nonceHash}`.pipe(
      Effect.map((r) => Option.fromNullable(r[0])),
      orDie
    )

  /** The most recent basic runs with their suite and repository, newest first (the status page). */
  const recentRuns = (limit: number) =>
    sql<RecentRun>`SELECT r.id AS run_id, r.name AS name, r.private AS private, r.active AS active, r.github_id AS run_github_id,
        s.id AS suite_id, s.url_key AS url_key, s.head_sha AS head_sha, s.head_branch AS head_branch, s.repo AS repo,
        p.owner AS owner, p.name AS repo_name, p.visibility AS visibility
      FROM check_run r JOIN check_suite s ON s.id = r.check_suite LEFT JOIN repository p ON p.id = s.repo
      WHERE r.variety = 'basic' ORDER BY r.id DESC LIMIT ${limit}`.pipe(orDie)

  /** How many grants of a run have been redeemed. */
  const usedJobTokens = (run: string) =>
    sql<{ n: number }>`SELECT count(*) AS n FROM job_token WHERE check_run = ${run} AND time_used IS NOT NULL`.pipe(
      Effect.map((r) => r[0]?.n ?? 0),
      orDie
    )

  return {
    storeDelivery,
    nextUnacked,
    ackDelivery,
    deferDelivery,
    unackDelivery,
    listDeliveries,
    getDelivery,
    upsertRepository,
    getRepository,
    repositoryByName,
    listRepositories,
    upsertUser,
    getUser,
    upsertInstall,
    getInstall,
    ensureSuite,
    getSuite,
    suiteByGithubId,
    activeSuites,
    listSuites,
    updateSuite,
    ensureRun,
    getRun,
    runsOfSuite,
    updateRun,
    getCoreUser,
    putCoreUser,
    addJobToken,
    useJobToken,
    peekJobToken,
    usedJobTokens,
    recentRuns
  } as const
})

/**
 * The store service.
 *
 * @since 0.1.0
 * @category context
 */
export class Store extends Context.Tag("@buildomat/github/Store")<Store, Effect.Effect.Success<typeof make>>() {}

/**
 * Needs `SqlClient` (see `Database.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(Store, make)
