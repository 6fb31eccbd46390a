/**
 * The agent host (`buildomat-agent host`): one long-lived process that runs many agents, one per
 * worker, each a fresh `Agent.run` with its own bootstrap value, state directory, root, log file
 * and `HOME`. Its tasks are process groups of their own, exactly as under a single agent.
 *
 * Starting a Node process and loading the agent costs about 100 ms of CPU; on a machine that
 * runs many short jobs side by side (the local provider's warm pool) that dominates. A host pays
 * it once. What the agents of one host share is the agent code's process: if the host dies,
 * every worker in it is gone.
 *
 * The host speaks newline-delimited JSON: requests (`HostRequest`) on stdin, events
 * (`HostEvent`) on stdout. When stdin ends (its provider is gone) it stops every agent, which
 * kills their tasks, and exits.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { Cause, Effect, Exit, Fiber, FiberRef, FiberSet, HashSet, Logger, Schema } from "effect"
import * as fs from "node:fs"
import * as readline from "node:readline"
import * as Agent from "./Agent.js"

/**
 * Start an agent: `id` names it in later requests and events (the provider's instance id);
 * `log` is the file its log lines are appended to (JSON lines, as `buildomat-agent run` writes
 * them); `home` is its tasks' `HOME`. The rest is `Agent.Config`.
 *
 * @since 0.1.0
 * @category models
 */
export const StartRequest = Schema.TaggedStruct("start", {
  id: Schema.NonEmptyString,
  url: Schema.NonEmptyString,
  bootstrap: Schema.NonEmptyString,
  stateDir: Schema.NonEmptyString,
  root: Schema.NonEmptyString,
  log: Schema.NonEmptyString,
  home: Schema.optional(Schema.NonEmptyString),
  killGraceMillis: Schema.optional(Schema.NonNegativeInt)
})

/**
 * Stop an agent: it is interrupted, which kills its tasks' process groups (SIGTERM, its grace
 * period, SIGKILL); answered by `stopped` once nothing of it is left. Stopping an unknown or
 * finished agent answers `stopped` at once.
 *
 * @since 0.1.0
 * @category models
 */
export const StopRequest = Schema.TaggedStruct("stop", { id: Schema.NonEmptyString })

/**
 * A request to the host, one JSON object per line on its stdin.
 *
 * @since 0.1.0
 * @category models
 */
export const HostRequest = Schema.Union(StartRequest, StopRequest)

/** @since 0.1.0 @category models */
export type HostRequest = typeof HostRequest.Type

/**
 * An event from the host, one JSON object per line on its stdout:
 *
 * - `exited`: agent `id` ended by itself: `code` 0 when the server powered it off, 1 when it
 *   could not go on (`message` says why), as `buildomat-agent run` exits;
 * - `stopped`: agent `id` is stopped, after a `stop`;
 * - `refused`: a request could not be carried out (`id` when it names one; `message` says why):
 *   a line that is not a valid request, a second `start` for a running id, a log file that
 *   cannot be opened.
 *
 * @since 0.1.0
 * @category models
 */
export const HostEvent = Schema.Union(
  Schema.TaggedStruct("exited", { id: Schema.String, code: Schema.Int, message: Schema.optional(Schema.String) }),
  Schema.TaggedStruct("stopped", { id: Schema.String }),
  Schema.TaggedStruct("refused", { id: Schema.optional(Schema.String), message: Schema.String })
)

/** @since 0.1.0 @category models */
export type HostEvent = typeof HostEvent.Type

const decodeRequest = Schema.decodeUnknownEither(Schema.parseJson(HostRequest))

/** A logger that appends JSON lines to `fd`, as `Logger.json` prints them. */
const fileLogger = (fd: number) =>
  Logger.map(Logger.jsonLogger, (line) => {
    try {
      fs.writeSync(fd, `${line}\n`)
    } catch {
      // a full disk must not stop the agent
    }
  })

/**
 * Serves requests from `input` until it ends, writing events to `output`; then stops every agent
 * still running and returns. Interrupting it stops every agent too.
 *
 * @since 0.1.0
 * @category running
 */
export const serve = (
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream
): Effect.Effect<void, never, HttpClient.HttpClient> =>
  Effect.scoped(Effect.gen(function*() {
    const agents = yield* FiberSet.make<void, never>()
    const running = new Map<string, Fiber.RuntimeFiber<void, never>>()
    const send = (event: HostEvent) => output.write(`${JSON.stringify(event)}\n`)
    const runFork = yield* FiberSet.runtime(agents)<HttpClient.HttpClient>()

    const start = (req: typeof StartRequest.Type) => {
      if (running.has(req.id)) return send({ _tag: "refused", id: req.id, message: `agent ${req.id} is already running` })
      let fd: number
      try {
        fd = fs.openSync(req.log, "a")
      } catch (e) {
        return send({ _tag: "refused", id: req.id, message: `cannot open ${req.log}: ${e instanceof Error ? e.message : String(e)}` })
      }
      const config: Agent.Config = {
        url: req.url,
        bootstrap: req.bootstrap,
        stateDir: req.stateDir,
        root: req.root,
        home: req.home,
        killGraceMillis: req.killGraceMillis
      }
      const fiber = runFork(
        Agent.run(config).pipe(
          // Its log lines go to its own file only, not to the host's stderr.
          Effect.locally(FiberRef.currentLoggers, HashSet.make(fileLogger(fd))),
          Effect.onExit((exit) =>
            Effect.sync(() => {
              fs.closeSync(fd)
              running.delete(req.id)
              if (Exit.isSuccess(exit)) return send({ _tag: "exited", id: req.id, code: 0 })
              if (Exit.isInterrupted(exit)) return send({ _tag: "stopped", id: req.id })
              const failure = Cause.failureOption(exit.cause)
              send({
                _tag: "exited",
                id: req.id,
                code: 1,
                message: failure._tag === "Some" ? failure.value.message : Cause.pretty(exit.cause)
              })
            })
          ),
          Effect.ignore
        )
      )
      running.set(req.id, fiber)
    }

    const stop = (id: string) => {
      const fiber = running.get(id)
      if (fiber === undefined) return send({ _tag: "stopped", id })
      // `stopped` is sent when the fiber's exit is seen (above).
      runFork(Fiber.interrupt(fiber).pipe(Effect.asVoid))
    }

    const lines = readline.createInterface({ input, crlfDelay: Infinity })
    yield* Effect.async<void>((resume) => {
      lines.on("line", (line) => {
        if (line.trim() === "") return
        const req = decodeRequest(line)
        if (req._tag === "Left") return send({ _tag: "refused", message: `not a host request: ${req.left.message}` })
        if (req.right._tag === "start") start(req.right)
        else stop(req.right.id)
      })
      lines.once("close", () => resume(Effect.void))
      return Effect.sync(() => lines.close())
    })
    // Input ended: stop everything (closing the scope interrupts the FiberSet's fibers).
  }))
