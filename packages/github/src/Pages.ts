/**
 * The App's web pages and proxies (buildomat-github.md §5), served next to the webhook:
 *
 * | route | what |
 * |---|---|
 * | `GET /details/{suite}/{url_key}/{run}` | a run: the plan (control) or the job, its artefacts with size and SHA-256, the log with ANSI colours |
 * | `GET /details/{suite}/{url_key}/{run}/live?minseq=N` | the log as Server-Sent Events (`row`, then `end`) |
 * | `GET, HEAD /artefact/{suite}/{url_key}/{run}/{output}/{name}` | an output, proxied from core with byte ranges |
 * | `GET, HEAD /public/file/{owner}/{repo}/{series}/{version}/{name}` | a published file, proxied from core |
 * | `GET /status` | active and recent builds; private repositories are not named |
 * | `GET /job-token/{run}/{nonce}` | the clone-token broker (see `CloneToken`) |
 *
 * Every user-supplied string (job names, paths, log lines, branch names) is HTML-escaped. The
 * pages of a suite need its 48-character `url_key`, and the run must belong to the suite; any
 * miss is the same 404. Errors are a 500 page with status 500 (buildomat sent 404). Artefacts are
 * served with `Content-Security-Policy: sandbox` and `nosniff`, so an HTML artefact cannot run
 * script on the App's origin.
 *
 * @since 0.1.0
 */
import { Ids, Jobs } from "@buildomat/core"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option, Schedule, Stream } from "effect"
import * as Crypto from "node:crypto"
import { BasicPrivate, ControlPrivate, formatSize, readPrivate } from "./CheckRuns.js"
import { CONTROL_NAME } from "./Checks.js"
import { BROKER_PATH, redeemCloneToken, RedeemError } from "./CloneToken.js"
import { AppConfig } from "./Config.js"
import { CoreAccess, coreUserName } from "./CoreAccess.js"
import { GitHubApi } from "./GitHubApi.js"
import { ansiLine, esc, LIVE_JS, page } from "./internal/html.js"
import { isUlid } from "./internal/ids.js"
import * as JobFile from "./JobFile.js"
import type { CheckRunRow, CheckSuiteRow, RepositoryRow } from "./Store.js"
import { Store } from "./Store.js"
import * as Webhook from "./Webhook.js"

/**
 * How much log a details page shows, in bytes of payload (buildomat: 15 MiB).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_LOG_BYTES = 15 * 1024 * 1024

const PAGE_HEADERS = (nonce: string) => ({
  "content-security-policy": `default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:`,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
})

const htmlResponse = (status: number, title: string, body: string, script?: string) => {
  const nonce = Crypto.randomBytes(16).toString("base64")
  const html = page(esc(title), body, script).replace("<script>", `<script nonce="${nonce}">`)
  return HttpServerResponse.text(html, { status, contentType: "text/html; charset=utf-8", headers: PAGE_HEADERS(nonce) })
}

/**
 * The 404 page: the same for every miss, so that nothing can be learned from it.
 *
 * @since 0.1.0
 * @category pages
 */
export const notFound = () => htmlResponse(404, "Not found", "<h1>Not found</h1><p>There is nothing here.</p>")

const errorPage = (id: string) =>
  htmlResponse(500, "Error", `<h1>Something went wrong</h1><p>Your request ID was <b>${esc(id)}</b>.</p>`)

/** The CSS class of an event row by stream (buildomat). */
const rowClass = (stream: string) =>
  ["stdout", "stderr", "task", "worker", "control", "console", "panic"].includes(stream)
    ? `s_${stream}`
    : stream.startsWith("bg.")
    ? "s_bgtask"
    : "s_default"

/** The cells of an event row, as HTML. */
const rowHtml = (e: Jobs.JobEvent) => {
  const bg = /^bg\.([^.]+)\.(stdout|stderr)$/.exec(e.stream)
  const text = bg !== null ? `[${bg[1]}] ${e.payload}` : e.payload
  return `<td class="num"><a href="#S${e.seq}">${e.seq}</a></td>` +
    `<td class="field">${esc(e.time.replace(/(\.\d{3})\d*Z$/, "$1Z"))}</td>` +
    `<td class="payload">${ansiLine(text)}</td>`
}

