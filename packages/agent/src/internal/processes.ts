/**
 * The process groups the agent starts (tasks, and background processes started with
 * `bmat process start`), and how they are killed. Each runs in a process group of its own
 * (spawned detached), so that the agent can signal the whole group, descendants included, without
 * signalling itself: SIGTERM, a grace period, then SIGKILL.
 *
 * Nothing may outlive the agent, however it ends:
 *
 * - cancelled or powered off: the scope that started the group kills it (TERM, grace, KILL);
 * - SIGTERM/SIGINT (a provider destroying the machine): the runtime interrupts the agent, which
 *   closes those scopes, as above;
 * - a plain exit: the `exit` handler SIGKILLs every group still registered;
 * - SIGKILL (nothing runs in the agent): a watchdog, a small bash process in a process group of
 *   its own, holds the read end of a pipe from the agent and is told each group as it starts and
 *   ends. When the agent dies the kernel closes the pipe; the watchdog then TERMs every group it
 *   still knows of, waits the grace period and KILLs them.
 *
 * @internal
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { ProcessGroup } from "@buildomat/core"
import { Effect } from "effect"
import type { Scope } from "effect"

/** Signals and liveness of process groups, shared with the local provider. */
export const signalGroup = ProcessGroup.signalGroup
export const groupAlive = ProcessGroup.groupAlive
export const waitGone = ProcessGroup.waitGone

const WATCHDOG = `
trap '' TERM INT HUP
declare -A live=()
while IFS= read -r line; do
  case $line in
    +[0-9]*) live[\${line:1}]=1 ;;
    -[0-9]*) unset "live[\${line:1}]" ;;
  esac
done
(( \${#live[@]} == 0 )) && exit 0
for g in "\${!live[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
sleep "$1"
for g in "\${!live[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
exit 0
`

/** The groups alive in this process, for the `exit` handler. */
const everyGroup = new Set<number>()

/**
 * The watchdog, one per process (an agent host runs many agents): started with the first
 * registry, it lives as long as the process. Registries come and go; each tells it its groups.
 */
let watchdog: ChildProcess | undefined
const tell = (line: string, graceMs: number) => {
  if (watchdog === undefined) {
    try {
      // --norc: bash -c with a socket on stdin (node's pipes are socket pairs) takes itself for
      // a remote shell and would source ~/.bashrc (pyenv, nvm: dozens of processes per agent).
      watchdog = spawn("/bin/bash", ["--norc", "-c", WATCHDOG, "buildomat-agent-watchdog", String(Math.max(graceMs, 100) / 1000)], {
        detached: true,
        stdio: ["pipe", "ignore", "ignore"]
      })
      const started = watchdog
      watchdog.on("error", () => {})
      // Killed by someone: the next registry starts another.
      watchdog.on("exit", () => {
        if (watchdog === started) watchdog = undefined
      })
      watchdog.stdin!.on("error", () => {})
      watchdog.unref()
      // Its pipe must not keep this process alive: the watchdog is for when this process ends.
      ;(watchdog.stdin as unknown as { unref?: () => void }).unref?.()
    } catch {
      return
    }
  }
  if (line !== "") watchdog.stdin?.write(`${line}\n`)
}
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const pgid of everyGroup) {
      try {
        process.kill(-pgid, "SIGKILL")
      } catch {
        // gone already
      }
    }
  })
}

/** The registry of live process groups of one agent run. */
export interface Processes {
  /** Records a group the agent just started (its leader's pid). */
  readonly add: (pgid: number) => void
  /** Forgets a group that is gone. */
  readonly remove: (pgid: number) => void
  /** TERM, up to `graceMs`, then KILL; resolves once the group is gone (or after 5 s more). */
  readonly kill: (pgid: number) => Effect.Effect<void>
  /** Kills every registered group, in parallel. */
  readonly killAll: Effect.Effect<void>
  /** The groups registered now. */
  readonly live: () => ReadonlyArray<number>
}

/**
 * Makes the registry for the scope (starting this process's watchdog if it is not running yet).
 * Closing the scope kills every group left.
 */
export const make = (graceMs: number): Effect.Effect<Processes, never, Scope.Scope> =>
  Effect.gen(function*() {
    installExitHook()
    const groups = new Set<number>()

    const remove = (pgid: number) => {
      if (groups.delete(pgid)) tell(`-${pgid}`, graceMs)
      everyGroup.delete(pgid)
    }

    const kill = (pgid: number) =>
      Effect.gen(function*() {
        if (groupAlive(pgid)) {
          signalGroup(pgid, "SIGTERM")
          if (!(yield* waitGone(pgid, graceMs))) {
            signalGroup(pgid, "SIGKILL")
            yield* waitGone(pgid, 5_000)
          }
        }
        remove(pgid)
      }).pipe(Effect.uninterruptible)

    const killAll = Effect.suspend(() =>
      Effect.forEach([...groups], kill, { concurrency: "unbounded", discard: true })
    )

    // Started now, not at the first task, so that starting a task costs one fork, not two.
    tell("", graceMs)
    yield* Effect.addFinalizer(() => killAll)

    return {
      add: (pgid) => {
        groups.add(pgid)
        everyGroup.add(pgid)
        tell(`+${pgid}`, graceMs)
      },
      remove,
      kill,
      killAll,
      live: () => [...groups]
    }
  })
