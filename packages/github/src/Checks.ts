/**
 * Check suites and check runs through their lifecycle (buildomat-github.md §1.2–§1.3, §3, §4):
 * the suite state machine (`created` → `parked` | `planned` → `running` → `complete`, or
 * `retired`), the `control` run that reports the plan, the `basic` runs that become core jobs,
 * flushing each run's state to GitHub, reconciling with the runs GitHub has, and the buttons
 * (re-run, cancel, cancel all, authorise).
 *
 * Fixed from buildomat: who presses cancel or re-run is checked (write access to the
 * repository, or the installation's owner); a superseded run that is still going is cancelled,
 * in core and on GitHub; a `config.toml` that does not parse is shown on the control run
 * instead of being retried silently forever; GitHub lists are read page by page; a cancelled
 * job's state is compared with core's `completed`.
 *
 * @since 0.1.0
 */
import type { Client } from "@buildomat/core"
import { Jobs } from "@buildomat/core"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Context, Data, Effect, Either, Layer, Option } from "effect"
import * as NodePath from "node:path"
import type { ControlPrivate as ControlPrivateT, Rendered } from "./CheckRuns.js"
import {
  BasicPrivate,
  ControlPrivate,
  formatSize,
  MAX_OUTPUT_LINKS,
  pushTail,
  readPrivate,
  renderBasic,
  renderControl,
  tailLine
} from "./CheckRuns.js"
import { deliverCloneTokenToJobStore, grantCloneToken } from "./CloneToken.js"
import { AppConfig } from "./Config.js"
import { CoreAccess } from "./CoreAccess.js"
import type { GitHubError } from "./GitHubApi.js"
import { GitHubApi } from "./GitHubApi.js"
import * as gh from "./internal/gh.js"
import { isUlid } from "./internal/ids.js"
import * as JobFile from "./JobFile.js"
import * as RepoConfig from "./RepoConfig.js"
import type { CheckRunRow, CheckSuiteRow, RepositoryRow, UserRow } from "./Store.js"
import { Store } from "./Store.js"
import * as Tasks from "./Tasks.js"

/**
 * The name of the control run of every suite (buildomat).
 *
 * @since 0.1.0
 * @category constants
 */
export const CONTROL_NAME = "*control"