/** A MIME type for an artefact, from its name; HTML and SVG are served as text. */
export const guessType = (name: string): string => {
  const n = name.toLowerCase()
  if (n === "cargo.lock" || /\.log(\.\d+)?$/.test(n)) return "text/plain; charset=utf-8"
  const ext = /\.([a-z0-9]+)$/.exec(n)?.[1] ?? ""
  const types: Record<string, string> = {
    txt: "text/plain; charset=utf-8",
    md: "text/plain; charset=utf-8",
    html: "text/plain; charset=utf-8",
    htm: "text/plain; charset=utf-8",
    svg: "text/plain; charset=utf-8",
    toml: "text/plain; charset=utf-8",
    json: "application/json",
    csv: "text/csv",
    png: "image/png",
    jpg: "image/jpeg",
    jpeg: "image/jpeg",
    gif: "image/gif",
    gz: "application/gzip",
    tgz: "application/gzip",
    tar: "application/x-tar",
    zip: "application/zip",
    xz: "application/x-xz",
    zst: "application/zstd",
    pdf: "application/pdf"
  }
  return types[ext] ?? "application/octet-stream"
}

const ageOf = (iso: string | undefined) => {
  if (iso === undefined) return ""
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  return h > 0 ? `${h} h ${m} m` : m > 0 ? `${m} m ${s % 60} s` : `${s} s`
}

const keysEqual = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && Crypto.timingSafeEqual(x, y)
}

/**
 * The pages as an `HttpRouter`, with the webhook at `POST /webhook`. Needs `AppConfig`,
 * `Store`, `CoreAccess`, `GitHubApi`, `Wakeup` and an `HttpClient`.
 *
 * @since 0.1.0
 * @category routers
 */
