/**
 * A loopback HTTP server that answers the buildomat routes the CLI uses with canned JSON, in
 * the wire format of buildomat's API (and our `/ext/` digest route). Tests set its state, script
 * the SSE watch connections, and read back the requests it received.
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export interface Recorded {
  readonly method: string
  readonly url: URL
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

export interface JobEventWire {
  seq: number
  task: number | null
  stream: string
  time: string
  time_remote: string | null
  payload: string
}

/** Writes one SSE frame. */
export const frame = (res: http.ServerResponse, event: string, data: string, id?: string) =>
  res.write(`event: ${event}\n${id !== undefined ? `id: ${id}\n` : ""}data: ${data}\n\n`)

export const sseEvent = (res: http.ServerResponse, ev: JobEventWire) =>
  frame(res, "job", JSON.stringify(ev), `seq-${ev.seq}`)

export type WatchScript = (res: http.ServerResponse, req: http.IncomingMessage) => void

export interface Route {
  (req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: string): boolean
}

export interface FakeState {
  /** Requests in arrival order. */
  readonly requests: Array<Recorded>
  /** Job views by id (`GET /0/job/{id}`); a function is called on every request. */
  readonly jobs: Map<string, unknown | (() => unknown)>
  /** Events by job id (`GET /0/jobs/{id}/events`); a function gives the events visible now. */
  readonly events: Map<string, Array<JobEventWire> | (() => Array<JobEventWire>)>
  /** Watch connections, used one per request, in order; when empty: `check`. */
  readonly watch: Array<WatchScript>
  /** Pages of `GET /1/jobs`, indexed by page token ("" for the first). */
  readonly pages: Map<string, { items: Array<unknown>; next_page: string | null }>
  /** Outputs by job id. */
  readonly outputs: Map<string, Array<{ id: string; path: string; size: number }>>
  /** Digests by output id (`GET /ext/0/jobs/{id}/outputs`). */
  readonly digests: Map<string, string>
  /** Bytes of each output id. */
  readonly files: Map<string, Uint8Array>
  /** Users (`GET /0/users`). */
  readonly users: Array<unknown>
  /** Routes tried before the built-in ones. */
  readonly overrides: Array<Route>
  /** The id `POST /0/jobs` answers. */
  submitId: string
  /** The tokens the fake accepts as user and admin. */
  userToken: string
  adminToken: string
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" })
  res.end(JSON.stringify(body))
}

/** An error body as our server encodes it: buildomat's fields plus Effect's `_tag`. */
export const apiError = (res: http.ServerResponse, status: number, tag: string, message: string) =>
  json(res, status, { _tag: tag, message, request_id: "req-1" })

const resolve = <A>(v: A | (() => A)): A => (typeof v === "function" ? (v as () => A)() : v)

const handle = (state: FakeState, req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: string) => {
  for (const route of state.overrides) if (route(req, res, url, body)) return
  const auth = req.headers.authorization ?? ""
  const token = auth.replace(/^Bearer\s+/i, "")
  const p = url.pathname
  let m: RegExpExecArray | null

  if (p === "/0/users" || p.startsWith("/0/users/")) {
    if (token !== state.adminToken) return apiError(res, 401, "Unauthorized", "not authorised")
    if (req.method === "POST") {
      const { name } = JSON.parse(body) as { name: string }
      return json(res, 201, { id: "01JCREATEDVSER000000000000", name, token: `token-for-${name}` })
    }
    return json(res, 200, state.users)
  }
  if (token !== state.userToken) return apiError(res, 401, "Unauthorized", "not authorised")

  if (p === "/0/whoami") return json(res, 200, { id: "01JVSER0000000000000000000", name: "alice" })
  if (p === "/0/jobs" && req.method === "POST") {
    return json(res, 201, { id: state.submitId })
  }
  if (p === "/1/jobs") {
    const page = state.pages.get(url.searchParams.get("page_token") ?? "")
    return json(res, 200, page ?? { items: [], next_page: null })
  }
  if ((m = /^\/0\/job\/([^/]+)$/.exec(p))) {
    const job = state.jobs.get(m[1]!)
    return job === undefined ? apiError(res, 404, "NotFound", `job ${m[1]} not found`) : json(res, 200, resolve(job))
  }
  if ((m = /^\/0\/jobs\/([^/]+)\/events$/.exec(p))) {
    const minseq = Number(url.searchParams.get("minseq") ?? "0")
    const evs = resolve(state.events.get(m[1]!) ?? [])
    return json(res, 200, evs.filter((e) => e.seq >= minseq))
  }
  if ((m = /^\/0\/jobs\/([^/]+)\/watch$/.exec(p))) {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" })
    const script = state.watch.shift()
    if (script === undefined) {
      frame(res, "check", "-")
      res.end()
      return
    }
    script(res, req)
    return
  }
  if ((m = /^\/0\/jobs\/([^/]+)\/cancel$/.exec(p)) && req.method === "POST") {
    const job = state.jobs.get(m[1]!)
    if (job === undefined) return apiError(res, 404, "NotFound", `job ${m[1]} not found`)
    if ((resolve(job) as { state: string }).state === "completed") {
      return apiError(res, 409, "Conflict", "job already complete")
    }
    res.writeHead(204)
    res.end()
    return
  }
  if ((m = /^\/ext\/0\/jobs\/([^/]+)\/outputs$/.exec(p))) {
    const outs = state.outputs.get(m[1]!) ?? []
    return json(res, 200, outs.map((o) => ({ ...o, sha256: state.digests.get(o.id) ?? "" })))
  }
  if ((m = /^\/0\/jobs\/([^/]+)\/outputs$/.exec(p))) return json(res, 200, state.outputs.get(m[1]!) ?? [])
  if ((m = /^\/0\/jobs\/([^/]+)\/outputs\/([^/]+)$/.exec(p))) {
    const bytes = state.files.get(m[2]!)
    if (bytes === undefined) return apiError(res, 404, "NotFound", "no such output")
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.length) })
    // In two writes, so the client sees more than one chunk.
    const half = Math.floor(bytes.length / 2)
    res.write(bytes.subarray(0, half))
    setTimeout(() => res.end(bytes.subarray(half)), 5)
    return
  }
  return apiError(res, 404, "NotFound", `no route for ${req.method} ${p}`)
}

/** Starts the fake on a random loopback port for the scope's lifetime. */
export const FakeServer = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly state: FakeState; readonly server: http.Server }>((resume) => {
    const state: FakeState = {
      requests: [],
      jobs: new Map(),
      events: new Map(),
      watch: [],
      pages: new Map(),
      outputs: new Map(),
      digests: new Map(),
      files: new Map(),
      users: [],
      overrides: [],
      submitId: "01JSVBM1TTED00000000000000",
      userToken: "user-secret",
      adminToken: "admin-secret"
    }
    const server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        const url = new URL(req.url ?? "/", "http://127.0.0.1")
        state.requests.push({ method: req.method ?? "GET", url, headers: req.headers, body })
        handle(state, req, res, url, body)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, state, server }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)
