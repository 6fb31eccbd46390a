/**
 * Stopping the server (closing the scope of `Testing.serve`): idle keep-alive connections do not
 * hold the stop, a request in flight still completes, and one that stalls is cut after the grace
 * period. The keep-alive timeout is set far beyond the test's own timeout, so a stop that waited
 * on an idle connection would fail the test rather than merely take longer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as GracefulHttp from "../src/server/internal/httpServer.js"
import { startServer, tempDir, userClient } from "./harness.js"
import { assigned, bootAgent, query, runAssigned } from "./live.js"

const job = (name: string) => ({
  name,
  target: "default",
  output_rules: ["/out.bin"],
  tasks: [{ name: "t", script: "true", env_clear: false, env: {}, workdir: null }]
})

/** Never, as far as these tests are concerned. */
const TEN_MINUTES = 600_000

interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
  readonly socket: Net.Socket
}

/** Resolves with the whole answer to `req` (already sent or being sent). */
const answer = (req: Http.ClientRequest) =>
  new Promise<Answer>((resolve, reject) => {
    req.once("error", reject)
    req.once("response", (res) => {
      // Taken now: a keep-alive agent detaches the socket from the response once it has ended.
      const socket = res.socket
      const parts: Array<Buffer> = []
      res.on("data", (d: Buffer) => parts.push(d))
      res.once("error", reject)
      res.once("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), socket }))
    })
  })

/** Resolves when `socket` is closed. */
const closed = (socket: Net.Socket) =>
  new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())))

/**
 * Starts a POST of `body` (of `contentType`) as the worker `token` with `Expect: 100-continue`,
 * so that the server has taken the request (its handler runs) before the body is sent; resolves
 * once the server says to continue, with the request and the first half of the body sent.
 */
const startRequest = (url: string, path: string, token: string, body: Buffer, contentType: string, agent: Http.Agent) =>
  new Promise<Http.ClientRequest>((resolve, reject) => {
    const req = Http.request(`${url}${path}`, {
      method: "POST",
      agent,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": contentType,
        "content-length": String(body.length),
        expect: "100-continue"
      }
    })
    req.once("error", reject)
    req.once("continue", () => {
      req.write(body.subarray(0, Math.floor(body.length / 2)))
      resolve(req)
    })
    req.flushHeaders()
  })

/** A chunk upload of `size` bytes (`startRequest`). */
const startUpload = (url: string, path: string, token: string, size: number, agent: Http.Agent) =>
  startRequest(url, path, token, Buffer.alloc(size, 1), "application/octet-stream", agent)

/**
 * A server on a scope of its own (closing `server` stops it), `user`'s client, and job `name`
 * running on a worker whose agent the test plays.
 */
const runningJob = (user: string, name: string, shutdownGraceMs: number) =>
  Effect.gen(function*() {
    const dir = yield* tempDir()
    const server = yield* Scope.make()
    const s = yield* startServer(dir, 4, { keepAliveTimeoutMs: TEN_MINUTES, shutdownGraceMs }).pipe(Scope.extend(server))
    const { c, user: u } = yield* userClient(s.url, user)
    const { id } = yield* c.api.jobs.submit({ payload: job(name) })
    const agent = yield* bootAgent(s.url, s.requests)
    yield* assigned(agent.c)
    return { dir, server, s, c, user: u, id, agent }
  })

