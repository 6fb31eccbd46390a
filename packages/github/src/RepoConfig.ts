/**
 * A repository's policy: `.github/buildomat/config.toml`, read only from the head of the
 * **default branch**, so that a pull request cannot change it (buildomat-github.md §3.1, §9).
 *
 * ```toml
 * enable = true                       # default false: the repository is ignored
 * org_only = true                     # default true: outsiders wait for authorisation
 * allow_users = ["dependabot[bot]"]   # logins treated as authorised
 * ```
 *
 * Other keys are ignored, as buildomat does.
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { parse as parseToml } from "smol-toml"

/**
 * The decoded policy.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RepoConfig = Schema.Struct({
  enable: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  org_only: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  allow_users: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
}).annotations({ identifier: "RepoConfig" })
/** @since 0.1.0 @category models */
export type RepoConfig = typeof RepoConfig.Type

/**
 * The policy of a repository without `config.toml`: disabled.
 *
 * @since 0.1.0
 * @category constants
 */
export const disabled: RepoConfig = { enable: false, org_only: true, allow_users: [] }

/**
 * Parses `config.toml`; the error message says what is wrong.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (text: string): Either.Either<RepoConfig, string> => {
  let doc: unknown
  try {
    doc = parseToml(text)
  } catch (e) {
    return Either.left(`config.toml is not valid TOML: ${String((e as Error).message).split("\n")[0]}`)
  }
  return Schema.decodeUnknownEither(RepoConfig)(doc).pipe(
    Either.mapLeft((e) => `config.toml: ${ParseResult.TreeFormatter.formatErrorSync(e)}`)
  )
}
