/**
 * What a check run shows on GitHub: the private state of each variety, and how it becomes a
 * status, a conclusion, an output (title, summary, text) and buttons. The words and the
 * mapping follow buildomat (buildomat-github.md §4.1, §4.4, §4.5), with its bugs fixed: the
 * failure summary names the state plainly, a cancelled job concludes `cancelled`, a plan that
 * needs authorisation concludes `action_required`, and every text stays under GitHub's 65535
 * characters.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The state of the `*control` run of a suite: the plan's error, whether it is complete, whether
 * there were no job files, whether it waits for authorisation.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ControlPrivate = Schema.Struct({
  error: Schema.optional(Schema.String),
  complete: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  no_plans: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  need_auth: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
/** @since 0.1.0 @category models */
export type ControlPrivate = typeof ControlPrivate.Type

/**
 * A line of the log tail: `[tag, line]`, where a tagged line is a header (`task`, `control`
 * events) that is kept when it scrolls off.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TailLine = Schema.Tuple(Schema.NullOr(Schema.String), Schema.String)

/**
 * An artefact link: the output's path, its URL on the App's pages and its size, formatted.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OutputLink = Schema.Struct({ path: Schema.String, href: Schema.String, size: Schema.String })

/**
 * The state of a `basic` run (buildomat's `BasicPrivate`, plus `token_expires`, the expiry of
 * the token put in core's job store, in ms since the epoch).
 *
 * @since 0.1.0
 * @category schemas
 */
export const BasicPrivate = Schema.Struct({
  complete: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  job_state: Schema.optional(Schema.String),
  buildomat_id: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String),
  cancelled: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  events_tail: Schema.optionalWith(Schema.Array(TailLine), { default: () => [] }),
  event_minseq: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  event_last_redraw_time: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  event_tail_headers: Schema.optionalWith(Schema.Array(TailLine), { default: () => [] }),
  job_outputs: Schema.optionalWith(Schema.Array(OutputLink), { default: () => [] }),
  job_outputs_extra: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  extra_repo_ids: Schema.optionalWith(Schema.Array(Schema.Number), { default: () => [] }),
  time_assigned: Schema.optional(Schema.String),
  time_complete: Schema.optional(Schema.String),
  token_expires: Schema.optional(Schema.Number)
})
/** @since 0.1.0 @category models */
export type BasicPrivate = typeof BasicPrivate.Type

/**
 * Reads a run's private JSON (NULL or unreadable gives the defaults).
 *
 * @since 0.1.0
 * @category utils
 */
export const readPrivate = <A, I>(schema: Schema.Schema<A, I>, json: string | null): A => {
  try {
    return Schema.decodeUnknownSync(schema)(json === null ? {} : JSON.parse(json))
  } catch {
    return Schema.decodeUnknownSync(schema)({})
  }
}

/**
 * The largest summary or text GitHub accepts, in characters.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_OUTPUT = 65535

/**
 * How many lines the log tail keeps, and how wide each may be (buildomat: 20 and 90).
 *
 * @since 0.1.0
 * @category constants
 */
export const TAIL_LINES = 20
/** @since 0.1.0 @category constants */
export const TAIL_WIDTH = 90

/**
 * How many artefacts a check run lists (buildomat: 25).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_OUTPUT_LINKS = 25

/**
 * A button on a check run (GitHub's `actions`: label ≤ 20, description ≤ 40, identifier ≤ 20
 * characters).
 *
 * @since 0.1.0
 * @category models
 */
export interface Action {
  readonly label: string
  readonly description: string
  readonly identifier: string
}

/** @since 0.1.0 @category constants */
export const AUTHORISE: Action = { identifier: "auth", label: "Authorise", description: "Allow this plan to proceed." }
/** @since 0.1.0 @category constants */
export const CANCEL: Action = { identifier: "cancel", label: "Cancel this job", description: "Cancel execution and fail the check." }
/** @since 0.1.0 @category constants */
export const CANCEL_ALL: Action = { identifier: "cancel_all", label: "Cancel all jobs", description: "Cancel all jobs and fail all checks." }

/**
 * What is sent to GitHub for a run (the body of a create or update, less name, sha and ids).
 *
 * @since 0.1.0
 * @category models
 */