export const router = Effect.gen(function*() {
  const config = yield* AppConfig
  const store = yield* Store
  const core = yield* CoreAccess
  const github = yield* GitHubApi
  const http = yield* HttpClient.HttpClient

  /** The suite and run named by a URL, if the key matches and the run is the suite's. */
  const lookup = (suiteId: string | undefined, key: string | undefined, runId: string | undefined) =>
    Effect.gen(function*() {
      if (suiteId === undefined || key === undefined || runId === undefined || !isUlid(suiteId) || !isUlid(runId)) {
        return Option.none()
      }
      const cs = yield* store.getSuite(suiteId.toUpperCase())
      const run = yield* store.getRun(runId.toUpperCase())
      if (Option.isNone(cs) || Option.isNone(run)) return Option.none()
      if (!keysEqual(cs.value.url_key, key) || run.value.check_suite !== cs.value.id) return Option.none()
      const repo = yield* store.getRepository(cs.value.repo)
      if (Option.isNone(repo)) return Option.none()
      return Option.some({ cs: cs.value, run: run.value, repo: repo.value })
    })

  const githubUrl = (repo: RepositoryRow) => `https://github.com/${encodeURIComponent(repo.owner)}/${encodeURIComponent(repo.name)}`

  const controlBody = (cs: CheckSuiteRow, run: CheckRunRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      const p = readPrivate(ControlPrivate, run.private)
      const runs = yield* store.runsOfSuite(cs.id)
      const byName = new Map<string, Array<CheckRunRow>>()
      for (const r of runs) byName.set(r.name, [...(byName.get(r.name) ?? []), r])
      let out = `<p>Repository <a href="${esc(githubUrl(repo))}">${esc(repo.owner)}/${esc(repo.name)}</a>, commit <code>${esc(cs.head_sha)}</code>` +
        `${cs.head_branch !== null ? ` on branch <code>${esc(cs.head_branch)}</code>` : ""}; suite state <b>${esc(cs.state)}</b>.</p>`
      if (p.error !== undefined) out += `<h2>The plan could not be loaded</h2><pre>${esc(p.error)}</pre>`
      if (p.need_auth) out += "<p>This plan waits for authorisation by the owner of the repository or a member of its organisation.</p>"
      out += "<h2>Check Runs:</h2><ul>"
      for (const name of [...byName.keys()].sort()) {
        out += `<li><b>${esc(name)}</b><ul>`
        for (const r of byName.get(name)!) {
          const link = `<a href="${esc(r.id)}">${esc(r.id)}</a>`
          const gh = r.github_id !== null ? ` (GitHub ID <a href="${esc(`${githubUrl(repo)}/runs/${r.github_id}`)}">${r.github_id}</a>)` : ""
          const created = new Date(Ids.timestamp(r.id)).toISOString()
          out += `<li>${r.active === 1 ? "<b>" : ""}${link} [created ${esc(ageOf(created))} ago]${gh}` +
            `${r.active === 1 ? " [latest instance]</b>" : ""}</li>`
        }
        out += "</ul></li>"
      }
      return `${out}</ul>`
    })

  const basicBody = (cs: CheckSuiteRow, run: CheckRunRow, repo: RepositoryRow) =>
    Effect.gen(function*() {
      const p = readPrivate(BasicPrivate, run.private)
      const cfg = JobFile.decodeBasic(run.config === null ? {} : JSON.parse(run.config))
      let out = `<p>Repository <a href="${esc(githubUrl(repo))}">${esc(repo.owner)}/${esc(repo.name)}</a>, commit ` +
        `<a href="${esc(`${githubUrl(repo)}/commit/${cs.head_sha}`)}"><code>${esc(cs.head_sha)}</code></a>` +
        `${cs.head_branch !== null ? ` on branch <code>${esc(cs.head_branch)}</code>` : ""}.</p>`
      out += `<h2>Configuration</h2><pre>${esc(cfg._tag === "Right" ? JSON.stringify(cfg.right, null, 2) : cfg.left)}</pre>`
      if (p.error !== undefined) out += `<p><b>Error:</b> ${esc(p.error)}</p>`
      if (p.buildomat_id === undefined) {
        out += `<p>${p.complete ? "No buildomat job was started." : "The job has not been submitted yet."}</p>`
        return { body: out, script: undefined as string | undefined }
      }
      const client = yield* core.forRepo(cs.repo)
      const jobId = p.buildomat_id
      const job = yield* client.api.jobs.get({ path: { job: jobId as any } })
      out += `<h2>Buildomat Job: ${esc(jobId)}</h2>`
      out += `<p>State <b>${esc(job.state)}</b>${job.cancelled ? " (cancelled)" : ""}, target <code>${esc(job.target)}</code>` +
        `${job.target_real !== job.target ? ` → <code>${esc(job.target_real)}</code>` : ""}.</p>`
      out += "<p>Tags:</p><ul>"
      for (const k of Object.keys(job.tags).sort()) out += `<li><code>${esc(k)}</code> = <code>${esc(job.tags[k])}</code></li>`
      out += "</ul>"
      const outputs = yield* client.api.jobs.outputDigests({ path: { job: jobId as any } })
      if (outputs.length > 0) {
        out += "<h2>Artefacts:</h2><table class=\"list\"><tr><th>path</th><th>size</th><th>SHA-256</th><th></th></tr>"
        for (const o of outputs) {
          const name = o.path.split("/").pop() || "output"
          const href = `${config.baseUrl}/artefact/${cs.id}/${cs.url_key}/${run.id}/${o.id}/${encodeURIComponent(name)}`
          out += `<tr><td><code>${esc(o.path)}</code></td><td>${esc(formatSize(o.size))} (${o.size} bytes)</td>` +
            `<td><code>${esc(o.sha256)}</code></td><td><a href="${esc(href)}" download="${esc(name)}">download</a></td></tr>`
        }
        out += "</table>"
      }
      out += "<h2>Output:</h2>"
      let rows = ""
      let bytes = 0
      let next = 1
      let lastTask: number | null | undefined
      let truncated = false
      for (;;) {
        const events = yield* client.api.jobs.events({ path: { job: jobId as any }, urlParams: { minseq: next } })
        if (events.length === 0) break
        for (const e of events) {
          if (bytes > MAX_LOG_BYTES) {
            truncated = true
            break
          }
          if (lastTask !== undefined && e.task !== lastTask) rows += "<tr class=\"sep\"><td colspan=\"3\"></td></tr>"
          lastTask = e.task ?? null
          rows += `<tr class="${rowClass(e.stream)}" id="S${e.seq}">${rowHtml(e)}</tr>\n`
          bytes += e.payload.length
          next = e.seq + 1
        }
        if (truncated) break
      }
      out += `<table class="log" id="table_output" data-last-task="${lastTask === undefined ? "" : esc(String(lastTask))}">${rows}</table>`
      if (truncated) out += "<p><b>The log is longer than 15 MiB; the rest is not shown.</b></p>"
      const finished = Jobs.isTerminal(job.state)
      if (finished) return { body: out, script: undefined }
      out += "<p id=\"live-note\">Following the job as it runs...</p><button id=\"more-button\">⇊ new log records ⇊</button>"
      return { body: out, script: `${LIVE_JS}\nbasic_live(${JSON.stringify(`./${run.id}/live?minseq=${next}`)});` }
    })

  const details = Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const found = yield* lookup(params["suite"], params["key"], params["run"])
    if (Option.isNone(found)) return notFound()
    const { cs, repo, run } = found.value
    const title = `Check Run: ${run.name}`
    const head = `<h1>${esc(run.id)}: ${esc(run.name)}</h1>`
    if (run.variety === "control" || run.name === CONTROL_NAME) {
      return htmlResponse(200, title, head + (yield* controlBody(cs, run, repo)))
    }
    const b = yield* basicBody(cs, run, repo)
    return htmlResponse(200, title, head + b.body, b.script)
  })

  const live = Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const req = yield* HttpServerRequest.HttpServerRequest
    const query = yield* HttpServerRequest.ParsedSearchParams
    const found = yield* lookup(params["suite"], params["key"], params["run"])
    if (Option.isNone(found)) return notFound()
    const p = readPrivate(BasicPrivate, found.value.run.private)
    if (p.buildomat_id === undefined) return notFound()
    const client = yield* core.forRepo(found.value.cs.repo)
    // Where to start: Last-Event-ID (a reconnecting EventSource) wins over ?minseq.
    const last = /^seq-(\d+)$/.exec(req.headers["last-event-id"] ?? "")
    const minq = typeof query["minseq"] === "string" && /^\d+$/.test(query["minseq"]) ? Number(query["minseq"]) : 1
    const minseq = last !== null ? Number(last[1]) + 1 : Math.max(1, minq)
    const enc = new TextEncoder()
    const rows = client.watch(p.buildomat_id, { minseq }).pipe(
      Stream.takeUntil((m) => m._tag === "complete" || m._tag === "check"),
      Stream.filterMap((m) => {
        if (m._tag === "event") {
          const e = m.event
          const data = JSON.stringify({ seq: e.seq, task: e.task ?? null, css_class: rowClass(e.stream), html: rowHtml(e) })
          return Option.some(`event: row\nid: seq-${e.seq}\ndata: ${data}\n\n`)
        }
        if (m._tag === "complete" || m._tag === "check") return Option.some("event: end\ndata: -\n\n")
        return Option.none()
      }),
      Stream.catchAll(() => Stream.make("event: end\ndata: -\n\n"))
    )
    const keepalive = Stream.repeatEffectWithSchedule(Effect.succeed(": nothing happens\n\n"), Schedule.spaced("5 seconds")).pipe(Stream.drop(1))
    const body = Stream.merge(rows, keepalive, { haltStrategy: "left" }).pipe(Stream.map((s) => enc.encode(s)))
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    })
  })

  /** Relays a core response: status, length, range headers, and the body unless HEAD. */
  const relay = (res: { status: number; headers: Readonly<Record<string, string>>; stream: Stream.Stream<Uint8Array, unknown> }, name: string, head: boolean) => {
    const headers: Record<string, string> = {
      "content-security-policy": "sandbox; default-src 'none'",
      "x-content-type-options": "nosniff",
      "content-disposition": `inline; filename="${name.replace(/["\\\r\n]/g, "_")}"`
    }
    for (const h of ["content-range", "accept-ranges", "repr-digest", "last-modified", "etag"]) {
      const v = res.headers[h]
      if (v !== undefined) headers[h] = v
    }
    const length = res.headers["content-length"]
    if (res.status === 416 || head) {
      if (length !== undefined) headers["content-length"] = length
      return HttpServerResponse.empty({ status: res.status, headers: { ...headers, "content-type": guessType(name) } })
    }
    return HttpServerResponse.stream(res.stream.pipe(Stream.mapError((e) => e as Error)), {
      status: res.status,
      contentType: guessType(name),
      ...(length !== undefined ? { contentLength: Number(length) } : {}),
      headers
    })
  }

  const artefact = (head: boolean) =>
    Effect.gen(function*() {
      const params = yield* HttpRouter.params
      const req = yield* HttpServerRequest.HttpServerRequest
      const found = yield* lookup(params["suite"], params["key"], params["run"])
      if (Option.isNone(found) || found.value.run.variety !== "basic") return notFound()
      const p = readPrivate(BasicPrivate, found.value.run.private)
      const output = params["output"]
      if (p.buildomat_id === undefined || output === undefined || !isUlid(output)) return notFound()
      const client = yield* core.forRepo(found.value.cs.repo)
      let r = HttpClientRequest.get(`/0/jobs/${p.buildomat_id}/outputs/${output}`)
      const range = req.headers["range"]
      if (range !== undefined) r = HttpClientRequest.setHeader(r, "range", range)
      const res = yield* client.http.execute(r)
      if (res.status === 404 || res.status === 403 || res.status === 400) return notFound()
      if (res.status >= 500) return yield* Effect.fail(new Error(`core answered ${res.status}`))
      return relay(res, params["name"] ?? "output", head)
    })

  const publicFile = (head: boolean) =>
    Effect.gen(function*() {
      const p = yield* HttpRouter.params
      const { owner, repo: name, series, version, name: file } = p
      if (owner === undefined || name === undefined || series === undefined || version === undefined || file === undefined) return notFound()
      const repo = yield* store.repositoryByName(owner, name)
      if (Option.isNone(repo)) return notFound()
      const req = yield* HttpServerRequest.HttpServerRequest
      const seg = (s: string) => encodeURIComponent(s)
      let r = HttpClientRequest.get(`${core.url}/0/public/file/${seg(coreUserName(repo.value.id))}/${seg(series)}/${seg(version)}/${seg(file)}`)
      const range = req.headers["range"]
      if (range !== undefined) r = HttpClientRequest.setHeader(r, "range", range)
      const res = yield* http.execute(r)
      if (res.status >= 400 && res.status < 500 && res.status !== 416) return notFound()
      if (res.status >= 500) return yield* Effect.fail(new Error(`core answered ${res.status}`))
      return relay(res, file, head)
    })

  const status = Effect.gen(function*() {
    const runs = yield* store.recentRuns(300)
    const active: Array<string> = []
    const done: Array<string> = []
    for (const r of runs) {
      const p = readPrivate(BasicPrivate, r.private)
      if (p.buildomat_id === undefined && p.complete) continue
      const pub = r.visibility === "public" && r.owner !== null && r.repo_name !== null
      let what: string
      if (pub) {
        const base = `https://github.com/${encodeURIComponent(r.owner!)}/${encodeURIComponent(r.repo_name!)}`
        what = `<a href="${esc(base)}">${esc(r.owner)}/${esc(r.repo_name)}</a>` +
          `${r.head_branch !== null ? ` (${esc(r.head_branch)})` : ""}: ` +
          `<a href="${esc(`details/${r.suite_id}/${r.url_key}/${r.run_id}`)}">${esc(r.name)}</a> at ` +
          `<a href="${esc(`${base}/commit/${r.head_sha}`)}"><code>${esc(r.head_sha.slice(0, 12))}</code></a>` +
          `${r.run_github_id !== null ? ` [<a href="${esc(`${base}/runs/${r.run_github_id}`)}">GitHub</a>]` : ""}`
      } else {
        what = "<span class=\"private\">This build is linked to a private GitHub repository.</span>"
      }
      const job = p.buildomat_id !== undefined ? ` job <code>${esc(p.buildomat_id)}</code>` : ""
      if (!p.complete) {
        active.push(`<li>${what}${job}: ${esc(p.job_state ?? "waiting to submit")}${p.time_assigned !== undefined ? `, running for ${esc(ageOf(p.time_assigned))}` : ""}</li>`)
      } else if (done.length < 50) {
        const cls = p.job_state === "completed" && p.error === undefined ? "ok" : p.cancelled ? "cancel" : "fail"
        const label = cls === "ok" ? "OK" : cls === "cancel" ? "CANCEL" : "FAIL"
        done.push(`<li><span class="${cls}">[${label}]</span> ${what}${job}${p.time_complete !== undefined ? `, ${esc(ageOf(p.time_complete))} ago` : ""}</li>`)
      }
    }
    const body = "<h1>Build status</h1>" +
      `<h2>Active jobs</h2>${active.length > 0 ? `<ul>${active.join("\n")}</ul>` : "<p>None.</p>"}` +
      `<h2>Recently completed jobs</h2>${done.length > 0 ? `<ul>${done.join("\n")}</ul>` : "<p>None.</p>"}`
    return htmlResponse(200, "Build status", body)
  })

  const jobToken = Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const runId = params["run"]
    const nonce = params["nonce"]
    if (runId === undefined || nonce === undefined || !isUlid(runId) || !/^[A-Za-z0-9_-]{20,100}$/.test(nonce)) {
      return HttpServerResponse.text("no such grant\n", { status: 404 })
    }
    const id = runId.toUpperCase()
    const context = Effect.gen(function*() {
      const run = yield* store.getRun(id)
      if (Option.isNone(run)) return yield* new RedeemError({ status: 404, message: "no such grant" })
      const cs = yield* store.getSuite(run.value.check_suite)
      if (Option.isNone(cs)) return yield* new RedeemError({ status: 404, message: "no such grant" })
      return { run: run.value, cs: cs.value, p: readPrivate(BasicPrivate, run.value.private) }
    })
    const check = (first: boolean) =>
      Effect.gen(function*() {
        const { cs, p } = yield* context
        if (p.buildomat_id === undefined) return yield* new RedeemError({ status: 409, message: "the job has not been submitted" })
        const client = yield* core.forRepo(cs.repo)
        const job = yield* client.api.jobs.get({ path: { job: p.buildomat_id as any } })
        if (job.state !== "running") return yield* new RedeemError({ status: 409, message: `the job is ${job.state}, not running` })
        if (first) {
          const current = job.tasks.find((t) => t.state === "pending")
          if (current?.name !== "authentication") {
            return yield* new RedeemError({ status: 409, message: "the token is only handed to the authentication task" })
          }
        }
      })
    const mint = () =>
      Effect.gen(function*() {
        const { cs, p } = yield* context
        return yield* github.mintJobToken(cs.install, [cs.repo, ...p.extra_repo_ids], { contents: "read" })
      })
    return yield* redeemCloneToken(id, nonce, check, mint).pipe(
      Effect.map((text) => HttpServerResponse.text(text, { headers: { "cache-control": "no-store" } })),
      Effect.catchTag("RedeemError", (e) => Effect.succeed(HttpServerResponse.text(`${e.message}\n`, { status: e.status })))
    )
  })

  const index = Effect.succeed(htmlResponse(200, "buildomat", "<h1>buildomat</h1><p>The GitHub App of a buildomat build farm. See <a href=\"status\">the build status</a>.</p>"))

  const withErrors = <E, R>(e: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    e.pipe(
      Effect.catchAllCause((cause) =>
        Effect.gen(function*() {
          const id = Crypto.randomUUID()
          yield* Effect.logError(`request ${id} failed`, cause)
          return errorPage(id)
        })
      )
    )

  return HttpRouter.empty.pipe(
    HttpRouter.post("/webhook", Webhook.handler),
    HttpRouter.get("/", withErrors(index)),
    HttpRouter.get("/status", withErrors(status)),
    HttpRouter.get("/details/:suite/:key/:run", withErrors(details)),
    HttpRouter.get("/details/:suite/:key/:run/live", withErrors(live)),
    HttpRouter.get("/artefact/:suite/:key/:run/:output/:name", withErrors(artefact(false))),
    HttpRouter.head("/artefact/:suite/:key/:run/:output/:name", withErrors(artefact(true))),
    HttpRouter.get("/public/file/:owner/:repo/:series/:version/:name", withErrors(publicFile(false))),
    HttpRouter.head("/public/file/:owner/:repo/:series/:version/:name", withErrors(publicFile(true))),
    HttpRouter.get(`${BROKER_PATH}/:run/:nonce`, withErrors(jobToken))
  )
})
