/**
 * `GET /file/agent` and `GET /file/agent.gz` (and `HEAD`): the agent, served by the server it
 * will talk to, so that a fresh machine's boot script can fetch it with nothing but the server's
 * URL (buildomat serves its agent binary on these unauthenticated, unpublished routes, and its
 * AWS factory's user data fetches it from there).
 *
 * Ours is a Node bundle (`@buildomat/agent/bundle`, one self-contained CommonJS file): it runs on any
 * machine with Node 20 or later, so the query hints buildomat's boot script sends (`kernel`,
 * `proc`, `mach`, `plat`, `id`, `id_like`, `version_id`) are accepted and ignored.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import { createRequire } from "node:module"
import * as NodeZlib from "node:zlib"
import * as Ids from "../../Ids.js"

/**
 * The module specifier of the agent bundle, resolved the way Node resolves it from core.
 *
 * @since 0.1.0
 * @category constants
 */
export const AGENT_BUNDLE_SPECIFIER = "@buildomat/agent/bundle"

/**
 * Where the agent bundle is: `bundle` if given, otherwise `@buildomat/agent/bundle` resolved from
 * this module (found when `@buildomat/agent` is installed next to `@buildomat/core`, as in this
 * repository after `npm run build`). `undefined` with the reason if it cannot be found.
 *
 * @since 0.1.0
 * @category utils
 */
export const resolveAgentBundle = (
  bundle?: string | undefined
): { readonly path: string } | { readonly path: undefined; readonly reason: string } => {
  let path = bundle
  if (path === undefined) {
    try {
      path = createRequire(import.meta.url).resolve(AGENT_BUNDLE_SPECIFIER)
    } catch (e) {
      return {
        path: undefined,
        reason: `cannot resolve "${AGENT_BUNDLE_SPECIFIER}" (${(e instanceof Error ? e.message : String(e)).split("\n")[0]})`
      }
    }
  }
  // Node's resolver does not check that an `exports` target exists.
  if (!NodeFs.existsSync(path)) return { path: undefined, reason: `${path} does not exist` }
  return { path }
}

interface Loaded {
  readonly key: string
  readonly raw: Uint8Array
  readonly gz: Uint8Array
}

/**
 * The routes as a layer on `HttpApiBuilder.Router`, next to the `HttpApi` routes; they need no
 * authentication. `bundle` overrides the path of the agent bundle.
 *
 * - `GET /file/agent`: the bundle, `application/octet-stream` (a JavaScript file to run with
 *   `node`), with `Content-Length`.
 * - `GET /file/agent.gz`: the same, gzip-compressed (`application/gzip`).
 * - `HEAD`: the same headers, no body.
 * - 404 `{ _tag: "NotFound", message, request_id }` when the bundle is not built; the message
 *   says to run `npm run build`.
 *
 * The bundle is read when first asked for and again whenever its size or modification time
 * changes, so building it while the server runs needs no restart; the gzip is made once per
 * version of the file.
 *
 * @since 0.1.0
 * @category layers
 */
export const agentFileLayer = (options: { readonly bundle?: string | undefined } = {}): Layer.Layer<never> => {
  let cached: Loaded | undefined
  const load = Effect.sync(() => {
    const found = resolveAgentBundle(options.bundle)
    if (found.path === undefined) return { _tag: "Missing" as const, reason: found.reason }
    const path = found.path
    try {
      const st = NodeFs.statSync(path)
      const key = `${path}:${st.size}:${st.mtimeMs}`
      if (cached?.key !== key) {
        const raw = NodeFs.readFileSync(path)
        cached = { key, raw, gz: NodeZlib.gzipSync(raw, { level: 9 }) }
      }
      return { _tag: "Found" as const, loaded: cached }
    } catch (e) {
      return { _tag: "Missing" as const, reason: `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}` }
    }
  })

  const serve = (gzip: boolean) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const found = yield* load
      if (found._tag === "Missing") {
        return HttpServerResponse.unsafeJson(
          {
            _tag: "NotFound",
            message: `the agent is not available: ${found.reason}; build it with \`npm run build\``,
            request_id: Ids.make()
          },
          { status: 404 }
        )
      }
      const body = gzip ? found.loaded.gz : found.loaded.raw
      const headers = {
        "cache-control": "no-store",
        "content-disposition": `attachment; filename="${gzip ? "buildomat-agent.cjs.gz" : "buildomat-agent.cjs"}"`
      }
      const contentType = gzip ? "application/gzip" : "application/octet-stream"
      if (request.method === "HEAD") {
        return HttpServerResponse.empty({
          status: 200,
          headers: { ...headers, "content-type": contentType, "content-length": String(body.length) }
        })
      }
      return HttpServerResponse.uint8Array(body, { contentType, headers })
    })

  return HttpApiBuilder.Router.use((router) =>
    Effect.all([
      router.get("/file/agent", serve(false)),
      router.get("/file/agent.gz", serve(true))
    ], { discard: true })
  )
}

/**
 * `agentFileLayer()` with the bundle found next to core.
 *
 * @since 0.1.0
 * @category layers
 */
export const AgentFileLive: Layer.Layer<never> = agentFileLayer()
