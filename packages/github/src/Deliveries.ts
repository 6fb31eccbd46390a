/**
 * Processing stored webhook deliveries, one at a time in `seq` order (buildomat-github.md §2.2
 * to §2.5). Each delivery ends in one of three ways:
 *
 * - handled (or deliberately ignored): acknowledged;
 * - it cannot ever be handled (the payload does not parse, GitHub answers 4xx, a record is
 *   missing): acknowledged with the reason in `last_error`, instead of being retried forever as
 *   buildomat does; `buildomat-github-dbtool del unack SEQ` queues it again;
 * - it failed for a reason that may pass (GitHub or core unreachable, 5xx, rate limits): it
 *   stays first in line and is tried again after a back-off (5 s doubling to 5 min), so later
 *   deliveries never overtake it; after `MAX_ATTEMPTS` it is set aside like the above.
 *
 * Events: `check_suite.requested` (our App's suites only), `push` to a branch, and
 * `pull_request.opened`/`synchronize` create or find a suite; `check_suite.rerequested` and
 * `check_run.rerequested` re-run; `check_run.requested_action` handles the buttons
 * (`auth`, `cancel`, `cancel_all`); `installation.created` and `repository.*` keep the records.
 * Everything else is acknowledged and ignored.
 *
 * @since 0.1.0
 */
import { Cause, Context, Data, Effect, Layer, Option, ParseResult, Schema } from "effect"
import { Checks, ChecksError, errorText, userType } from "./Checks.js"
import { AppConfig } from "./Config.js"
import { GitHubApi, GitHubError } from "./GitHubApi.js"
import * as gh from "./internal/gh.js"
import { isUlid } from "./internal/ids.js"
import type { DeliveryRow } from "./Store.js"
import { Store } from "./Store.js"

/**
 * How many times a delivery that fails transiently is tried before it is set aside.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_ATTEMPTS = 30

const Account = Schema.Struct({
  id: Schema.Number,
  login: Schema.String,
  type: Schema.optional(Schema.String),
  name: Schema.optional(Schema.NullOr(Schema.String)),
  email: Schema.optional(Schema.NullOr(Schema.String))
})
const Repository = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  owner: Account,
  visibility: Schema.optional(Schema.String),
  private: Schema.optional(Schema.Boolean)
})
type Repository = typeof Repository.Type

/**
 * The fields every payload the App reads has (from GitHub's webhook payload documentation):
 * `sender`, and where present `action`, `repository` and `installation`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Envelope = Schema.Struct({
  action: Schema.optionalWith(Schema.String, { default: () => "" }),
  sender: Account,
  repository: Schema.optional(Repository),
  installation: Schema.optional(Schema.Struct({ id: Schema.Number, account: Schema.optional(Schema.NullOr(Account)) }))
})

const CheckSuitePayload = Schema.Struct({
  check_suite: Schema.Struct({
    id: Schema.Number,
    head_sha: Schema.String,
    head_branch: Schema.NullOr(Schema.String),
    app: Schema.NullOr(Schema.Struct({ id: Schema.Number }))
  })
})
const PullRequestPayload = Schema.Struct({
  pull_request: Schema.Struct({
    head: Schema.Struct({ sha: Schema.String, repo: Schema.optional(Schema.NullOr(Repository)) }),
    base: Schema.Struct({ repo: Schema.optional(Schema.NullOr(Repository)) })
  })
})
const CheckRunPayload = Schema.Struct({
  check_run: Schema.Struct({
    id: Schema.Number,
    external_id: Schema.NullOr(Schema.String),
    app: Schema.optional(Schema.NullOr(Schema.Struct({ id: Schema.Number })))
  }),
  requested_action: Schema.optional(Schema.NullOr(Schema.Struct({ identifier: Schema.String })))
})
const PushPayload = Schema.Struct({
  ref: Schema.String,
  after: Schema.String,
  deleted: Schema.optional(Schema.Boolean)
})

/**
 * A delivery cannot be handled, ever; it is acknowledged with this reason.
 *
 * @since 0.1.0
 * @category errors
 */
export class SetAside extends Data.TaggedError("SetAside")<{ readonly reason: string }> {}