export interface Rendered {
  readonly status: "queued" | "in_progress" | "completed"
  readonly conclusion?: "success" | "failure" | "cancelled" | "action_required"
  readonly title: string
  readonly summary: string
  readonly text?: string
  readonly actions: ReadonlyArray<Action>
  readonly started_at?: string
  readonly completed_at?: string
}

const clip = (s: string, max = MAX_OUTPUT): string =>
  s.length <= max ? s : `${s.slice(0, max - 40)}\n\n... (truncated to fit GitHub's limit)\n`

/**
 * The control run: the plan's progress (buildomat-github.md §4.1).
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderControl = (p: ControlPrivate, ctx: { readonly sha: string; readonly approvedBy: string | undefined; readonly confroot: string }): Rendered => {
  const approval = ctx.approvedBy !== undefined ? `  Plan approved by user ${JSON.stringify(ctx.approvedBy)}.` : ""
  if (p.error !== undefined) {
    return {
      status: "completed",
      conclusion: "failure",
      title: "Failed to load plan",
      summary: clip(`Failed to load plan:\n\`\`\`\n${p.error}\n\`\`\`\n`),
      actions: []
    }
  }
  if (!p.complete) {
    return { status: "in_progress", title: "Plan loaded, creating check runs...", summary: `Plan loaded from commit ${ctx.sha}.${approval}`, actions: [] }
  }
  if (p.need_auth) {
    return {
      status: "completed",
      conclusion: "action_required",
      title: "Plan requires authorisation.",
      summary:
        "Plans submitted by users that are not a member of the organisation require explicit authorisation. " +
        "The owner of the repository, or a member of the organisation that owns it, can press \"Authorise\".",
      actions: [AUTHORISE]
    }
  }
  if (p.no_plans) {
    return {
      status: "completed",
      conclusion: "success",
      title: "No job files.",
      summary: `Plan loaded from commit ${ctx.sha}, but there were no job files in ${ctx.confroot}/jobs.`,
      actions: []
    }
  }
  return { status: "completed", conclusion: "success", title: "Checks underway.", summary: `Plan loaded from commit ${ctx.sha}.${approval}`, actions: [] }
}

/**
 * The text block of a basic run: the header lines (with `...` between groups), then the tail,
 * in a fenced block; `undefined` when there is nothing yet.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderTail = (p: BasicPrivate): string | undefined => {
  if (p.events_tail.length === 0 && p.event_tail_headers.length === 0) return undefined
  const lines: Array<string> = []
  let lastTag: string | null | undefined
  for (const [tag, line] of p.event_tail_headers) {
    if (lastTag !== undefined && tag !== lastTag) lines.push("...")
    lines.push(line)
    lastTag = tag
  }
  if (p.event_tail_headers.length > 0) lines.push("...")
  for (const [, line] of p.events_tail) lines.push(line)
  if (!p.complete) lines.push("...")
  const body = lines.join("\n").replaceAll("```", "`\u200b``")
  return clip(`\`\`\`\n${body}\n\`\`\`\n`)
}

/**
 * A basic run (buildomat-github.md §4.5): the job id and a link to the details page, a note if
 * it was cancelled, up to 25 artefact links, then what state it is in; the log tail as text;
 * the cancel buttons while it is not finished; `started_at` and `completed_at` from core's
 * job times.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderBasic = (p: BasicPrivate, ctx: { readonly detailsUrl: string }): Rendered => {
  let summary = ""
  if (p.buildomat_id !== undefined) {
    summary += `The buildomat job ID is \`${p.buildomat_id}\`.  [Click here](${ctx.detailsUrl}) for more detailed status.\n\n`
  }
  if (p.cancelled) summary += "The job was cancelled by a user.\n\n"
  if (p.job_outputs.length > 0) {
    summary += "The job produced the following artefacts:\n"
    for (const o of p.job_outputs) summary += `* [\`${o.path.replaceAll("`", "'")}\`](${o.href}) (${o.size})\n`
    if (p.job_outputs_extra > 0) summary += `* ... and ${p.job_outputs_extra} more not shown here.\n`
    summary += "\n"
  }
  const text = renderTail(p)
  const times = {
    ...(p.time_assigned !== undefined ? { started_at: p.time_assigned } : {}),
    ...(p.complete && p.time_complete !== undefined ? { completed_at: p.time_complete } : {})
  }
  const withText = text !== undefined ? { text } : {}
  const done = (conclusion: "success" | "failure" | "cancelled", title: string, suffix: string): Rendered => ({
    status: "completed",
    conclusion,
    title,
    summary: clip(summary + suffix),
    actions: [],
    ...withText,
    ...times
  })
  const pending = (status: "queued" | "in_progress", title: string, suffix: string): Rendered => ({
    status,
    title,
    summary: clip(summary + suffix),
    actions: [CANCEL, CANCEL_ALL],
    ...withText,
    ...times
  })
  if (p.complete) {
    if (p.error !== undefined) return done(p.cancelled ? "cancelled" : "failure", p.cancelled ? "Cancelled." : "Failure!", `Flagrant Error: ${p.error}`)
    if (p.job_state === "completed") return done("success", "Success!", "The requested job was completed.")
    if (p.cancelled) return done("cancelled", "Cancelled.", "The job was cancelled before it completed.")
    return done("failure", "Failure!", `Job ended in state ${p.job_state ?? "unknown"}.`)
  }
  if (p.buildomat_id === undefined) return pending("queued", "Waiting to submit...", "The job is in line to run.")
  if (p.job_state === undefined || p.job_state === "queued") return pending("queued", "Waiting to execute...", "The job is in line to run.")
  if (p.job_state === "waiting") return pending("queued", "Waiting for dependencies...", "This job depends on other jobs that have not yet completed.")
  return pending("in_progress", "Running...", "The job is running now!")
}

/**
 * Removes ANSI escape sequences (CSI, OSC and two-character escapes) and other control
 * characters but tab.
 *
 * @since 0.1.0
 * @category rendering
 */
