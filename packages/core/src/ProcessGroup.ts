/**
 * Process groups (POSIX): signal a whole group, and tell whether any process of it is still alive.
 * The agent runs each task in a group of its own and the local provider runs each agent in one,
 * so that killing a group leaves no process behind.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { sleep } from "./internal/wallClock.js"

/**
 * Sends `signal` to every process of the group `pgid` (`kill(-pgid, signal)`). A group that no
 * longer exists is not an error; other failures (EPERM) are thrown.
 *
 * @since 0.1.0
 * @category processes
 */
export const signalGroup = (pgid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pgid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

/**
 * Whether the group `pgid` still has a live member. Zombies do not count: once killed, a task's
 * children are reparented to init, and some inits (containers, micro-VMs) reap them lazily, so a
 * zombie can linger although it holds nothing but a pid. On Linux `/proc` tells zombies apart;
 * elsewhere any member counts as alive.
 *
 * @since 0.1.0
 * @category processes
 */
export const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
  } catch (error) {
    // EPERM: a member exists that we may not signal; treat it as alive.
    return (error as NodeJS.ErrnoException).code !== "ESRCH"
  }
  return process.platform === "linux" ? procGroupHasLiveMember(pgid) : true
}

/**
 * Polls (every 20 ms, on the wall clock) until the group `pgid` has no live member: `true` once
 * it has none, `false` if one is still alive after `ms` milliseconds.
 *
 * @since 0.1.0
 * @category processes
 */
export const waitGone = (pgid: number, ms: number): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (groupAlive(pgid)) {
      if (Date.now() >= deadline) return false
      yield* sleep(20)
    }
    return true
  })

const procGroupHasLiveMember = (pgid: number): boolean => {
  let entries: Array<string>
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    return true
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
    } catch {
      continue // exited while we looked
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") return true
  }
  return false
}
