import * as HttpClientError from "@effect/platform/HttpClientError"
import type { Client, Ids, Jobs } from "@buildomat/core"
import { Cause, Console, Context, Duration, Effect, Option, Stream } from "effect"
import { describe, ExitStatus } from "./errors.js"

/**
 * How long `follow` waits before it reconnects or polls again (buildomat's client waits 2 s).
 * A reference so that tests can shorten it.
 */
export class RetryDelay extends Context.Reference<RetryDelay>()("@buildomat/cli/RetryDelay", {
  defaultValue: () => Duration.seconds(2)
}) {}

/**
 * One event as `buildomat job tail` prints it: task output raw, the server's and the agent's
 * messages behind a marker, background process output behind its name, anything else behind
 * its stream name. (buildomat `bin/src/main.rs`, `poll_job`.)
 */
export const renderEvent = (ev: Jobs.JobEvent): string => {
  switch (ev.stream) {
    case "stdout":
    case "stderr":
      return ev.payload
    case "control":
      return `|=| ${ev.payload}`
    case "worker":
      return `|W| ${ev.payload}`
    case "task":
      return `|T| ${ev.payload}`
    case "console":
      return `|C| ${ev.payload}`
    case "panic":
      return `|!| ${ev.payload}`
  }
  const bg = /^bg\.([^.]+)\.(stdout|stderr)$/.exec(ev.stream)
  if (bg !== null) return `[${bg[1]}] ${ev.payload}`
  return `|${ev.stream}| ${ev.payload}`
}

/** A state transition as buildomat prints it; the first one is from the empty string. */
export const renderStateChange = (from: string, to: string): string => `STATE CHANGE: ${from} -> ${to}`

/** Callbacks for `follow`. */
export interface FollowHandlers<R> {
  readonly onEvent: (ev: Jobs.JobEvent) => Effect.Effect<void, never, R>
  readonly onState: (from: string, to: string) => Effect.Effect<void, never, R>
  readonly onWarning?: ((message: string) => Effect.Effect<void, never, R>) | undefined
}

const status = (e: unknown): number | undefined => {
  if (HttpClientError.isHttpClientError(e) && e._tag === "ResponseError") return e.response.status
  if (typeof e === "object" && e !== null) {
    switch ((e as { _tag?: unknown })._tag) {
      case "Unauthorized":
        return 401
      case "Forbidden":
        return 403
      case "NotFound":
        return 404
    }
  }
  return undefined
}

/** 401, 403 and 404 will not get better by trying again. */
const isFatal = (e: unknown) => {
  const s = status(e)
  return s === 401 || s === 403 || s === 404
}

/**
 * Follows a job to its end and returns its final state (`completed` or `failed`). Every event is
 * handed to `onEvent` exactly once, in `seq` order; state changes go to `onState`.
 *
 * Robust as buildomat's `watch_job`: the watch stream is read until `complete`; when it ends
 * early (EOF, `check`, a connection error) the job is fetched, new events are drained from
 * `GET /0/jobs/{job}/events?minseq=N`, and the watch is re-opened after `RetryDelay` from the
 * last seen `seq` (`minseq` and `Last-Event-ID: seq-N`). Once the job is terminal, the events are
 * drained until an empty page. A gap in the sequence is filled from `/events` before going on.
 * Gives up on 401, 403 and 404.
 */