/**
 * A suite or run cannot be processed now (a missing record); the loop logs it and tries again.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChecksError extends Data.TaggedError("ChecksError")<{ readonly message: string }> {}

const TOKEN_RENEW_MS = 10 * 60 * 1000

const make = Effect.gen(function*() {
  const store = yield* Store
  const github = yield* GitHubApi
  const core = yield* CoreAccess
  const config = yield* AppConfig

  const repoOf = (cs: CheckSuiteRow) =>
    store.getRepository(cs.repo).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new ChecksError({ message: `suite ${cs.id}: repository ${cs.repo} is not known` })),
        onSome: Effect.succeed
      }))
    )

  const detailsUrl = (cs: CheckSuiteRow, run: { readonly id: string }) => `${config.baseUrl}/details/${cs.id}/${cs.url_key}/${run.id}`
  const artefactUrl = (cs: CheckSuiteRow, run: { readonly id: string }, output: string, path: string) =>
    `${config.baseUrl}/artefact/${cs.id}/${cs.url_key}/${run.id}/${output}/${encodeURIComponent(NodePath.posix.basename(path) || "output")}`

  /** The installation's account, from the database or `GET /app/installations/{id}`. */
  const installOwner = (install: number) =>
    Effect.gen(function*() {
      const known = yield* store.getInstall(install)
      if (Option.isSome(known)) {
        const u = yield* store.getUser(known.value.owner)
        if (Option.isSome(u)) return u.value
      }
      const r = yield* github.app<{ account: { id: number; login: string; type?: string } | null }>(
        "GET /app/installations/{installation_id}",
        { installation_id: install }
      )
      const a = r.data.account
      if (a === null) return yield* new ChecksError({ message: `installation ${install} has no account` })
      const user: UserRow = { id: a.id, login: a.login, usertype: userType(a.type), name: null, email: null }
      yield* store.upsertUser(user)
      yield* store.upsertInstall(install, a.id)
      return user
    })

  /**
   * Whether a user may press "cancel" and "re-run": the installation's owner, or someone with
   * write access to the repository (buildomat did not check; GitHub only hides the buttons).
   */
  const mayControl = (cs: CheckSuiteRow, repo: RepositoryRow, user: { readonly id: number; readonly login: string }) =>
    Effect.gen(function*() {
      const owner = yield* installOwner(cs.install)
      if (owner.id === user.id && owner.login === user.login) return true
      const perm = yield* gh.permission(github.installation(cs.install), repo.owner, repo.name, user.login)
      return perm === "admin" || perm === "maintain" || perm === "write"
    })

  /**
   * Whether a user authorises a plan (buildomat-github.md §3.2): the installation's owner, a
   * login in `allow_users`, or a member of the organisation that owns the installation.
   */
  const authorises = (cs: CheckSuiteRow, user: UserRow, allowUsers: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const owner = yield* installOwner(cs.install)
      if (owner.id === user.id && owner.login === user.login) return true
      if (allowUsers.includes(user.login)) return true
      if (owner.usertype !== "org") return false
      return yield* gh.isOrgMember(github.installation(cs.install), owner.login, user.login)
    })

  // ------------------------------------------------------------------------------------------
  // Flushing runs to GitHub
  // ------------------------------------------------------------------------------------------

  const render = (cs: CheckSuiteRow, run: CheckRunRow) =>
    Effect.gen(function*() {
      if (run.variety === "control") {
        const approver = cs.approved_by === null ? Option.none<UserRow>() : yield* store.getUser(cs.approved_by)
        return renderControl(readPrivate(ControlPrivate, run.private), {
          sha: cs.plan_sha ?? cs.head_sha,
          approvedBy: Option.getOrUndefined(Option.map(approver, (u) => u.login)),
          confroot: config.confroot
        })
      }
      return renderBasic(readPrivate(BasicPrivate, run.private), { detailsUrl: detailsUrl(cs, run) })
    })

  const body = (cs: CheckSuiteRow, run: CheckRunRow, r: Rendered): gh.RunBody => ({
    details_url: detailsUrl(cs, run),
    status: r.status,
    ...(r.conclusion !== undefined ? { conclusion: r.conclusion } : {}),
    ...(r.started_at !== undefined ? { started_at: r.started_at } : {}),
    ...(r.completed_at !== undefined ? { completed_at: r.completed_at } : {}),
    output: { title: r.title, summary: r.summary, ...(r.text !== undefined ? { text: r.text } : {}) },
    actions: r.actions
  })

  /** Sends every active, unflushed run of the suite to GitHub; an error stops the rest. */
  const flush = (cs: CheckSuiteRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      const call = github.installation(cs.install)
      for (const run of yield* store.runsOfSuite(cs.id)) {
        if (run.active !== 1 || run.flushed === 1) continue
        const b = body(cs, run, yield* render(cs, run))
        if (run.github_id === null) {
          const id = yield* gh.createRun(call, repo.owner, repo.name, { name: run.name, head_sha: cs.head_sha, external_id: run.id, ...b })
          yield* store.updateRun(run.id, { github_id: id, flushed: 1 })
        } else {
          yield* gh.updateRun(call, repo.owner, repo.name, run.github_id, b)
          yield* store.updateRun(run.id, { flushed: 1 })
        }
      }
    })

  const cancelOnGitHub = (cs: CheckSuiteRow, repo: RepositoryRow, id: number, title: string) =>
    gh.updateRun(github.installation(cs.install), repo.owner, repo.name, id, {
      status: "completed",
      conclusion: "cancelled",
      output: { title, summary: "This instance of the check was replaced by a newer one, or is unknown to buildomat." }
    }).pipe(Effect.catchAll((e) => Effect.logWarning(`suite ${cs.id}: could not cancel check run ${id} on GitHub: ${e.message}`)))

  /**
   * Adopts GitHub's ids for our runs and cancels the runs GitHub has that are not ours or not
   * current (buildomat `reconcile_check_runs`; every page, not only the first 100).
   */
  const reconcile = (cs: CheckSuiteRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      const remote = yield* gh.runsInSuite(github.installation(cs.install), repo.owner, repo.name, cs.github_id)
      for (const r of remote) {
        const open = r.status !== "completed"
        const ext = r.external_id ?? ""
        const local = isUlid(ext) ? yield* store.getRun(ext.toUpperCase()) : Option.none<CheckRunRow>()
        if (Option.isNone(local) || local.value.check_suite !== cs.id) {
          if (open) yield* cancelOnGitHub(cs, repo, r.id, "Unknown check run.")
          continue
        }
        const row = local.value
        if (row.github_id !== null) {
          if (row.github_id !== r.id && open) yield* cancelOnGitHub(cs, repo, r.id, "Superseded.")
          continue
        }
        if (row.active !== 1 && open) yield* cancelOnGitHub(cs, repo, r.id, "Superseded.")
        yield* store.updateRun(row.id, { github_id: r.id })
      }
    })

  // ------------------------------------------------------------------------------------------
  // Superseding and cancelling
  // ------------------------------------------------------------------------------------------

  /** Cancels a basic run's job (buildomat `basic::cancel`, with `completed` spelled right). */
  const cancelRun = (cs: CheckSuiteRow, run: CheckRunRow) =>
    Effect.gen(function*() {
      const p = readPrivate(BasicPrivate, run.private)
      if (run.variety !== "basic" || p.complete || p.cancelled) return
      let np: BasicPrivate = { ...p, cancelled: true }
      if (p.buildomat_id !== undefined) {
        const client = yield* core.forRepo(cs.repo)
        const job = yield* client.api.jobs.get({ path: { job: p.buildomat_id as any } })
        if (!Jobs.isTerminal(job.state)) {
          yield* client.api.jobs.cancel({ path: { job: p.buildomat_id as any } }).pipe(Effect.catchTag("Conflict", () => Effect.void))
        }
      } else {
        np = { ...np, error: "Job was cancelled before it began running.", complete: true }
      }
      yield* store.updateRun(run.id, { private: JSON.stringify(np), flushed: 0 })
    })

  /**
   * Makes a run inactive. A basic run that is still going is cancelled in core, and its GitHub
   * run is completed as cancelled (buildomat left both running).
   */
  const supersede = (cs: CheckSuiteRow, run: CheckRunRow) =>
    Effect.gen(function*() {
      yield* store.updateRun(run.id, { active: 0 })
      if (run.variety !== "basic") return
      const p = readPrivate(BasicPrivate, run.private)
      if (p.complete && run.flushed === 1) return
      yield* cancelRun(cs, run).pipe(Effect.catchAll((e) => Effect.logWarning(`run ${run.id}: cancel on supersede failed: ${String(e)}`)))
      if (run.github_id !== null) {
        const repo = yield* repoOf(cs)
        yield* cancelOnGitHub(cs, repo, run.github_id, "Superseded.")
      }
    })

  /**
   * The suite starts again from its plan's source: the given control run (if any) and every
   * active basic run are superseded, and the suite becomes `created`.
   */
  const restart = (cs: CheckSuiteRow, f: Partial<Pick<CheckSuiteRow, "approved_by">> = {}) =>
    Effect.gen(function*() {
      for (const run of yield* store.runsOfSuite(cs.id)) {
        if (run.active === 1) yield* supersede(cs, run)
      }
      yield* store.updateSuite(cs.id, { ...f, state: "created" })
    })

  /** A re-run of one basic run: a new instance from the stored plan (suite → `planned`). */
  const rerunOne = (cs: CheckSuiteRow, run: CheckRunRow) =>
    Effect.gen(function*() {
      yield* supersede(cs, run)
      yield* store.updateSuite(cs.id, { state: "planned" })
    })

  // ------------------------------------------------------------------------------------------
  // created: policy, authorisation, plan
  // ------------------------------------------------------------------------------------------

  const setControl = (cs: CheckSuiteRow, p: Partial<ControlPrivateT>) =>
    Effect.gen(function*() {
      const run = yield* store.ensureRun(cs.id, CONTROL_NAME, "control", {})
      const next = { ...readPrivate(ControlPrivate, run.private), ...p }
      yield* store.updateRun(run.id, { private: JSON.stringify(next), flushed: 0 })
    })

  /** Reads the job files at the commit; a `JobFileError` or `ContentError` says what is wrong. */
  const loadPlan = (cs: CheckSuiteRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      const call = github.installation(cs.install)
      const dir = `${config.confroot}/jobs`
      const listing = yield* gh.listDir(call, repo.owner, repo.name, dir, cs.head_sha)
      if (Option.isNone(listing)) return [] as ReadonlyArray<JobFile.JobFile>
      const files: Array<JobFile.JobFile> = []
      for (const e of listing.value) {
        if (e.type !== "file" || !e.name.endsWith(".sh")) {
          return yield* new JobFile.JobFileError({
            message: `unexpected item in ${dir}: ${JSON.stringify(e.path)} (only *.sh job files may be there)`
          })
        }
        if (e.size > JobFile.MAX_JOB_FILE_BYTES) {
          return yield* new JobFile.JobFileError({ message: `${e.path} is larger than ${JobFile.MAX_JOB_FILE_BYTES} bytes` })
        }
        const text = yield* gh.getFile(call, repo.owner, repo.name, e.path, cs.head_sha, JobFile.MAX_JOB_FILE_BYTES)
        if (Option.isNone(text)) return yield* new JobFile.JobFileError({ message: `${e.path} vanished while the plan was read` })
        const parsed = JobFile.parse(e.path, text.value)
        if (Either.isLeft(parsed)) return yield* parsed.left
        if (parsed.right !== undefined) files.push(parsed.right)
      }
      const set = JobFile.validateSet(files)
      if (Either.isLeft(set)) return yield* set.left
      return set.right
    })

  const onCreated = (cs: CheckSuiteRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      yield* reconcile(cs, repo)
      const call = github.installation(cs.install)
      const head = yield* gh.defaultBranchHead(call, repo.owner, repo.name)
      const text = Option.isNone(head)
        ? Option.none<string>()
        : yield* gh.getFile(call, repo.owner, repo.name, `${config.confroot}/config.toml`, head.value)
      if (Option.isNone(text)) {
        yield* Effect.logInfo(`suite ${cs.id}: ${repo.owner}/${repo.name} has no ${config.confroot}/config.toml; retired`)
        return yield* store.updateSuite(cs.id, { state: "retired" })
      }
      const policy = RepoConfig.parse(text.value)
      if (Either.isLeft(policy)) {
        yield* setControl(cs, { error: `${policy.left}\n(read from the default branch at ${Option.getOrElse(head, () => "?")})`, complete: true })
        yield* store.updateSuite(cs.id, { state: "parked" })
        return yield* flush(cs, repo)
      }
      if (!policy.right.enable) {
        yield* Effect.logInfo(`suite ${cs.id}: ${repo.owner}/${repo.name} is not enabled; retired`)
        return yield* store.updateSuite(cs.id, { state: "retired" })
      }
      let approvedBy = cs.approved_by
      if (approvedBy === null) {
        for (const candidate of [cs.requested_by, cs.pr_by]) {
          if (candidate === null) continue
          const u = yield* store.getUser(candidate)
          if (Option.isSome(u) && (yield* authorises(cs, u.value, policy.right.allow_users))) {
            approvedBy = candidate
            break
          }
        }
        if (approvedBy !== null) yield* store.updateSuite(cs.id, { approved_by: approvedBy })
      }
      const current = { ...cs, approved_by: approvedBy }
      if (policy.right.org_only && approvedBy === null) {
        yield* setControl(current, { need_auth: true, complete: true })
        yield* store.updateSuite(cs.id, { state: "parked" })
        return yield* flush(current, repo)
      }
      const plan = yield* loadPlan(current, repo).pipe(
        Effect.map(Either.right),
        Effect.catchTags({
          JobFileError: (e) => Effect.succeed(Either.left(e.message)),
          ContentError: (e) => Effect.succeed(Either.left(e.message))
        })
      )
      if (Either.isLeft(plan)) {
        yield* setControl(current, { error: plan.left, complete: true })
        yield* store.updateSuite(cs.id, { state: "parked" })
        return yield* flush(current, repo)
      }
      yield* store.updateSuite(cs.id, {
        plan: JSON.stringify({ jobfiles: plan.right }),
        plan_sha: cs.head_sha,
        state: "planned"
      })
      yield* setControl(current, { complete: false, no_plans: plan.right.length === 0 })
      yield* flush({ ...current, plan_sha: cs.head_sha }, repo)
    })

  // ------------------------------------------------------------------------------------------
  // planned: one run per job file
  // ------------------------------------------------------------------------------------------

  const onPlanned = (cs: CheckSuiteRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      if (cs.plan === null) {
        yield* Effect.logWarning(`suite ${cs.id}: planned without a plan; parked`)
        return yield* store.updateSuite(cs.id, { state: "parked" })
      }
      yield* reconcile(cs, repo)
      const plan = JSON.parse(cs.plan) as { jobfiles: ReadonlyArray<JobFile.JobFile> }
      for (const jf of plan.jobfiles) {
        const run = yield* store.ensureRun(cs.id, jf.name, "basic", jf.dependencies)
        if (run.config === null) yield* store.updateRun(run.id, { config: JSON.stringify(jf.config), content: jf.content })
      }
      yield* setControl(cs, { complete: true })
      yield* flush(cs, repo)
      yield* store.updateSuite(cs.id, { state: "running" })
    })

  // ------------------------------------------------------------------------------------------
  // running: basic runs become core jobs
  // ------------------------------------------------------------------------------------------

  const publish = (client: Client.Client, job: string, output: string, rule: JobFile.BasicConfig["publish"][number], version: string) =>
    HttpClientRequest.post(`/0/jobs/${encodeURIComponent(job)}/outputs/${encodeURIComponent(output)}/publish`).pipe(
      HttpClientRequest.bodyJson({ series: rule.series, version, name: rule.name }),
      Effect.flatMap((req) => client.http.execute(req)),
      Effect.flatMap(HttpClientResponse.filterStatusOk),
      Effect.scoped,
      Effect.asVoid
    )

  /** One tick of a basic run; true while it is still going (buildomat `basic::run`). */
  const basicRun = (cs: CheckSuiteRow, repo: RepositoryRow, run: CheckRunRow) =>
    Effect.gen(function*() {
      const p = readPrivate(BasicPrivate, run.private)
      if (p.complete) return false
      const save = (np: BasicPrivate, changed: boolean) =>
        store.updateRun(run.id, { private: JSON.stringify(np), ...(changed ? { flushed: 0 } : {}) })
      // A run that fails after its job was submitted also cancels the job, so that nothing
      // keeps running for a check that has already failed.
      const fatal = (message: string) =>
        Effect.gen(function*() {
          if (p.buildomat_id !== undefined) {
            const client = yield* core.forRepo(cs.repo)
            yield* client.api.jobs.cancel({ path: { job: p.buildomat_id as any } }).pipe(Effect.ignore)
          }
          yield* save({ ...p, complete: true, error: message }, true)
          return false
        }).pipe(Effect.catchAll(() => save({ ...p, complete: true, error: message }, true).pipe(Effect.as(false))))
      const cfg = JobFile.decodeBasic(run.config === null ? {} : JSON.parse(run.config))
      if (Either.isLeft(cfg)) return yield* fatal(cfg.left)
      if (run.content === null) return yield* fatal("No script provided by user.")
      const call = github.installation(cs.install)

      if (p.buildomat_id === undefined) {
        if (run.active !== 1) return false
        const deps = JSON.parse(run.dependencies ?? "{}") as Record<string, JobFile.Dependency>
        const depends: Record<string, Jobs.DependSubmit> = {}
        const siblings = yield* store.runsOfSuite(cs.id)
        for (const [depName, dep] of Object.entries(deps)) {
          const other = siblings.find((r) => r.active === 1 && r.name === dep.job)
          if (other === undefined) return true
          if (other.variety !== "basic") return yield* fatal("Basic variety jobs can only depend on other Basic variety jobs.")
          const op = readPrivate(BasicPrivate, other.private)
          if (op.buildomat_id !== undefined) {
            depends[depName] = { prior_job: op.buildomat_id, copy_outputs: true, on_completed: true, on_failed: false }
          } else if (op.complete || op.error !== undefined) {
            return yield* fatal(`Dependency ${JSON.stringify(dep.job)} did not start a buildomat job before finishing.`)
          } else {
            return true
          }
        }
        const extra: Array<number> = []
        if (cfg.right.access_repos.length > 0) {
          if (cs.approved_by === null) {
            return yield* fatal(
              "Use of \"access_repos\" requires authorisation from a member of the organisation that owns the repository."
            )
          }
          for (const entry of cfg.right.access_repos) {
            const m = /^([^/\s]+)\/([^/\s]+)$/.exec(entry)
            if (m === null) {
              return yield* fatal(`The "access_repos" entry ${JSON.stringify(entry)} is not valid. Entries must be of the form "owner/repository".`)
            }
            const r = yield* gh.getRepo(call, m[1]!, m[2]!)
            if (Option.isNone(r)) {
              return yield* fatal(`The "access_repos" entry ${JSON.stringify(entry)} is not valid: this GitHub App cannot see that repository.`)
            }
            extra.push(r.value.id)
          }
        }
        let rust: { channel: string; profile: string } | undefined
        if (typeof cfg.right.rust_toolchain === "string") {
          rust = { channel: cfg.right.rust_toolchain, profile: "default" }
        } else if (cfg.right.rust_toolchain === true) {
          const text = yield* gh.getFile(call, repo.owner, repo.name, "rust-toolchain.toml", cs.head_sha).pipe(
            Effect.map((file): Either.Either<Option.Option<string>, string> => Either.right(file)),
            Effect.catchTag("ContentError", (e) => Effect.succeed(Either.left(e.message)))
          )
          if (Either.isLeft(text)) return yield* fatal(text.left)
          if (Option.isNone(text.right)) return yield* fatal("rust_toolchain = true, but the commit has no rust-toolchain.toml")
          const tc = JobFile.parseRustToolchain(text.right.value)
          if (Either.isLeft(tc)) return yield* fatal(tc.left)
          rust = tc.right
        }
        const token = config.tokenDelivery === "broker"
          ? {
            mode: "broker" as const,
            url: yield* grantCloneToken(run.id).pipe(Effect.provideService(Store, store), Effect.provideService(AppConfig, config))
          }
          : { mode: "store" as const }
        const tasks = Tasks.basicTasks({
          owner: repo.owner,
          repo: repo.name,
          headSha: cs.head_sha,
          headBranch: cs.head_branch,
          setup: config.workerSetup,
          cloneUrl: config.cloneUrl,
          token,
          rust,
          skipClone: cfg.right.skip_clone,
          script: run.content
        })
        const tags: Record<string, string> = {
          "gong.name": run.name,
          "gong.variety": run.variety,
          "gong.repo.owner": repo.owner,
          "gong.repo.name": repo.name,
          "gong.repo.id": String(repo.id),
          "gong.run.id": run.id,
          "gong.suite.id": cs.id,
          "gong.suite.github_id": String(cs.github_id),
          "gong.head.sha": cs.head_sha
        }
        if (run.github_id !== null) tags["gong.run.github_id"] = String(run.github_id)
        if (cs.head_branch !== null) tags["gong.head.branch"] = cs.head_branch
        if (cs.plan_sha !== null) tags["gong.plan.sha"] = cs.plan_sha
        const client = yield* core.forRepo(cs.repo)
        const submitted = yield* client.api.jobs.submit({
          payload: {
            name: `gong/${run.id}`,
            target: cfg.right.target,
            output_rules: cfg.right.output_rules,
            tasks,
            tags,
            ...(Object.keys(depends).length > 0 ? { depends } : {})
          }
        }).pipe(
          Effect.map((r) => Either.right(r.id)),
          Effect.catchTags({
            BadRequest: (e) => Effect.succeed(Either.left(e.message)),
            Forbidden: (e) => Effect.succeed(Either.left(e.message)),
            NotFound: (e) => Effect.succeed(Either.left(e.message))
          })
        )
        if (Either.isLeft(submitted)) return yield* fatal(`Could not submit job: ${submitted.left}`)
        yield* save({ ...p, buildomat_id: submitted.right, extra_repo_ids: extra }, true)
        return true
      }

      const client = yield* core.forRepo(cs.repo)
      const job = yield* client.api.jobs.get({ path: { job: p.buildomat_id as any } })
      let np: BasicPrivate = p
      let changed = false
      if (job.state !== p.job_state) {
        np = { ...np, job_state: job.state }
        changed = true
      }
      const assigned = job.times["assigned"]
      const completed = job.times["complete"]
      if (assigned !== undefined && assigned !== p.time_assigned) {
        np = { ...np, time_assigned: assigned }
        changed = true
      }
      if (completed !== undefined && completed !== p.time_complete) {
        np = { ...np, time_complete: completed }
        changed = true
      }

      if (job.state === "running" && config.tokenDelivery === "store") {
        if (np.token_expires === undefined || np.token_expires - Date.now() < TOKEN_RENEW_MS) {
          const t = yield* github.mintJobToken(cs.install, [repo.id, ...np.extra_repo_ids], { contents: "read" })
          const put = yield* deliverCloneTokenToJobStore(client, job.id, t.token).pipe(Effect.either)
          if (Either.isLeft(put)) {
            const status = put.left._tag === "ResponseError" ? put.left.response.status : undefined
            if (status === 404 || status === 405) {
              return yield* fatal("token_delivery = \"store\", but the core server has no job store (PUT /0/jobs/{job}/store/{name})")
            }
            return yield* Effect.fail(put.left)
          }
          np = { ...np, token_expires: Date.parse(t.expiresAt) }
        }
      }

      const terminal = Jobs.isTerminal(job.state)
      if (terminal || Date.now() - p.event_last_redraw_time >= config.tailRedrawMs) {
        const lines: Array<readonly [string | null, string]> = []
        let minseq = np.event_minseq
        for (let page = 0; page < 20; page++) {
          const events = yield* client.api.jobs.events({ path: { job: job.id as any }, urlParams: { minseq } })
          for (const e of events) {
            const l = tailLine(e)
            if (l !== undefined) lines.push(l)
            minseq = e.seq + 1
          }
          if (events.length < 1000) break
        }
        if (lines.length > 0) {
          np = { ...np, ...pushTail(np, lines) }
          changed = true
        }
        np = { ...np, event_minseq: minseq, event_last_redraw_time: Date.now() }
      }

      if (terminal) {
        const outputs = yield* client.api.jobs.outputs({ path: { job: job.id as any } })
        np = {
          ...np,
          job_outputs: outputs.slice(0, MAX_OUTPUT_LINKS).map((o) => ({
            path: o.path,
            href: artefactUrl(cs, run, o.id, o.path),
            size: formatSize(o.size)
          })),
          job_outputs_extra: Math.max(0, outputs.length - MAX_OUTPUT_LINKS),
          complete: true
        }
        changed = true
        for (const rule of cfg.right.publish) {
          const o = outputs.find((x) => x.path === rule.from_output)
          if (o === undefined) continue
          yield* publish(client, job.id, o.id, rule, cs.head_sha).pipe(
            Effect.catchAll((e) => Effect.logWarning(`run ${run.id}: publish of ${rule.from_output} failed: ${String(e)}`))
          )
        }
      }
      yield* save(np, changed)
      return !np.complete
    })

  const onRunning = (cs: CheckSuiteRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      let going = false
      for (const run of yield* store.runsOfSuite(cs.id)) {
        if (run.variety === "basic") {
          const still = yield* basicRun(cs, repo, run).pipe(
            Effect.catchAll((e) =>
              Effect.logWarning(`run ${run.id} (${run.name}): ${errorText(e)}; trying again`).pipe(Effect.as(true))
            )
          )
          if (still) going = true
        }
      }
      yield* flush(cs, repo)
      if (!going) yield* store.updateSuite(cs.id, { state: "complete" })
    })

  /** One step of a suite in `created`, `planned` or `running`. */
  const processSuite = (cs: CheckSuiteRow) =>
    Effect.gen(function*() {
      const repo = yield* repoOf(cs)
      switch (cs.state) {
        case "created":
          return yield* onCreated(cs, repo)
        case "planned":
          return yield* onPlanned(cs, repo)
        case "running":
          return yield* onRunning(cs, repo)
        default:
          return
      }
    })

  const shape: ChecksShape = {
    processSuite,
    flush,
    installOwner,
    mayControl,
    cancelRun,
    restart,
    rerunOne,
    detailsUrl,
    artefactUrl
  }
  return shape
})

