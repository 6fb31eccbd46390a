/**
 * `@buildomat/provider-aws`: a worker provider that makes one EC2 instance per worker, as
 * buildomat's AWS factory does, for the core server's provisioning loop.
 *
 * @since 0.1.0
 */

/**
 * The EC2 worker provider: `make`, `layer`, its configuration and the TOML schema for it.
 *
 * @since 0.1.0
 */
export * as AwsProvider from "./AwsProvider.js"
