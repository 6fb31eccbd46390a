/**
 * Validated names, one schema per kind, with buildomat's rules (§7 of the core specification;
 * the source is buildomat's `server/src/api/*.rs` and `db` checks). Each fails to decode with a
 * message that names the rule and the value, which the API answers with a 400.
 *
 * | name | rule |
 * |---|---|
 * | user | 1–64 of `[A-Za-z0-9._-]`, not ULID-like (`Users.UserName`) |
 * | factory | 1–64 of `[A-Za-z0-9._-]`, not ULID-like |
 * | target | trimmed, 1–128 characters without control characters, not ULID-like |
 * | privilege | non-empty, `[0-9a-z._/-]` |
 * | tag | non-empty, `[0-9a-z._-]` |
 * | job store entry | non-empty, `[A-Za-z0-9_]` |
 * | event stream | at most 64 of `[A-Za-z0-9._-]`, may be empty (`Workers.StreamName`) |
 * | published file series, version, name | 2–48 of `[A-Za-z0-9._-]` |
 *
 * Upper bounds buildomat leaves open (user, factory and target names) are ours, so that a name
 * fits a terminal column and an index.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const ULID_LIKE = /^[A-Za-z0-9]{26}$/

const rule = (re: RegExp, what: string) =>
  Schema.filter<Schema.Schema<string>>((s) => re.test(s), {
    message: (i) => `${what}, got ${JSON.stringify(i.actual)}`
  })

const notUlid = (what: string) =>
  Schema.filter<Schema.Schema<string>>((s) => !ULID_LIKE.test(s), {
    message: (i) => `${what} must not look like a ULID (26 letters and digits), got ${JSON.stringify(i.actual)}`
  })

/**
 * A user name (re-exported from `Users`).
 *
 * @since 0.1.0
 * @category schemas
 */
export { UserName } from "./Users.js"

/**
 * An event stream name (re-exported from `Workers`).
 *
 * @since 0.1.0
 * @category schemas
 */
export { StreamName } from "./Workers.js"

/**
 * A factory name: 1 to 64 characters of `[A-Za-z0-9._-]`, not ULID-like (buildomat refuses
 * ULID-like factory names so that "id or name" arguments are never ambiguous).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FactoryName = Schema.String.pipe(
  rule(/^[A-Za-z0-9._-]{1,64}$/, "a factory name is 1 to 64 characters of [A-Za-z0-9._-]"),
  notUlid("a factory name")
).annotations({ identifier: "FactoryName" })

/**
 * A target name: no leading or trailing white space, 1 to 128 characters, no control characters,
 * not ULID-like (buildomat trims target names, refuses empty and ULID-like ones).
 *
 * @since 0.1.0
 * @category schemas
 */
export const TargetName = Schema.String.pipe(
  Schema.filter((s) => s === s.trim(), {
    message: (i) => `a target name has no leading or trailing white space, got ${JSON.stringify(i.actual)}`
  }),
  rule(/^[^\u0000-\u001f\u007f]{1,128}$/, "a target name is 1 to 128 characters, none of them control characters"),
  notUlid("a target name")
).annotations({ identifier: "TargetName" })

/**
 * A privilege: non-empty, only `[0-9a-z._/-]` (buildomat `user_privilege`), for example
 * `admin.job.read` or a target's privilege.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PrivilegeName = Schema.String.pipe(
  rule(/^[0-9a-z._/-]{1,256}$/, "a privilege is 1 to 256 characters of [0-9a-z._/-]")
).annotations({ identifier: "PrivilegeName" })

/**
 * A job tag name: non-empty, only `[0-9a-z._-]` (buildomat `JobSubmit` validation). Tag values
 * are free text; a job has at most 100 tags and 131072 bytes of names and values together.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TagName = Schema.String.pipe(
  rule(/^[0-9a-z._-]+$/, "a tag name is one or more of [0-9a-z._-]")
).annotations({ identifier: "TagName" })

/**
 * The name of a job store entry: non-empty, only `[A-Za-z0-9_]` (buildomat; values are at most
 * 10 KiB, and a job has at most 100 entries).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StoreName = Schema.String.pipe(
  rule(/^[A-Za-z0-9_]{1,256}$/, "a job store name is 1 to 256 characters of [A-Za-z0-9_]")
).annotations({ identifier: "StoreName" })

/**
 * A published file's series, version or name: 2 to 48 characters of `[A-Za-z0-9._-]`
 * (buildomat `JobOutputPublish`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const PublishName = Schema.String.pipe(
  rule(/^[A-Za-z0-9._-]{2,48}$/, "a published file's series, version and name are 2 to 48 characters of [A-Za-z0-9._-]")
).annotations({ identifier: "PublishName" })