/**
 * A GitHub account type as buildomat stores it: `user`, `bot` or `org`.
 *
 * @since 0.1.0
 * @category utils
 */
export const userType = (t: string | undefined): string => (t === "Organization" ? "org" : t === "Bot" ? "bot" : "user")

/**
 * A readable message for any error the processing may meet.
 *
 * @since 0.1.0
 * @category utils
 */
export const errorText = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const o = e as { _tag?: string; message?: string; route?: string; status?: number }
    if (o._tag === "GitHubError") return `GitHub: ${o.route}: ${o.status ?? "no response"}: ${o.message}`
    if (typeof o.message === "string" && o.message !== "") return o._tag !== undefined ? `${o._tag}: ${o.message}` : o.message
    if (o._tag !== undefined) return o._tag
  }
  return String(e)
}

/**
 * The service:
 *
 * - `processSuite(cs)`: one step of a suite in `created`, `planned` or `running`;
 * - `flush(cs, repo)`: sends the suite's changed runs to GitHub;
 * - `installOwner(id)`: the installation's account;
 * - `mayControl(cs, repo, user)`: whether the user may cancel or re-run (write access, or the
 *   installation's owner);
 * - `cancelRun(cs, run)`: cancels a basic run;
 * - `restart(cs, fields)`: supersedes the suite's runs and makes it `created` again;
 * - `rerunOne(cs, run)`: supersedes one run and makes the suite `planned`;
 * - `detailsUrl`, `artefactUrl`: the page URLs of a run and of an output.
 *
 * Errors other than `GitHubError` and `ChecksError` (core's, the database's) are left
 * `unknown`: the loop logs them and tries again.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChecksShape {
  readonly processSuite: (cs: CheckSuiteRow) => Effect.Effect<void, unknown>
  readonly flush: (cs: CheckSuiteRow, repo: RepositoryRow) => Effect.Effect<void, unknown>
  readonly installOwner: (install: number) => Effect.Effect<UserRow, GitHubError | ChecksError>
  readonly mayControl: (
    cs: CheckSuiteRow,
    repo: RepositoryRow,
    user: { readonly id: number; readonly login: string }
  ) => Effect.Effect<boolean, GitHubError | ChecksError>
  readonly cancelRun: (cs: CheckSuiteRow, run: CheckRunRow) => Effect.Effect<void, unknown>
  readonly restart: (cs: CheckSuiteRow, f?: Partial<Pick<CheckSuiteRow, "approved_by">>) => Effect.Effect<void, unknown>
  readonly rerunOne: (cs: CheckSuiteRow, run: CheckRunRow) => Effect.Effect<void, unknown>
  readonly detailsUrl: (cs: CheckSuiteRow, run: { readonly id: string }) => string
  readonly artefactUrl: (cs: CheckSuiteRow, run: { readonly id: string }, output: string, path: string) => string
}

/**
 * @since 0.1.0
 * @category context
 */
export class Checks extends Context.Tag("@buildomat/github/Checks")<Checks, ChecksShape>() {}

/**
 * Needs `Store`, `GitHubApi`, `CoreAccess`, `AppConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.effect(Checks, make)
