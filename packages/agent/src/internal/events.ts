/**
 * Event shipping that loses nothing and never holds a task up (buildomat §3.5, made loss-free).
 *
 * Output lines are appended synchronously, in order, as runs (consecutive lines of one stream
 * and task read at one instant). One fiber sends them in numbered batches, one batch at a time:
 * a batch goes out once it holds `minBatchLines` lines, or once its oldest line has waited
 * `windowMillis`, or at a flush; while a batch is in flight the next one grows, up to
 * `maxBatchLines` lines or `maxBatchBytes` bytes. A batch keeps its number and content until the
 * server acknowledges it, so a resend (after a timeout, a dropped connection, a server restart)
 * is stored once: the server keeps the last batch number per job.
 *
 * Memory is bounded: beyond `memoryBytes` of pending lines, new runs are spooled to a file in
 * `spoolDir` (JSON lines), and read back in order once the ones in memory are sent. Appending
 * never waits for the network; only when the spool itself passes `maxSpoolBytes` does
 * `overloaded` turn true, and readers pause until `waitRoom` (the pipe then fills and the task's
 * writes block, as they would on a slow terminal).
 *
 * @internal
 */
import type { Workers } from "@buildomat/core"
import * as fs from "node:fs"
import * as path from "node:path"
import { Deferred, Effect, FiberId } from "effect"
import type { Scope } from "effect"

/** One event as sent to the server by buildomat's own route. */
export type Event = Workers.WorkerAppendJobOrTask

/** A run of events: consecutive payloads of one stream and task, stamped with one time. */
export type Run = Workers.WorkerAppendRun

/** A numbered batch, as `POST /ext/0/worker/job/{job}/append` takes it. */
export interface Batch {
  readonly batch: number
  readonly runs: ReadonlyArray<Run>
  readonly lines: number
}

/** Appends one event, stamped with the agent's clock now. Never waits. */
export type Emit = (stream: string, payload: string, task?: number) => Effect.Effect<void>

/** What became of a batch: stored (or a resend of one stored), or refused for good. */
export type SendResult = "sent" | "dropped"

/** The event log of one job (or of the worker). */
export interface EventLog {
  /** Appends `payloads` as a run; `time` defaults to now. Synchronous, never blocks. */
  readonly append: (task: number | undefined, stream: string, payloads: ReadonlyArray<string>, time?: string) => void
  readonly emit: Emit
  /** Completes once every event appended before the call has been sent (or refused for good). */
  readonly flush: Effect.Effect<void>
  /** Whether the spool is over its limit: readers should pause until `waitRoom`. */
  readonly overloaded: () => boolean
  readonly waitRoom: Effect.Effect<void>
  /** Counters, for logs and tests. */
  readonly stats: () => {
    readonly appended: number
    readonly sent: number
    readonly dropped: number
    readonly batches: number
    readonly spooledRuns: number
    readonly memoryBytes: number
  }
}

/** Tuning. */
export interface Options {
  /** Send as soon as this many lines wait (default 100). */
  readonly minBatchLines?: number | undefined
  /** Send once the oldest waiting line is this old, in ms (default 50). */
  readonly windowMillis?: number | undefined
  /** The most lines in one batch (default 20,000). */
  readonly maxBatchLines?: number | undefined
  /** The most payload bytes in one batch (default 4 MiB; a request is at most 10 MiB). */
  readonly maxBatchBytes?: number | undefined
  /** Pending lines kept in memory before spooling to disk, in bytes (default 8 MiB). */
  readonly memoryBytes?: number | undefined
  /** Where the spool file goes; without it, everything stays in memory. */
  readonly spoolDir?: string | undefined
  /** Spool size past which readers are asked to pause (until it is half that), in bytes (default 1 GiB). */
  readonly maxSpoolBytes?: number | undefined
  /** Told once, the first time runs go to disk (for a log line). */
  readonly onSpool?: ((file: string) => void) | undefined
}

/** Payload bytes of a run, plus a little for the JSON around each payload. */
const runBytes = (payloads: ReadonlyArray<string>) => {
  let n = 0
  for (const p of payloads) n += p.length + 8
  return n + 64
}

/**
 * Makes a log whose batches `send` delivers. `send` must retry transient failures by itself
 * and return `"dropped"` only when the server refused the batch for good (the job is complete).
 * The sender fiber lives in the scope; the spool file is removed when the scope closes.
 */
