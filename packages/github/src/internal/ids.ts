/**
 * ULIDs, from core (the same monotonic factory).
 *
 * @internal
 */
import { Ids } from "@buildomat/core"

/** A new ULID. */
export const ulid = (): string => Ids.make()

/** Whether `s` is a well-formed ULID. */
export const isUlid = (s: string): boolean => Ids.isUlid(s)
