/**
 * The GitHub calls the App makes, each with its documented route (docs.github.com/en/rest):
 * contents, commits, organisation membership, collaborator permission, check suites and check
 * runs.
 *
 * @internal
 */
import { Data, Effect, Option } from "effect"
import type { GitHubError, GitHubResponse } from "../GitHubApi.js"
import { paginate } from "../GitHubApi.js"

/** A request function bound to one installation. */
export type Call = <T = unknown>(route: string, params?: Record<string, unknown>) => Effect.Effect<GitHubResponse<T>, GitHubError>

const notFoundAsNone = <A>(e: Effect.Effect<A, GitHubError>) =>
  e.pipe(
    Effect.map(Option.some),
    Effect.catchIf((x) => x.notFound, () => Effect.succeed(Option.none<A>()))
  )

/** The head commit of the default branch: `GET /repos/{owner}/{repo}/commits?per_page=1`. */
export const defaultBranchHead = (call: Call, owner: string, repo: string) =>
  call<Array<{ sha: string }>>("GET /repos/{owner}/{repo}/commits", { owner, repo, per_page: 1 }).pipe(
    Effect.map((r) => Option.fromNullable(r.data[0]?.sha))
  )

/** Thrown when a path is not what the caller expected (a directory, too big, not UTF-8). */
export class ContentError extends Data.TaggedError("ContentError")<{ readonly message: string }> {}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * A file's text at `ref` (`GET /repos/{owner}/{repo}/contents/{path}?ref=`), `None` if there is
 * no such path. Fails with a `ContentError` message for a directory, a file over `maxBytes`, or
 * one that is not UTF-8.
 */
export const getFile = (call: Call, owner: string, repo: string, path: string, ref: string, maxBytes = 1024 * 1024) =>
  notFoundAsNone(call<unknown>("GET /repos/{owner}/{repo}/contents/{path}", { owner, repo, path, ref })).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(Option.none<string>()),
      onSome: (r) => {
        const d = r.data as { type?: string; encoding?: string; content?: string; size?: number }
        if (Array.isArray(r.data) || d.type !== "file") return Effect.fail(new ContentError({ message: `${path} is not a file` }))
        if ((d.size ?? 0) > maxBytes) return Effect.fail(new ContentError({ message: `${path} is larger than ${maxBytes} bytes` }))
        if (d.encoding !== "base64" || typeof d.content !== "string") {
          return Effect.fail(new ContentError({ message: `${path}: GitHub did not send its content as base64` }))
        }
        try {
          return Effect.succeed(Option.some(utf8.decode(Buffer.from(d.content, "base64"))))
        } catch {
          return Effect.fail(new ContentError({ message: `${path} is not valid UTF-8` }))
        }
      }
    }))
  )

/** An entry of a directory listing. */
export interface DirEntry {
  readonly name: string
  readonly path: string
  readonly type: string
  readonly size: number
}

/** A directory's entries at `ref`, `None` if there is no such path. */
export const listDir = (call: Call, owner: string, repo: string, path: string, ref: string) =>
  notFoundAsNone(call<unknown>("GET /repos/{owner}/{repo}/contents/{path}", { owner, repo, path, ref })).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(Option.none<ReadonlyArray<DirEntry>>()),
      onSome: (r) =>
        Array.isArray(r.data)
          ? Effect.succeed(Option.some(r.data as ReadonlyArray<DirEntry>))
          : Effect.fail(new ContentError({ message: `${path} is not a directory` }))
    }))
  )

/** A repository: `GET /repos/{owner}/{repo}`; `None` if it does not exist or is not visible. */
export const getRepo = (call: Call, owner: string, repo: string) =>
  notFoundAsNone(
    call<{ id: number; name: string; owner: { login: string }; visibility?: string; private: boolean }>("GET /repos/{owner}/{repo}", {
      owner,
      repo
    }).pipe(Effect.map((r) => r.data))
  )

/** Whether `user` is a member of `org`: `GET /orgs/{org}/members/{username}` answers 204. */
export const isOrgMember = (call: Call, org: string, user: string) =>
  call("GET /orgs/{org}/members/{username}", { org, username: user }).pipe(
    Effect.map((r) => r.status === 204),
    Effect.catchIf((e) => e.status === 404 || e.status === 302, () => Effect.succeed(false))
  )

/**
 * The permission `user` has on the repository (`admin`, `maintain`, `write`, `triage`, `read`
 * or `none`): `GET /repos/{owner}/{repo}/collaborators/{username}/permission`.
 */
export const permission = (call: Call, owner: string, repo: string, user: string) =>
  call<{ permission: string; role_name?: string }>("GET /repos/{owner}/{repo}/collaborators/{username}/permission", {
    owner,
    repo,
    username: user
  }).pipe(
    Effect.map((r) => r.data.role_name ?? r.data.permission),
    Effect.catchIf((e) => e.notFound, () => Effect.succeed("none"))
  )

/** A check suite as GitHub lists it. */
export interface GhSuite {
  readonly id: number
  readonly head_sha: string
  readonly head_branch: string | null
  readonly app: { readonly id: number } | null
}

/** The App's check suites for a commit, every page. */
export const suitesForRef = (call: Call, owner: string, repo: string, sha: string, appId: number) =>
  paginate<GhSuite>(call, "GET /repos/{owner}/{repo}/commits/{ref}/check-suites", { owner, repo, ref: sha, app_id: appId }, "check_suites")

/** `POST /repos/{owner}/{repo}/check-suites`. */
export const createSuite = (call: Call, owner: string, repo: string, sha: string) =>
  call<GhSuite>("POST /repos/{owner}/{repo}/check-suites", { owner, repo, head_sha: sha }).pipe(Effect.map((r) => r.data))

/** A check run as GitHub lists it. */
export interface GhRun {
  readonly id: number
  readonly name: string
  readonly external_id: string | null
  readonly status: string
  readonly conclusion: string | null
  readonly app?: { readonly id: number } | null
}

/** Every check run of a suite (`filter=all`: every instance, not only the latest per name). */
export const runsInSuite = (call: Call, owner: string, repo: string, suite: number) =>
  paginate<GhRun>(call, "GET /repos/{owner}/{repo}/check-suites/{check_suite_id}/check-runs", {
    owner,
    repo,
    check_suite_id: suite,
    filter: "all"
  }, "check_runs")

/** The body of a check-run create or update. */
export interface RunBody {
  readonly details_url?: string
  readonly status: "queued" | "in_progress" | "completed"
  readonly conclusion?: string
  readonly started_at?: string
  readonly completed_at?: string
  readonly output?: { readonly title: string; readonly summary: string; readonly text?: string }
  readonly actions?: ReadonlyArray<{ readonly label: string; readonly description: string; readonly identifier: string }>
}

/** `POST /repos/{owner}/{repo}/check-runs`; the new run's id. */
export const createRun = (call: Call, owner: string, repo: string, body: RunBody & { name: string; head_sha: string; external_id: string }) =>
  call<{ id: number }>("POST /repos/{owner}/{repo}/check-runs", { owner, repo, ...body }).pipe(Effect.map((r) => r.data.id))

/** `PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}`. */
export const updateRun = (call: Call, owner: string, repo: string, id: number, body: RunBody) =>
  call("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", { owner, repo, check_run_id: id, ...body }).pipe(Effect.asVoid)
