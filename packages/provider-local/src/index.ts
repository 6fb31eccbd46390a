/**
 * `@buildomat/provider-local`: a worker provider that runs each worker's agent as a local process
 * group in its own scratch directory. The embedded default provider of buildomat for TypeScript.
 *
 * @since 0.1.0
 */

/**
 * The local worker provider: `make`, `layer`, its configuration and the TOML schema for it.
 *
 * @since 0.1.0
 */
export * as LocalProvider from "./LocalProvider.js"