export const follow = <R>(
  client: Client.Client,
  job: Ids.JobId,
  handlers: FollowHandlers<R>
): Effect.Effect<string, unknown, R> =>
  Effect.gen(function*() {
    let lastSeq = 0
    let lastState = ""
    let warned = false
    const warn = (message: string) =>
      warned ? Effect.void : Effect.zipRight(
        Effect.sync(() => {
          warned = true
        }),
        handlers.onWarning?.(message) ?? Effect.void
      )

    const setState = (state: string) => {
      if (state === lastState) return Effect.void
      const from = lastState
      lastState = state
      return handlers.onState(from, state)
    }

    const fetchEvents = (minseq: number) =>
      client.api.jobs.events({ path: { job }, urlParams: { minseq } })

    /** Emits events newer than the last one seen, in order, filling gaps from `/events`. */
    const emit = (ev: Jobs.JobEvent): Effect.Effect<void, unknown, R> =>
      Effect.gen(function*() {
        if (ev.seq <= lastSeq) return
        if (ev.seq > lastSeq + 1) {
          const missing = yield* fetchEvents(lastSeq + 1)
          for (const m of missing) {
            if (m.seq >= ev.seq) break
            if (m.seq > lastSeq) {
              lastSeq = m.seq
              yield* handlers.onEvent(m)
            }
          }
        }
        lastSeq = ev.seq
        yield* handlers.onEvent(ev)
      })

    /** Reads `/events` from the last seen seq until a page adds nothing. */
    const drain = Effect.gen(function*() {
      while (true) {
        const page = yield* fetchEvents(lastSeq + 1)
        const before = lastSeq
        for (const ev of page) yield* emit(ev)
        if (page.length === 0 || lastSeq === before) return
      }
    })

    while (true) {
      let ended = "eof" as "complete" | "check" | "eof"
      const watched = yield* client.watch(job, {
        minseq: lastSeq + 1,
        lastEventId: lastSeq > 0 ? `seq-${lastSeq}` : undefined
      }).pipe(
        Stream.takeUntil((m) => m._tag === "complete" || m._tag === "check"),
        Stream.runForEach((m) => {
          switch (m._tag) {
            case "state":
              return setState(m.state)
            case "event":
              return emit(m.event)
            case "complete":
            case "check":
              ended = m._tag
              return Effect.void
          }
        }),
        Effect.sandbox,
        Effect.either
      )
      if (watched._tag === "Left") {
        const cause = watched.left
        if (Cause.isInterruptedOnly(cause)) return yield* Effect.interrupt
        const failure = Cause.failureOption(cause)
        if (Option.isSome(failure) && isFatal(failure.value)) return yield* Effect.fail(failure.value)
        const why = Option.isSome(failure) ? yield* describe(failure.value) : Cause.pretty(cause)
        yield* warn(`watching the job failed, retrying: ${why}`)
      }

      // The stream ended: see where the job is, and catch up on events through /events.
      const polled = yield* client.api.jobs.get({ path: { job } }).pipe(Effect.either)
      if (polled._tag === "Left") {
        if (isFatal(polled.left)) return yield* Effect.fail(polled.left)
        yield* warn(`polling the job failed, retrying: ${yield* describe(polled.left)}`)
        yield* Effect.sleep(yield* RetryDelay)
        continue
      }
      const state = polled.right.state
      const drained = yield* drain.pipe(Effect.either)
      if (drained._tag === "Left") {
        if (isFatal(drained.left)) return yield* Effect.fail(drained.left)
        yield* warn(`fetching events failed, retrying: ${yield* describe(drained.left)}`)
        yield* Effect.sleep(yield* RetryDelay)
        continue
      }
      yield* setState(state)
      if (state === "completed" || state === "failed") return state
      if (ended === "complete") {
        // `complete` said the job was done but the job says otherwise; trust the job.
        yield* warn(`the server said the job was complete, but its state is ${state}`)
      }
      yield* Effect.sleep(yield* RetryDelay)
    }
  })

/** `follow`, printing as `buildomat job tail` does (`json`: one JSON event per line). */
export const tail = (client: Client.Client, job: Ids.JobId, json: boolean) =>
  follow(client, job, {
    onEvent: (ev) => Console.log(json ? JSON.stringify(ev) : renderEvent(ev)),
    onState: (from, to) => (json ? Effect.void : Console.log(renderStateChange(from, to))),
    onWarning: (message) => Console.error(`WARNING: ${message}`)
  })

/** Ends with exit status 1 (and no message: the state change said it) unless the job completed. */
export const exitFor = (state: string) => state === "completed" ? Effect.void : Effect.fail(new ExitStatus({ code: 1 }))
