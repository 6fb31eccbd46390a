/**
 * Identifiers. Every buildomat entity is named by a ULID: 26 characters of Crockford base32
 * whose first 10 characters encode the creation time in milliseconds (https://github.com/ulid/spec).
 * A job's submit time is read back from its id, as buildomat does.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { decodeTime, monotonicFactory } from "ulid"
import { randomBytes } from "node:crypto"

const ULID_RE = /^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$/

/**
 * A ULID on the wire: 26 Crockford base32 characters, decoded case-insensitively and
 * normalised to upper case. Anything else fails to decode with a message naming the value,
 * which the API turns into a 400 (buildomat answers 500 to a bad ULID; we do not).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Ulid = Schema.transform(
  Schema.String.pipe(
    Schema.filter((s) => ULID_RE.test(s), {
      message: (issue) =>
        `expected a ULID (26 Crockford base32 characters), got ${JSON.stringify(issue.actual)}`
    })
  ),
  Schema.String,
  { strict: true, decode: (s) => s.toUpperCase(), encode: (s) => s }
).annotations({ identifier: "Ulid", description: "a ULID: 26 Crockford base32 characters" })

/** @since 0.1.0 @category schemas */
export const JobId = Ulid.pipe(Schema.brand("JobId"))
/** A job id (ULID). @since 0.1.0 @category models */
export type JobId = typeof JobId.Type
/** @since 0.1.0 @category schemas */
export const UserId = Ulid.pipe(Schema.brand("UserId"))
/** A user id (ULID). @since 0.1.0 @category models */
export type UserId = typeof UserId.Type
/** @since 0.1.0 @category schemas */
export const WorkerId = Ulid.pipe(Schema.brand("WorkerId"))
/** A worker id (ULID). @since 0.1.0 @category models */
export type WorkerId = typeof WorkerId.Type
/** @since 0.1.0 @category schemas */
export const FileId = Ulid.pipe(Schema.brand("FileId"))
/** The id of a stored file (an output or an input) of a job (ULID). @since 0.1.0 @category models */
export type FileId = typeof FileId.Type
/** @since 0.1.0 @category schemas */
export const ChunkId = Ulid.pipe(Schema.brand("ChunkId"))
/** The id of an uploaded chunk, not yet committed into a file (ULID). @since 0.1.0 @category models */
export type ChunkId = typeof ChunkId.Type
/** @since 0.1.0 @category schemas */
export const TargetId = Ulid.pipe(Schema.brand("TargetId"))
/** A target id (ULID). @since 0.1.0 @category models */
export type TargetId = typeof TargetId.Type
/** @since 0.1.0 @category schemas */
export const FactoryId = Ulid.pipe(Schema.brand("FactoryId"))
/** A factory id (ULID). @since 0.1.0 @category models */
export type FactoryId = typeof FactoryId.Type

// Random fractions for the random part of a ULID, a byte at a time (as ulid's default does) but
// from a pool filled by \`randomBytes\`: the default asks WebCrypto once per character, sixteen
// calls per id, about 100 µs on a 2-core machine.
let pool = Buffer.alloc(0)
let at = 0
const prng = (): number => {
  if (at >= pool.length) {
    pool = randomBytes(4096)
    at = 0
  }
  return pool[at++]! / 256
}

const next = monotonicFactory(prng)

/**
 * Makes a new ULID, strictly increasing within this process even inside one millisecond,
 * so that ordering by id is ordering by creation (buildomat assigns jobs FIFO by id).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): string => next()

/**
 * The creation time of a ULID, in milliseconds since the Unix epoch.
 *
 * @since 0.1.0
 * @category utils
 */
export const timestamp = (id: string): number => decodeTime(id.toUpperCase())

/**
 * Whether a string is a well-formed ULID. buildomat refuses names that look like ULIDs for
 * users, factories and targets, so that "ID or name" arguments are never ambiguous.
 *
 * @since 0.1.0
 * @category guards
 */
export const isUlid = (s: string): boolean => ULID_RE.test(s)
