/**
 * The local provider's side of agent hosts (`buildomat-agent host`, see `@buildomat/agent`'s
 * `Host` module): one host process per target, started when the target's first worker is
 * created, that runs each worker's agent on request. A host that dies takes its agents with it;
 * the next create starts a new one.
 *
 * @internal
 */
import { Host } from "@buildomat/agent"
import { WorkerProvider } from "@buildomat/core"
import { Deferred, Effect, Either, FiberId, Schema } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as readline from "node:readline"

/** What a host reports about one of its agents. */
export interface HostedAgent {
  /** The agent ended by itself, or with its host (`code` null then). */
  readonly onExit: (code: number | null, message: string | undefined) => void
  /** Set by `stop`: completed by `stopped`, or by the host's end. */
  stopped: Deferred.Deferred<void> | undefined
}

/** One running host process. */
export interface AgentHost {
  readonly pid: number
  readonly start: (request: typeof Host.StartRequest.Type, agent: HostedAgent) => Effect.Effect<void, WorkerProvider.ProviderError>
  /** Asks the agent to stop; completes once it has (its tasks killed), or with the host's end. */
  readonly stop: (id: string) => Effect.Effect<void>
  /** `false` once the process has exited. */
  readonly alive: () => boolean
  /** Ends stdin: the host stops every agent left and exits. */
  readonly close: () => void
}

const decodeEvent = Schema.decodeUnknownEither(Schema.parseJson(Host.HostEvent))

/**
 * Starts a host: `command` (the agent's argv prefix) with `host` appended, in a process group of
 * its own, its stderr appended to `logFile`.
 */
export const startHost = (options: {
  readonly command: ReadonlyArray<string>
  readonly cwd: string
  readonly env: Record<string, string>
  readonly logFile: string
  readonly runAs: { readonly uid: number; readonly gid: number } | undefined
  readonly fail: (message: string, cause?: unknown) => WorkerProvider.ProviderError
  readonly onEnd: (host: AgentHost) => void
}): Effect.Effect<AgentHost, WorkerProvider.ProviderError> =>
  Effect.async<AgentHost, WorkerProvider.ProviderError>((resume) => {
    const { command, fail } = options
    let fd: number
    try {
      fd = fs.openSync(options.logFile, "a")
    } catch (error) {
      return resume(Effect.fail(fail(`cannot open ${options.logFile}`, error)))
    }
    let child: ChildProcess
    try {
      child = spawn(command[0]!, [...command.slice(1), "host"], {
        cwd: options.cwd,
        env: options.env,
        detached: true,
        stdio: ["pipe", "pipe", fd],
        ...(options.runAs !== undefined ? { uid: options.runAs.uid, gid: options.runAs.gid } : {})
      })
    } catch (error) {
      return resume(Effect.fail(fail(`cannot start agent host ${JSON.stringify(command[0])}`, error)))
    } finally {
      fs.closeSync(fd)
    }
    const agents = new Map<string, HostedAgent>()
    let exited = false
    let settled = false
    const write = (request: Host.HostRequest) => {
      if (!exited) child.stdin!.write(`${JSON.stringify(request)}\n`)
    }
    const host: AgentHost = {
      pid: child.pid ?? -1,
      start: (request, agent) =>
        Effect.suspend(() => {
          if (exited) return Effect.fail(fail("the agent host has exited"))
          agents.set(request.id, agent)
          write(request)
          return Effect.void
        }),
      stop: (id) =>
        Effect.suspend(() => {
          const agent = agents.get(id)
          if (agent === undefined || exited) return Effect.void
          agent.stopped ??= Deferred.unsafeMake<void>(FiberId.none)
          write({ _tag: "stop", id })
          return Deferred.await(agent.stopped)
        }),
      alive: () => !exited,
      close: () => child.stdin!.end()
    }
    child.stdin!.on("error", () => {}) // a dead host is seen by `exit`
    readline.createInterface({ input: child.stdout!, crlfDelay: Infinity }).on("line", (line) => {
      const event = decodeEvent(line)
      if (Either.isLeft(event)) return
      const e = event.right
      const agent = e.id === undefined ? undefined : agents.get(e.id)
      if (agent === undefined) return
      if (e._tag === "exited" || e._tag === "refused") {
        agent.onExit(e._tag === "exited" ? e.code : 1, e.message)
      }
      if (e._tag === "stopped" || e._tag === "refused") {
        agents.delete(e.id!)
        if (agent.stopped !== undefined) Deferred.unsafeDone(agent.stopped, Effect.void)
      }
    })
    child.on("exit", () => {
      exited = true
      for (const agent of agents.values()) {
        agent.onExit(null, "the agent host exited")
        if (agent.stopped !== undefined) Deferred.unsafeDone(agent.stopped, Effect.void)
      }
      agents.clear()
      options.onEnd(host)
    })
    child.on("error", (error) => {
      if (settled) return
      settled = true
      resume(Effect.fail(fail(`cannot start agent host ${JSON.stringify(command[0])}: ${error.message}`, error)))
    })
    child.once("spawn", () => {
      if (settled) return
      settled = true
      resume(Effect.succeed(host))
    })
    child.unref()
  })