export const stripAnsi = (s: string): string =>
  s
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "")
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, "")
    .replace(/\x1b[@-Z\\-_]/g, "")
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "")

/**
 * One core event as a tail line (buildomat-github.md §4.2): `stdout`/`stderr` as `| line`,
 * `console` as `|C| line`, `panic` as `|!|line` (stripped of ANSI, at most 90 characters then
 * ` [...]`); `worker` as `|W| payload`; `bg.*` dropped; anything else (`task`, `control`) as a
 * tagged header `stream: payload`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const tailLine = (e: { readonly stream: string; readonly task?: number | null | undefined; readonly payload: string }): readonly [string | null, string] | undefined => {
  const cut = (s: string) => {
    const t = stripAnsi(s)
    return t.length > TAIL_WIDTH ? `${t.slice(0, TAIL_WIDTH)} [...]` : t
  }
  switch (e.stream) {
    case "stdout":
    case "stderr":
      return [null, `| ${cut(e.payload)}`]
    case "console":
      return [null, `|C| ${cut(e.payload)}`]
    case "panic":
      return [null, `|!|${cut(e.payload)}`]
    case "worker":
      return [null, `|W| ${stripAnsi(e.payload)}`]
    default:
      if (e.stream.startsWith("bg.")) return undefined
      return [`${e.stream}/${e.task ?? "-"}`, `${e.stream}: ${stripAnsi(e.payload)}`]
  }
}

/**
 * Adds lines to the tail: it keeps the last `TAIL_LINES`; tagged lines that scroll off become
 * headers (at most 100 kept), untagged ones are dropped.
 *
 * @since 0.1.0
 * @category rendering
 */
export const pushTail = (
  p: { readonly events_tail: ReadonlyArray<readonly [string | null, string]>; readonly event_tail_headers: ReadonlyArray<readonly [string | null, string]> },
  lines: ReadonlyArray<readonly [string | null, string]>
) => {
  const tail = [...p.events_tail, ...lines]
  const headers = [...p.event_tail_headers]
  while (tail.length > TAIL_LINES) {
    const [tag, line] = tail.shift()!
    if (tag !== null) headers.push([tag, line])
  }
  return { events_tail: tail, event_tail_headers: headers.slice(-100) }
}

/**
 * A size as buildomat shows it: `%.2f` GiB, MiB or KiB above 1024ⁿ, else `N B`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const formatSize = (n: number): string => {
  if (n > 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)}GiB`
  if (n > 1024 ** 2) return `${(n / 1024 ** 2).toFixed(2)}MiB`
  if (n > 1024) return `${(n / 1024).toFixed(2)}KiB`
  return `${n}B`
}