describe("stopping the server", () => {
  it.scopedLive("closes idle keep-alive connections at once, lets requests in flight complete, then closes their connections", () =>
    Effect.gen(function*() {
      // A job with a 16 MiB output, and a second job, running, for an upload.
      const { server, s, c, user, id, agent: first } = yield* runningJob("una", "download", TEN_MINUTES)
      const data = Crypto.randomBytes(16 * 1024 * 1024)
      yield* runAssigned(first.c, id, { outputs: [{ path: "/out.bin", data }] })
      const [output] = yield* c.api.jobs.outputs({ path: { job: id as any } })
      const { id: running } = yield* c.api.jobs.submit({ payload: job("upload") })
      const second = yield* bootAgent(s.url, s.requests)
      yield* assigned(second.c)

      const agents = [0, 1, 2].map(() => new Http.Agent({ keepAlive: true, maxSockets: 1 }))
      yield* Effect.addFinalizer(() => Effect.sync(() => agents.forEach((a) => a.destroy())))
      const [idle, downloads, uploads] = agents as [Http.Agent, Http.Agent, Http.Agent]
      const auth = { authorization: `Bearer ${user.token}` }

      // A keep-alive connection, idle, that the client keeps open.
      const small = yield* Effect.promise(() => answer(Http.get(`${s.url}/0/job/${id}`, { agent: idle, headers: auth })))
      assert.strictEqual(small.status, 200)
      assert.notStrictEqual(small.headers.connection, "close")
      const idleClosed = closed(small.socket)

      // A download in flight: its headers are sent, and the client does not read the body yet, so
      // that the server is still writing it when the stop begins.
      const response = yield* Effect.promise(() =>
        new Promise<Http.IncomingMessage>((resolve, reject) => {
          const req = Http.get(`${s.url}/0/jobs/${id}/outputs/${output!.id}`, { agent: downloads, headers: auth })
          req.once("error", reject)
          req.once("response", (res) => {
            res.pause()
            resolve(res)
          })
        })
      )
      assert.strictEqual(response.statusCode, 200)
      const downloadSocket = response.socket

      // An upload the server has taken, with half its body sent: its answer is not written yet.
      const upload = yield* Effect.promise(() => startUpload(s.url, `/0/worker/job/${running}/chunk`, second.token, 65536, uploads))
      const uploaded = answer(upload)

      const stop = yield* Effect.fork(Scope.close(server, Exit.void))
      // The idle connection goes at once, while the requests in flight hold the stop.
      yield* Effect.promise(() => idleClosed)
      assert.isNull(stop.unsafePoll(), "the server waits for the requests in flight")

      upload.end(Buffer.alloc(65536 / 2, 2))
      const done = yield* Effect.promise(() => uploaded)
      assert.strictEqual(done.status, 201, done.body.toString())
      assert.match(JSON.parse(done.body.toString()).id, /^[0-9A-Z]{26}$/)
      assert.strictEqual(done.headers.connection, "close", "an answer begun during the stop closes its connection")

      const body = yield* Effect.promise(() =>
        new Promise<Buffer>((resolve, reject) => {
          const parts: Array<Buffer> = []
          response.on("data", (d: Buffer) => parts.push(d))
          response.once("error", reject)
          response.once("end", () => resolve(Buffer.concat(parts)))
          response.resume()
        })
      )
      assert.isTrue(body.equals(data), "the download is whole")
      // Its connection was kept alive when the download began; the server closes it now that
      // the download is done, so the stop completes while the client would keep it.
      yield* Effect.promise(() => closed(downloadSocket))
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(stop)))
    }))

  it.scopedLive("a request in flight when the stop begins is stored: the database closes after HTTP", () =>
    Effect.gen(function*() {
      const { dir, server, s, id, agent } = yield* runningJob("wren", "late events", TEN_MINUTES)
      const agents = new Http.Agent({ keepAlive: true })
      yield* Effect.addFinalizer(() => Effect.sync(() => agents.destroy()))
      // Events whose body is half sent when the stop begins: they are stored after it began.
      const body = Buffer.from(JSON.stringify(
        Array.from({ length: 50 }, (_, i) => ({ stream: "stdout", time: new Date().toISOString(), payload: `late ${i}`, task: 0 }))
      ))
      const req = yield* Effect.promise(() =>
        startRequest(s.url, `/1/worker/job/${id}/append`, agent.token, body, "application/json", agents)
      )
      const answered = answer(req)
      const stop = yield* Effect.fork(Scope.close(server, Exit.void))
      yield* Effect.sleep("200 millis")
      req.end(body.subarray(Math.floor(body.length / 2)))
      const done = yield* Effect.promise(() => answered)
      assert.strictEqual(done.status, 204, done.body.toString())
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(stop)))
      const rows = yield* query<{ n: number }>(dir, "SELECT count(*) AS n FROM job_event WHERE job = ? AND payload LIKE 'late %'", [id])
      assert.strictEqual(rows[0]!.n, 50)
    }))

  it.scopedLive("a stop ends event streams and long-polls at once, with answers, however long the grace period", () =>
    Effect.gen(function*() {
      const { server, s, user, id, agent } = yield* runningJob("xena", "watched", TEN_MINUTES)
      const watch = yield* Effect.promise(() =>
        new Promise<Http.IncomingMessage>((resolve, reject) => {
          const req = Http.get(`${s.url}/0/jobs/${id}/watch?minseq=1`, { agent: false, headers: { authorization: `Bearer ${user.token}` } })
          req.once("error", reject)
          req.once("response", resolve)
        })
      )
      let seen = ""
      watch.on("data", (d: Buffer) => (seen += d.toString()))
      const watchEnded = new Promise<string>((resolve, reject) => {
        watch.once("end", () => resolve("end"))
        watch.once("error", reject)
      })
      // The agent's long-poll while its job runs: nothing to say for 20 s.
      const poll = answer(Http.get(`${s.url}/ext/0/worker/ping?wait_ms=20000&job=${id}`, {
        agent: false,
        headers: { authorization: `Bearer ${agent.token}` }
      }))
      yield* Effect.sleep("300 millis")
      assert.include(seen, "event: state")

      // Both end well before the 20 s wait and the ten-minute grace period.
      yield* Scope.close(server, Exit.void).pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the stop waited for the stream or the long-poll") }),
        Effect.orDie
      )
      assert.strictEqual(yield* Effect.promise(() => watchEnded), "end")
      const polled = yield* Effect.promise(() => poll)
      assert.strictEqual(polled.status, 200, polled.body.toString())
    }))

  it.scopedLive("cuts a request that is still in flight after the grace period", () =>
    Effect.gen(function*() {
      const { server, s, id, agent } = yield* runningJob("vera", "stalled", 200)
      const uploads = new Http.Agent({ keepAlive: true })
      yield* Effect.addFinalizer(() => Effect.sync(() => uploads.destroy()))
      // The rest of the body never comes.
      const upload = yield* Effect.promise(() => startUpload(s.url, `/0/worker/job/${id}/chunk`, agent.token, 65536, uploads))
      const outcome = answer(upload).then(
        (a) => `answered ${a.status}`,
        (e: NodeJS.ErrnoException) => `failed ${e.code ?? e.message}`
      )
      yield* Scope.close(server, Exit.void)
      assert.match(yield* Effect.promise(() => outcome), /^failed (ECONNRESET|ECONNABORTED|socket hang up)/)
    }))

  it.scopedLive("a request that finds the API detached is answered 503 with Connection: close", () =>
    Effect.gen(function*() {
      const server = GracefulHttp.make({ graceMs: 1000 })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))),
        () => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
      )
      const { port } = server.address() as Net.AddressInfo
      const res = yield* Effect.promise(() => answer(Http.get(`http://127.0.0.1:${port}/0/ping`, { agent: false })))
      assert.strictEqual(res.status, 503)
      assert.strictEqual(res.headers.connection, "close")
      assert.strictEqual(res.headers["retry-after"], "1")
      assert.match(JSON.parse(res.body.toString()).message, /not serving requests/)
    }))
})
