import { NodeHttpClient } from "@effect/platform-node"
import { Client, Ids } from "@buildomat/core"
import type { Jobs } from "@buildomat/core"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { follow, renderEvent, renderStateChange, RetryDelay } from "../src/internal/tail.js"
import { FakeServer, frame, sseEvent } from "./support/fakeServer.js"
import type { JobEventWire } from "./support/fakeServer.js"

const ev = (seq: number, stream: string, payload: string): JobEventWire => ({
  seq,
  task: 0,
  stream,
  time: "2026-11-21T09:00:00.000Z",
  time_remote: null,
  payload
})

const jobView = (id: string, state: string) => ({
  id,
  owner: "01JVSER0000000000000000000",
  name: "build",
  target: "default",
  target_real: "default",
  output_rules: [],
  tasks: [{ name: "default", script: "true", env_clear: false, env: {}, state: "pending" }],
  state,
  tags: {},
  cancelled: false,
  times: { submit: "2026-11-21T09:00:00.000Z" }
})

describe("renderEvent", () => {
  const e = (stream: string, payload: string) => ev(1, stream, payload) as Jobs.JobEvent
  it("renders each stream as buildomat's `job tail` does", () => {
    assert.deepStrictEqual(
      [
        renderEvent(e("stdout", "hello")),
        renderEvent(e("stderr", "oops")),
        renderEvent(e("control", "job assigned to worker W")),
        renderEvent(e("worker", "uploading 1 output")),
        renderEvent(e("task", "starting task 0: \"default\"")),
        renderEvent(e("console", "boot")),
        renderEvent(e("panic", "bad")),
        renderEvent(e("bg.db.stdout", "ready")),
        renderEvent(e("agent", "ERROR: exec: nope")),
        renderEvent(e("diag.pre", "x"))
      ],
      [
        "hello",
        "oops",
        "|=| job assigned to worker W",
        "|W| uploading 1 output",
        "|T| starting task 0: \"default\"",
        "|C| boot",
        "|!| bad",
        "[db] ready",
        "|agent| ERROR: exec: nope",
        "|diag.pre| x"
      ]
    )
    assert.strictEqual(renderStateChange("queued", "running"), "STATE CHANGE: queued -> running")
  })
})

/** Follows the job with the fake, returning what the handlers saw, in order. */
const run = (url: string, job: string) =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url, token: "user-secret" })
    const seen: Array<string> = []
    const warnings: Array<string> = []
    const state = yield* follow(client, Ids.JobId.make(job), {
      onEvent: (e) => Effect.sync(() => void seen.push(`${e.seq}:${e.payload}`)),
      onState: (from, to) => Effect.sync(() => void seen.push(`${from}->${to}`)),
      onWarning: (w) => Effect.sync(() => void warnings.push(w))
    }).pipe(Effect.provideService(RetryDelay, Duration.millis(10)))
    return { state, seen, warnings }
  }).pipe(Effect.provide(NodeHttpClient.layerUndici))

describe("follow", () => {
  const JOB = "01JTA1JB000000000000000000"

  it.scopedLive("resumes after the stream ends early, from the last seq, never repeating an event", () =>
    Effect.gen(function*() {
      const { url, state } = yield* FakeServer
      let polls = 0
      state.jobs.set(JOB, () => jobView(JOB, polls++ === 0 ? "running" : "completed"))
      const all = [ev(1, "stdout", "one"), ev(2, "stdout", "two"), ev(3, "stdout", "three"), ev(4, "stdout", "four")]
      // While the first connection is down, /events has one more event than the stream sent.
      let visible = 3
      state.events.set(JOB, () => all.slice(0, visible))
      state.watch.push(
        (res) => {
          frame(res, "state", "queued", "seq-0")
          frame(res, "state", "running", "seq-0")
          sseEvent(res, all[0]!)
          sseEvent(res, all[1]!)
          res.end() // EOF without `complete`
        },
        (res) => {
          visible = 4
          sseEvent(res, all[2]!) // already seen through /events: must not be printed again
          sseEvent(res, all[3]!)
          frame(res, "state", "completed", "seq-4")
          frame(res, "complete", "-")
          res.end()
        }
      )
      const out = yield* run(url, JOB)
      assert.strictEqual(out.state, "completed")
      assert.deepStrictEqual(out.seen, ["->queued", "queued->running", "1:one", "2:two", "3:three", "4:four", "running->completed"])
      const watches = state.requests.filter((r) => r.url.pathname.endsWith("/watch"))
      assert.strictEqual(watches.length, 2)
      assert.strictEqual(watches[0]!.url.searchParams.get("minseq"), "1")
      assert.strictEqual(watches[0]!.headers["last-event-id"], undefined)
      assert.strictEqual(watches[1]!.url.searchParams.get("minseq"), "4")
      assert.strictEqual(watches[1]!.headers["last-event-id"], "seq-3")
    }))

  it.scopedLive("on `check`, polls the job and drains /events once it is terminal", () =>
    Effect.gen(function*() {
      const { url, state } = yield* FakeServer
      state.jobs.set(JOB, jobView(JOB, "failed"))
      state.events.set(JOB, [ev(1, "control", "job assigned"), ev(2, "stderr", "boom")])
      state.watch.push((res) => {
        frame(res, "check", "-")
        res.end()
      })
      const out = yield* run(url, JOB)
      assert.strictEqual(out.state, "failed")
      assert.deepStrictEqual(out.seen, ["1:job assigned", "2:boom", "->failed"])
      // Drained until a page came back empty.
      const minseqs = state.requests
        .filter((r) => r.url.pathname.endsWith("/events"))
        .map((r) => r.url.searchParams.get("minseq"))
      assert.deepStrictEqual(minseqs, ["1", "3"])
    }))

  it.scopedLive("reconnects after a connection error, with a warning", () =>
    Effect.gen(function*() {
      const { url, state } = yield* FakeServer
      let done = false
      state.jobs.set(JOB, () => jobView(JOB, done ? "completed" : "running"))
      const all = [ev(1, "stdout", "a"), ev(2, "stdout", "b")]
      state.events.set(JOB, () => (done ? all : all.slice(0, 1)))
      state.watch.push(
        (res) => {
          sseEvent(res, all[0]!)
          setTimeout(() => res.socket?.destroy(), 20) // the connection drops mid-stream
        },
        (res) => {
          done = true
          sseEvent(res, all[1]!)
          frame(res, "complete", "-")
          res.end()
        }
      )
      const out = yield* run(url, JOB)
      assert.strictEqual(out.state, "completed")
      assert.deepStrictEqual(out.seen, ["1:a", "->running", "2:b", "running->completed"])
    }))

  it.scopedLive("fills a gap in the sequence from /events before going on", () =>
    Effect.gen(function*() {
      const { url, state } = yield* FakeServer
      state.jobs.set(JOB, jobView(JOB, "completed"))
      const all = [ev(1, "stdout", "a"), ev(2, "stdout", "b"), ev(3, "stdout", "c")]
      state.events.set(JOB, all)
      state.watch.push((res) => {
        sseEvent(res, all[0]!)
        sseEvent(res, all[2]!)
        frame(res, "complete", "-")
        res.end()
      })
      const out = yield* run(url, JOB)
      assert.deepStrictEqual(out.seen, ["1:a", "2:b", "3:c", "->completed"])
    }))

  it.scopedLive("gives up on 404", () =>
    Effect.gen(function*() {
      const { url } = yield* FakeServer
      const e = yield* Effect.flip(run(url, "01JN0SVCHJB000000000000000"))
      assert.strictEqual((e as { _tag: string })._tag, "NotFound")
    }))
})
