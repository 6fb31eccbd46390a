/**
 * Event shipping (buildomat §3.5): one ordered queue per job, drained by a single fiber that
 * sends batches of up to 100 events, waiting at most 50 ms for a batch to fill. A batch that
 * fails is retried as is by `send`, so order is preserved. The queue is bounded: when it holds
 * `capacity` events, `emit` suspends, which stops the task runner from reading the child's
 * pipes, which in the end blocks the child's writes. Memory stays bounded while the server is
 * away.
 *
 * @internal
 */
import type { Workers } from "@buildomat/core"
import { Deferred, Effect, Queue } from "effect"
import type { Scope } from "effect"

/** One event as sent to the server. */
export type Event = Workers.WorkerAppendJobOrTask

/** Appends one event, stamped with the agent's clock now. Suspends while the queue is full. */
export type Emit = (stream: string, payload: string, task?: number) => Effect.Effect<void>

/** The per-job event queue. */
export interface EventQueue {
  readonly emit: Emit
  /** Completes once every event emitted before the call has been handed to `send`. */
  readonly flush: Effect.Effect<void>
}

type Item = { readonly _tag: "Event"; readonly event: Event } | { readonly _tag: "Flush"; readonly done: Deferred.Deferred<void> }

/** Tuning; the defaults are buildomat's batch size and ours for the rest. */
export interface Options {
  readonly batchSize?: number
  readonly batchWindowMillis?: number
  readonly capacity?: number
}

/**
 * Makes the queue and forks its drain fiber into the scope. `send` delivers one batch and must
 * retry by itself: once it returns, the batch counts as handled.
 */
export const make = (
  send: (batch: ReadonlyArray<Event>) => Effect.Effect<void>,
  options?: Options
): Effect.Effect<EventQueue, never, Scope.Scope> =>
  Effect.gen(function*() {
    const batchSize = options?.batchSize ?? 100
    const window = options?.batchWindowMillis ?? 50
    const queue = yield* Effect.acquireRelease(
      Queue.bounded<Item>(options?.capacity ?? 10_000),
      Queue.shutdown
    )

    // Sends the events of `items` in order; a flush marker is acknowledged once everything
    // before it has been sent.
    const handle = (items: ReadonlyArray<Item>) =>
      Effect.gen(function*() {
        let pending: Array<Event> = []
        for (const item of items) {
          if (item._tag === "Event") {
            pending.push(item.event)
          } else {
            if (pending.length > 0) yield* send(pending)
            pending = []
            yield* Deferred.succeed(item.done, undefined)
          }
        }
        if (pending.length > 0) yield* send(pending)
      })

    const drainOnce = Effect.gen(function*() {
      const items: Array<Item> = [yield* Queue.take(queue)]
      const deadline = Date.now() + window
      for (;;) {
        items.push(...(yield* Queue.takeUpTo(queue, batchSize - items.length)))
        if (items.length >= batchSize || items.some((i) => i._tag === "Flush")) break
        const left = deadline - Date.now()
        if (left <= 0) break
        // Polling in short steps keeps a filling batch from waiting out the whole window.
        yield* Effect.sleep(Math.min(left, 10))
      }
      yield* handle(items)
    })
    yield* Effect.forkScoped(Effect.forever(drainOnce))

    const emit: Emit = (stream, payload, task) =>
      Queue.offer(queue, {
        _tag: "Event",
        event: { stream, payload, time: new Date().toISOString(), ...(task === undefined ? {} : { task }) }
      }).pipe(Effect.asVoid)

    const flush = Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      yield* Queue.offer(queue, { _tag: "Flush", done })
      yield* Deferred.await(done)
    })

    return { emit, flush }
  })
