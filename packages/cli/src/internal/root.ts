import { Command, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import { Client, Ids } from "@buildomat/core"
import { Effect, Option, Schema } from "effect"
import * as Profile from "../Profile.js"
import { CliError } from "./errors.js"

/** The global options, given before the subcommand: `buildomat -p prod job list`. */
export const globalOptions = {
  profile: Options.text("profile").pipe(
    Options.withAlias("p"),
    Options.withPseudoName("PROFILE"),
    Options.withDescription(
      "profile in the credentials file (default: $BUILDOMAT_PROFILE, then default_profile, then \"default\")"
    ),
    Options.optional
  ),
  delegate: Options.text("delegate").pipe(
    Options.withAlias("D"),
    Options.withPseudoName("USER"),
    Options.withDescription("act as this user (sends X-Buildomat-Delegate; needs the delegate privilege)"),
    Options.optional
  )
}

/** The top-level command, without its subcommands; subcommand handlers read the globals from it. */
export const root = Command.make("buildomat", globalOptions).pipe(
  Command.withDescription("buildomat: submit and follow jobs, fetch their outputs, administer users")
)

/** The `--json` option of the commands that have one. */
export const json = Options.boolean("json").pipe(Options.withDescription("print JSON for scripts instead of a table"))

/** Loads the profile chosen by the global options and the environment. */
export const profile = Effect.gen(function*() {
  const g = yield* root
  return yield* Profile.load({ profile: Option.getOrUndefined(g.profile) })
})

const makeClient = (admin: boolean) =>
  Effect.gen(function*() {
    const g = yield* root
    const p = yield* Profile.load({ profile: Option.getOrUndefined(g.profile) })
    const client = yield* Client.make({
      url: p.url,
      token: admin ? Profile.adminToken(p) : p.secret,
      headers: Option.match(g.delegate, {
        onNone: () => undefined,
        onSome: (user) => ({ "x-buildomat-delegate": user })
      })
    })
    return { client, profile: p }
  })

/** A client with the profile's user token. */
export const userClient: Effect.Effect<
  { readonly client: Client.Client; readonly profile: Profile.Profile },
  Profile.ProfileError,
  Command.Command.Context<"buildomat"> | FileSystem.FileSystem | HttpClient.HttpClient
> = makeClient(false)

/** A client with the profile's admin token (or its user token when it has none). */
export const adminClient: Effect.Effect<
  { readonly client: Client.Client; readonly profile: Profile.Profile },
  Profile.ProfileError,
  Command.Command.Context<"buildomat"> | FileSystem.FileSystem | HttpClient.HttpClient
> = makeClient(true)

/** Checks a job id argument (a ULID) before it is put in a URL. */
export const jobId = (arg: string): Effect.Effect<Ids.JobId, CliError> =>
  Schema.decodeUnknown(Ids.JobId)(arg.trim()).pipe(
    Effect.mapError(() => new CliError({ message: `${JSON.stringify(arg)} is not a job id (a 26-character ULID)` }))
  )

/**
 * Wraps a command handler. Failures are reported generically by `Cli.run` (`internal/errors.ts`),
 * so the error type is erased here; this keeps the declarations free of core's error classes.
 */
export const handler = <A, E, R>(f: (a: A) => Effect.Effect<void, E, R>) => (a: A): Effect.Effect<void, unknown, R> =>
  f(a)