export const make = (
  send: (batch: Batch) => Effect.Effect<SendResult>,
  options?: Options
): Effect.Effect<EventLog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const minLines = options?.minBatchLines ?? 100
    const windowMs = options?.windowMillis ?? 50
    const maxLines = options?.maxBatchLines ?? 20_000
    const maxBytes = options?.maxBatchBytes ?? 4 * 1024 * 1024
    const memLimit = options?.memoryBytes ?? 8 * 1024 * 1024
    const maxSpool = options?.maxSpoolBytes ?? 1024 * 1024 * 1024

    // Pending runs: `mem` (oldest first), then the spool file from `readOff` to `writeOff`.
    let mem: Array<{ run: Run; bytes: number }> = []
    let memHead = 0
    let memBytes = 0
    let memLines = 0
    let spoolFile: string | undefined
    let spoolFd: number | undefined
    let writeOff = 0
    let readOff = 0
    let spoolLines = 0
    let spooledRuns = 0
    let oldest: number | undefined

    let appended = 0
    let acked = 0
    let dropped = 0
    let batches = 0
    let nextBatch = 1

    let wake: Deferred.Deferred<void> | undefined
    let room: Deferred.Deferred<void> | undefined
    const flushes: Array<{ target: number; done: Deferred.Deferred<void> }> = []

    const pendingLines = () => memLines + spoolLines
    const signal = () => {
      if (wake !== undefined) {
        Deferred.unsafeDone(wake, Effect.void)
        wake = undefined
      }
    }

    const openSpool = () => {
      if (spoolFd !== undefined || options?.spoolDir === undefined) return spoolFd !== undefined
      fs.mkdirSync(options.spoolDir, { recursive: true, mode: 0o700 })
      spoolFile = path.join(options.spoolDir, `events-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.spool`)
      spoolFd = fs.openSync(spoolFile, "w+", 0o600)
      options.onSpool?.(spoolFile)
      return true
    }

    const append = (task: number | undefined, stream: string, payloads: ReadonlyArray<string>, time?: string) => {
      if (payloads.length === 0) return
      const run: Run = { stream, time: time ?? new Date().toISOString(), payloads, ...(task === undefined ? {} : { task }) }
      const bytes = runBytes(payloads)
      const spooling = writeOff > readOff
      if ((spooling || memBytes + bytes > memLimit) && (spooling || openSpool())) {
        const text = `${JSON.stringify(run)}\n`
        const buf = Buffer.from(text, "utf8")
        let off = 0
        while (off < buf.length) off += fs.writeSync(spoolFd!, buf, off, buf.length - off, writeOff + off)
        writeOff += buf.length
        spoolLines += payloads.length
        spooledRuns++
      } else {
        mem.push({ run, bytes })
        memBytes += bytes
        memLines += payloads.length
      }
      appended += payloads.length
      const first = oldest === undefined
      if (first) oldest = Date.now()
      if (first || pendingLines() >= minLines) signal()
    }

    /** Moves runs from the spool file into memory, up to about half the memory limit. */
    const refill = () => {
      if (spoolFd === undefined || readOff >= writeOff) return
      const want = Math.max(1, Math.floor(memLimit / 2))
      let block = 1024 * 1024
      while (readOff < writeOff && memBytes < want) {
        const n = Math.min(block, writeOff - readOff)
        const data = Buffer.alloc(n)
        let got = 0
        while (got < n) {
          const r = fs.readSync(spoolFd, data, got, n - got, readOff + got)
          if (r === 0) break
          got += r
        }
        let start = 0
        for (let nl = data.indexOf(0x0a); nl !== -1 && nl < got; nl = data.indexOf(0x0a, start)) {
          const run = JSON.parse(data.toString("utf8", start, nl)) as Run
          const bytes = runBytes(run.payloads)
          mem.push({ run, bytes })
          memBytes += bytes
          memLines += run.payloads.length
          spoolLines -= run.payloads.length
          start = nl + 1
          if (memBytes >= want) break
        }
        if (start === 0) {
          // One run longer than the block: read a bigger one.
          if (n >= writeOff - readOff) throw new Error(`event spool ${spoolFile} is corrupt`)
          block *= 2
          continue
        }
        readOff += start
      }
      if (room !== undefined && writeOff - readOff <= maxSpool / 2) {
        Deferred.unsafeDone(room, Effect.void)
        room = undefined
      }
      if (readOff >= writeOff) {
        fs.ftruncateSync(spoolFd, 0)
        readOff = 0
        writeOff = 0
        if (room !== undefined) {
          Deferred.unsafeDone(room, Effect.void)
          room = undefined
        }
      }
    }

    /** Takes the next batch's runs off the front, splitting a run at the limits. */
    const take = (): { runs: Array<Run>; lines: number } => {
      if (memHead >= mem.length) {
        mem = []
        memHead = 0
        refill()
      }
      const runs: Array<Run> = []
      let lines = 0
      let bytes = 0
      while (memHead < mem.length && lines < maxLines && bytes < maxBytes) {
        const item = mem[memHead]!
        const roomLines = maxLines - lines
        if (item.run.payloads.length <= roomLines && bytes + item.bytes <= maxBytes) {
          runs.push(item.run)
          lines += item.run.payloads.length
          bytes += item.bytes
          memBytes -= item.bytes
          memLines -= item.run.payloads.length
          memHead++
          if (memHead >= mem.length && spoolFd !== undefined && readOff < writeOff) {
            mem = []
            memHead = 0
            refill()
          }
          continue
        }
        // Split: as many payloads as fit (at least one, so that progress is always made).
        let n = 0
        let b = 64
        while (n < item.run.payloads.length && n < roomLines && (n === 0 || bytes + b + item.run.payloads[n]!.length + 8 <= maxBytes)) {
          b += item.run.payloads[n]!.length + 8
          n++
        }
        if (n === 0) break
        runs.push({ ...item.run, payloads: item.run.payloads.slice(0, n) })
        const rest = item.run.payloads.slice(n)
        const restBytes = runBytes(rest)
        memBytes -= item.bytes - restBytes
        item.bytes = restBytes
        item.run = { ...item.run, payloads: rest }
        memLines -= n
        lines += n
        bytes += b
        break
      }
      if (memHead > 1024 && memHead * 2 > mem.length) {
        mem = mem.slice(memHead)
        memHead = 0
      }
      return { runs, lines }
    }

    const settleFlushes = () => {
      const done = acked + dropped
      for (let i = flushes.length - 1; i >= 0; i--) {
        if (flushes[i]!.target <= done) {
          Deferred.unsafeDone(flushes[i]!.done, Effect.void)
          flushes.splice(i, 1)
        }
      }
    }

    const waitForWork = Effect.gen(function*() {
      for (;;) {
        const n = pendingLines()
        if (n > 0 && (n >= minLines || flushes.length > 0)) return
        if (n > 0 && oldest !== undefined) {
          const left = oldest + windowMs - Date.now()
          if (left <= 0) return
          const d = yield* Deferred.make<void>()
          wake = d
          yield* Deferred.await(d).pipe(Effect.timeoutOption(left))
          wake = undefined
          continue
        }
        const d = yield* Deferred.make<void>()
        wake = d
        yield* Deferred.await(d)
        wake = undefined
      }
    })

    const sender = Effect.gen(function*() {
      for (;;) {
        yield* waitForWork
        const { runs, lines } = take()
        // Lines left over have waited for this batch already: they go with the next at once.
        oldest = pendingLines() > 0 ? 0 : undefined
        if (lines === 0) continue
        const batch: Batch = { batch: nextBatch++, runs, lines }
        const result = yield* send(batch)
        batches++
        if (result === "sent") acked += lines
        else dropped += lines
        settleFlushes()
      }
    })
    yield* Effect.forkScoped(sender)

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (spoolFd !== undefined) {
          try {
            fs.closeSync(spoolFd)
            fs.rmSync(spoolFile!, { force: true })
          } catch {
            // best effort
          }
        }
      })
    )

    const flush = Effect.suspend(() => {
      const target = appended
      if (acked + dropped >= target) return Effect.void
      return Effect.gen(function*() {
        const done = yield* Deferred.make<void>()
        flushes.push({ target, done })
        signal()
        yield* Deferred.await(done)
      })
    })

    const emit: Emit = (stream, payload, task) => Effect.sync(() => append(task, stream, [payload]))

    return {
      append,
      emit,
      flush,
      overloaded: () => writeOff - readOff > maxSpool,
      // Readers resume once the spool is down to half its limit, not at the first byte below it.
      waitRoom: Effect.suspend(() => {
        if (writeOff - readOff <= maxSpool / 2) return Effect.void
        if (room === undefined) room = Deferred.unsafeMake<void>(FiberId.none)
        return Deferred.await(room)
      }),
      stats: () => ({ appended, sent: acked, dropped, batches, spooledRuns, memoryBytes: memBytes })
    }
  })
