/**
 * Users on the wire (buildomat `WhoamiResult`, `UserCreate`, `UserCreateResult`, `User`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Timestamp } from "./Schemas.js"

/** `GET /0/whoami`: the user a token belongs to. @since 0.1.0 @category schemas */
export const WhoamiResult = Schema.Struct({ id: Schema.String, name: Schema.String }).annotations({
  identifier: "WhoamiResult"
})

/**
 * A user name: 1 to 64 characters of `[A-Za-z0-9._-]`, not shaped like a ULID (buildomat refuses
 * ULID-like names so that "id or name" arguments are never ambiguous).
 *
 * @since 0.1.0
 * @category schemas
 */
export const UserName = Schema.String.pipe(
  Schema.filter((s) => /^[A-Za-z0-9._-]{1,64}$/.test(s), {
    message: (i) => `a user name is 1 to 64 characters of [A-Za-z0-9._-], got ${JSON.stringify(i.actual)}`
  }),
  Schema.filter((s) => !/^[A-Za-z0-9]{26}$/.test(s), {
    message: (i) => `a user name must not look like a ULID, got ${JSON.stringify(i.actual)}`
  })
)

/** `POST /0/users` body. @since 0.1.0 @category schemas */
export const UserCreate = Schema.Struct({ name: UserName }).annotations({ identifier: "UserCreate" })

/**
 * `POST /0/users` result: the new user's bearer `token` is shown once, here, and stored only
 * as a hash.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UserCreateResult = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  token: Schema.String
}).annotations({ identifier: "UserCreateResult" })

/** A user as administrators see it. @since 0.1.0 @category schemas */
export const User = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  time_create: Timestamp,
  privileges: Schema.Array(Schema.String)
}).annotations({ identifier: "User" })
/** @since 0.1.0 @category models */
export type User = typeof User.Type