/**
 * What became of a delivery.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Acked"; readonly note?: string | undefined }
  | { readonly _tag: "SetAside"; readonly reason: string }
  | { readonly _tag: "Deferred"; readonly error: string; readonly notBefore: string }

const make = Effect.gen(function*() {
  const store = yield* Store
  const github = yield* GitHubApi
  const checks = yield* Checks
  const config = yield* AppConfig

  const decode = <A, I>(schema: Schema.Schema<A, I>, v: unknown, what: string) =>
    Schema.decodeUnknown(schema)(v).pipe(
      Effect.mapError((e) =>
        new SetAside({
          reason: `${what}: ${
            ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
          }`
        })
      )
    )

  const upsertRepo = (r: Repository) =>
    store.upsertRepository({ id: r.id, owner: r.owner.login, name: r.name, visibility: r.visibility ?? (r.private === true ? "private" : r.private === false ? "public" : null) })

  const ownerAllowed = (r: Repository) => config.allowOwners.some((o) => o.toLowerCase() === r.owner.login.toLowerCase())

  /** Finds our App's suite for a commit, or creates one (the pull request and push paths). */
  const findOrCreateSuite = (install: number, repo: Repository, sha: string) =>
    Effect.gen(function*() {
      const call = github.installation(install)
      const suites = yield* gh.suitesForRef(call, repo.owner.login, repo.name, sha, config.appId)
      const ours = suites.filter((s) => s.app === null || s.app.id === config.appId)
      if (ours.length > 1) return Option.none<number>()
      if (ours.length === 1) return Option.some(ours[0]!.id)
      const created = yield* gh.createSuite(call, repo.owner.login, repo.name, sha)
      return Option.some(created.id)
    })

  const handle = (d: DeliveryRow): Effect.Effect<Outcome, unknown> =>
    Effect.gen(function*() {
      if (d.event === "ping") return { _tag: "Acked" as const }
      const raw = yield* Effect.try({ try: () => JSON.parse(d.payload) as unknown, catch: () => new SetAside({ reason: "payload is not JSON" }) })
      const env = yield* decode(Envelope, raw, "payload")
      yield* store.upsertUser({
        id: env.sender.id,
        login: env.sender.login,
        usertype: userType(env.sender.type),
        name: env.sender.name ?? null,
        email: env.sender.email ?? null
      })
      const key = `${d.event}.${env.action}`

      switch (d.event) {
        case "installation": {
          if (env.action !== "created") return { _tag: "Acked" as const, note: "ignored" }
          const a = env.installation?.account
          if (env.installation === undefined || a == null) return { _tag: "Acked" as const, note: "no installation account" }
          yield* store.upsertUser({ id: a.id, login: a.login, usertype: userType(a.type), name: a.name ?? null, email: a.email ?? null })
          yield* store.upsertInstall(env.installation.id, a.id)
          return { _tag: "Acked" as const }
        }
        case "repository": {
          if (env.action !== "deleted" && env.repository !== undefined) yield* upsertRepo(env.repository)
          return { _tag: "Acked" as const }
        }
        case "check_suite": {
          if (env.action === "requested") {
            const repo = env.repository
            if (repo === undefined) return yield* new SetAside({ reason: "check_suite.requested without repository" })
            if (!ownerAllowed(repo)) return { _tag: "Acked" as const, note: `owner ${repo.owner.login} is not allowed` }
            yield* upsertRepo(repo)
            if (env.installation === undefined) return yield* new SetAside({ reason: "check_suite.requested without installation" })
            const p = yield* decode(CheckSuitePayload, raw, "check_suite")
            if (p.check_suite.app?.id !== config.appId) return { _tag: "Acked" as const, note: "another app's suite" }
            const cs = yield* store.ensureSuite({
              repo: repo.id,
              install: env.installation.id,
              github_id: p.check_suite.id,
              head_sha: p.check_suite.head_sha,
              head_branch: p.check_suite.head_branch
            })
            if (cs.requested_by === null) yield* store.updateSuite(cs.id, { requested_by: env.sender.id })
            return { _tag: "Acked" as const }
          }
          if (env.action === "rerequested") {
            const repo = env.repository
            const p = yield* decode(CheckSuitePayload, raw, "check_suite")
            if (repo === undefined || p.check_suite.app?.id !== config.appId) return { _tag: "Acked" as const, note: "not ours" }
            const cs = yield* store.suiteByGithubId(repo.id, p.check_suite.id)
            if (Option.isNone(cs)) return { _tag: "Acked" as const, note: "unknown suite" }
            const r = yield* store.getRepository(repo.id)
            if (Option.isNone(r) || !(yield* checks.mayControl(cs.value, r.value, env.sender))) {
              return { _tag: "Acked" as const, note: `${env.sender.login} may not re-run checks` }
            }
            yield* checks.restart(cs.value)
            return { _tag: "Acked" as const }
          }
          return { _tag: "Acked" as const, note: "ignored" }
        }
        case "push": {
          const p = yield* decode(PushPayload, raw, "push")
          const repo = env.repository
          if (!p.ref.startsWith("refs/heads/") || p.deleted === true || /^0+$/.test(p.after) || repo === undefined) {
            return { _tag: "Acked" as const, note: "not a branch update" }
          }
          if (!ownerAllowed(repo)) return { _tag: "Acked" as const, note: `owner ${repo.owner.login} is not allowed` }
          yield* upsertRepo(repo)
          if (env.installation === undefined) return yield* new SetAside({ reason: "push without installation" })
          const id = yield* findOrCreateSuite(env.installation.id, repo, p.after)
          if (Option.isNone(id)) return { _tag: "Acked" as const, note: "more than one suite for the commit" }
          const cs = yield* store.ensureSuite({
            repo: repo.id,
            install: env.installation.id,
            github_id: id.value,
            head_sha: p.after,
            head_branch: p.ref.slice("refs/heads/".length)
          })
          if (cs.requested_by === null) yield* store.updateSuite(cs.id, { requested_by: env.sender.id })
          return { _tag: "Acked" as const }
        }
        case "pull_request": {
          if (env.action !== "opened" && env.action !== "synchronize" && env.action !== "reopened") {
            return { _tag: "Acked" as const, note: "ignored" }
          }
          const repo = env.repository
          if (repo === undefined) return yield* new SetAside({ reason: "pull_request without repository" })
          if (!ownerAllowed(repo)) return { _tag: "Acked" as const, note: `owner ${repo.owner.login} is not allowed` }
          yield* upsertRepo(repo)
          if (env.installation === undefined) return yield* new SetAside({ reason: "pull_request without installation" })
          const p = yield* decode(PullRequestPayload, raw, "pull_request")
          const base = p.pull_request.base.repo
          const head = p.pull_request.head.repo
          if (base == null || head == null) return { _tag: "Acked" as const, note: "head or base repository missing" }
          if (base.id !== repo.id) return { _tag: "Acked" as const, note: "base is another repository" }
          yield* upsertRepo(head)
          const id = yield* findOrCreateSuite(env.installation.id, base, p.pull_request.head.sha)
          if (Option.isNone(id)) return { _tag: "Acked" as const, note: "more than one suite for the commit" }
          const cs = yield* store.ensureSuite({
            repo: base.id,
            install: env.installation.id,
            github_id: id.value,
            head_sha: p.pull_request.head.sha,
            head_branch: null
          })
          if (cs.pr_by === null) yield* store.updateSuite(cs.id, { pr_by: env.sender.id })
          return { _tag: "Acked" as const }
        }
        case "check_run": {
          if (env.action !== "rerequested" && env.action !== "requested_action") return { _tag: "Acked" as const, note: "ignored" }
          const p = yield* decode(CheckRunPayload, raw, "check_run")
          if (p.check_run.app != null && p.check_run.app.id !== config.appId) return { _tag: "Acked" as const, note: "another app's run" }
          const ext = p.check_run.external_id ?? ""
          if (!isUlid(ext)) return { _tag: "Acked" as const, note: "not one of our runs" }
          const run = yield* store.getRun(ext.toUpperCase())
          if (Option.isNone(run)) return { _tag: "Acked" as const, note: "unknown run" }
          const cs = yield* store.getSuite(run.value.check_suite)
          if (Option.isNone(cs)) return yield* new SetAside({ reason: `run ${run.value.id} has no suite` })
          const repo = yield* store.getRepository(cs.value.repo)
          if (Option.isNone(repo)) return yield* new SetAside({ reason: `suite ${cs.value.id} has no repository` })

          if (env.action === "rerequested") {
            if (!(yield* checks.mayControl(cs.value, repo.value, env.sender))) {
              return { _tag: "Acked" as const, note: `${env.sender.login} may not re-run checks` }
            }
            if (run.value.variety === "control") yield* checks.restart(cs.value)
            else yield* checks.rerunOne(cs.value, run.value)
            return { _tag: "Acked" as const }
          }

          const action = p.requested_action?.identifier
          if (action === undefined) return yield* new SetAside({ reason: "requested_action without an identifier" })
          if (run.value.variety === "control") {
            if (action !== "auth") return { _tag: "Acked" as const, note: `action ${action} on the control run` }
            if (cs.value.approved_by !== null || cs.value.state !== "parked") return { _tag: "Acked" as const, note: "nothing to authorise" }
            // Only the installation's owner or a member of its organisation may authorise;
            // allow_users is not enough (buildomat-github.md §2.5).
            const owner = yield* checks.installOwner(cs.value.install)
            const ok = (owner.id === env.sender.id && owner.login === env.sender.login) ||
              (owner.usertype === "org" && (yield* gh.isOrgMember(github.installation(cs.value.install), owner.login, env.sender.login)))
            if (!ok) return { _tag: "Acked" as const, note: `${env.sender.login} may not authorise` }
            yield* checks.restart(cs.value, { approved_by: env.sender.id })
            return { _tag: "Acked" as const }
          }
          if (action !== "cancel" && action !== "cancel_all") return { _tag: "Acked" as const, note: `unknown action ${action}` }
          if (!(yield* checks.mayControl(cs.value, repo.value, env.sender))) {
            return { _tag: "Acked" as const, note: `${env.sender.login} may not cancel` }
          }
          const targets = action === "cancel"
            ? [run.value]
            : (yield* store.runsOfSuite(cs.value.id)).filter((r) => r.active === 1 && r.variety === "basic")
          for (const t of targets) yield* checks.cancelRun(cs.value, t)
          return { _tag: "Acked" as const }
        }
        default:
          return { _tag: "Acked" as const, note: `event ${key} ignored` }
      }
    }).pipe(
      Effect.catchAll((e: unknown) => {
        if (e instanceof SetAside) return Effect.succeed<Outcome>({ _tag: "SetAside", reason: e.reason })
        if (e instanceof GitHubError && e.permanent) return Effect.succeed<Outcome>({ _tag: "SetAside", reason: errorText(e) })
        if (e instanceof ChecksError) return Effect.succeed<Outcome>({ _tag: "SetAside", reason: e.message })
        return Effect.fail(e)
      })
    )

  /**
   * Processes the oldest pending delivery whose back-off has passed. Succeeds with `None` when
   * there is nothing to do now, else with the delivery and what became of it.
   */
  const processNext = Effect.gen(function*() {
    const next = yield* store.nextUnacked
    if (Option.isNone(next)) return Option.none()
    const d = next.value
    if (d.not_before !== null && Date.parse(d.not_before) > Date.now()) return Option.none()
    const outcome: Outcome = yield* handle(d).pipe(
      Effect.catchAllCause((cause) =>
        Effect.succeed<Outcome>({
          _tag: "Deferred",
          error: errorText(Cause.squash(cause)).slice(0, 2000),
          notBefore: new Date(Date.now() + Math.min(300_000, 5000 * 2 ** Math.min(d.attempts, 6))).toISOString()
        })
      ),
      Effect.map((o): Outcome => o)
    )
    switch (outcome._tag) {
      case "Acked":
        yield* store.ackDelivery(d.seq)
        break
      case "SetAside":
        yield* Effect.logWarning(`delivery ${d.seq} (${d.event}) set aside: ${outcome.reason}`)
        yield* store.ackDelivery(d.seq, outcome.reason)
        break
      case "Deferred":
        if (d.attempts + 1 >= MAX_ATTEMPTS) {
          yield* Effect.logError(`delivery ${d.seq} (${d.event}) failed ${MAX_ATTEMPTS} times; set aside: ${outcome.error}`)
          yield* store.ackDelivery(d.seq, `failed ${MAX_ATTEMPTS} times, last: ${outcome.error}`)
        } else {
          yield* Effect.logWarning(`delivery ${d.seq} (${d.event}) failed, trying again after ${outcome.notBefore}: ${outcome.error}`)
          yield* store.deferDelivery(d.seq, outcome.error, outcome.notBefore)
        }
        break
    }
    return Option.some({ delivery: d, outcome })
  })

  /** Processes pending deliveries until none is ready; returns how many were processed. */
  const processAll = Effect.gen(function*() {
    let n = 0
    for (;;) {
      const r = yield* processNext
      if (Option.isNone(r)) return n
      n++
      if (r.value.outcome._tag === "Deferred") return n
    }
  })

  return { handle, processNext, processAll } as const
})

/**
 * The service.
 *
 * @since 0.1.0
 * @category context
 */
export class Deliveries extends Context.Tag("@buildomat/github/Deliveries")<Deliveries, Effect.Effect.Success<typeof make>>() {}

/**
 * Needs `Store`, `GitHubApi`, `Checks` and `AppConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(Deliveries, make)

/**
 * The `action` of a stored delivery, `undefined` if its payload does not parse (for listings).
 *
 * @since 0.1.0
 * @category utils
 */
export const actionOf = (d: Pick<DeliveryRow, "payload">): { action: string; sender: string; install: string } | undefined => {
  try {
    const v = JSON.parse(d.payload) as { action?: unknown; sender?: { login?: unknown }; installation?: { id?: unknown } }
    return {
      action: typeof v.action === "string" ? v.action : "",
      sender: typeof v.sender?.login === "string" ? v.sender.login : "-",
      install: typeof v.installation?.id === "number" ? String(v.installation.id) : "-"
    }
  } catch {
    return undefined
  }
}
