/**
 * Process-group helpers, from core (shared with the agent).
 *
 * @internal
 */
import { ProcessGroup } from "@buildomat/core"

export const signalGroup = ProcessGroup.signalGroup
export const groupAlive = ProcessGroup.groupAlive
export const waitGone = ProcessGroup.waitGone
