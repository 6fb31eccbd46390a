/**
 * Targets on the wire (buildomat `Target`, `TargetCreate`, `TargetCreateResult`,
 * `TargetRedirect`, `TargetRename`). A target names a kind of worker ("helios", "ubuntu-22.04");
 * jobs name a target, factories advertise and workers carry target ids. A target may redirect to
 * another (resolved at submit time, at most 32 hops) and may require a privilege of the users who
 * submit jobs to it.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Ids from "./Ids.js"

/**
 * A target name: not empty, no leading or trailing whitespace, and not shaped like a ULID
 * (26 alphanumerics), so that "id or name" arguments are never ambiguous (buildomat
 * `target_create`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const TargetName = Schema.String.pipe(
  Schema.filter((s) => s.length > 0 && s === s.trim(), {
    message: (i) => `a target name must be non-empty and have no leading or trailing whitespace, got ${JSON.stringify(i.actual)}`
  }),
  Schema.filter((s) => !/^[A-Za-z0-9]{26}$/.test(s), {
    message: (i) => `a target name must not look like a ULID, got ${JSON.stringify(i.actual)}`
  })
)

/**
 * A target as administrators see it (`GET /0/admin/targets`): `redirect` is the id of the target
 * jobs naming this one run on instead, `privilege` the privilege a user must hold to submit jobs
 * that resolve to it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Target = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  desc: Schema.String,
  redirect: Schema.optional(Schema.NullOr(Schema.String)),
  privilege: Schema.optional(Schema.NullOr(Schema.String))
}).annotations({ identifier: "Target" })
/** @since 0.1.0 @category models */
export type Target = typeof Target.Type

/** `POST /0/admin/target` body. @since 0.1.0 @category schemas */
export const TargetCreate = Schema.Struct({ name: TargetName, desc: Schema.String }).annotations({
  identifier: "TargetCreate"
})

/** `{ id }` of a new target (or of the signpost a rename leaves). @since 0.1.0 @category schemas */
export const TargetCreateResult = Schema.Struct({ id: Schema.String }).annotations({
  identifier: "TargetCreateResult"
})

/**
 * `PUT /0/admin/targets/{target}/redirect` body: the id of an existing target, or null (or
 * absent) to stop redirecting.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TargetRedirect = Schema.Struct({
  redirect: Schema.optional(Schema.NullOr(Ids.TargetId))
}).annotations({ identifier: "TargetRedirect" })

/**
 * `POST /0/admin/targets/{target}/rename` body: the target takes `new_name`, and a new
 * "signpost" target with the old name, `signpost_description` and the same privilege redirects
 * to it, so that job files naming the old name keep working.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TargetRename = Schema.Struct({
  new_name: TargetName,
  signpost_description: Schema.String
}).annotations({ identifier: "TargetRename" })
