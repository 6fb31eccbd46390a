/**
 * Serving a stored file over HTTP as buildomat does (§2.1): one byte range at most (206 with
 * `Content-Range`), 416 for anything else (its `Content-Range` giving the size), `Accept-Ranges: bytes`, and
 * `HEAD` answered with the same headers and no body.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type { ObjectStore } from "../ObjectStore.js"
import { parseRange } from "./Ranges.js"

/**
 * The file to serve: its object store `key` and `size` in bytes; `sha256` (hex) adds
 * `Repr-Digest` (RFC 9530); `contentType` defaults to `application/octet-stream`;
 * `contentDisposition` is sent as given, else `attachment` with `filename` if one is given.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServedFile {
  readonly key: string
  readonly size: number
  readonly sha256?: string | undefined
  readonly filename?: string | undefined
  readonly contentType?: string | undefined
  readonly contentDisposition?: string | undefined
}

/**
 * The response for `request` (GET or HEAD, with or without `Range`) of file `f`.
 *
 * @since 0.1.0
 * @category handlers
 */
export const serveFile = (
  store: ObjectStore,
  request: HttpServerRequest.HttpServerRequest,
  f: ServedFile
): HttpServerResponse.HttpServerResponse => {
  const contentType = f.contentType ?? "application/octet-stream"
  const common: Record<string, string> = { "accept-ranges": "bytes" }
  if (f.sha256 !== undefined) common["repr-digest"] = `sha-256=:${Buffer.from(f.sha256, "hex").toString("base64")}:`
  if (f.contentDisposition !== undefined) {
    common["content-disposition"] = f.contentDisposition
  } else if (f.filename !== undefined) {
    common["content-disposition"] = `attachment; filename="${f.filename.replace(/[^\x20-\x7e]|["\\]/g, "_")}"`
  }
  const range = parseRange(request.headers["range"], f.size)
  if (range._tag === "Unsatisfiable") {
    return HttpServerResponse.empty({ status: 416, headers: { ...common, "content-range": `bytes */${f.size}` } })
  }
  const head = request.method === "HEAD"
  if (range._tag === "Full") {
    if (head) {
      return HttpServerResponse.empty({
        status: 200,
        headers: { ...common, "content-type": contentType, "content-length": String(f.size) }
      })
    }
    return HttpServerResponse.stream(store.get(f.key), { contentType, contentLength: f.size, headers: common })
  }
  const headers = { ...common, "content-range": `bytes ${range.start}-${range.end}/${f.size}` }
  const length = range.end - range.start + 1
  if (head) {
    return HttpServerResponse.empty({
      status: 206,
      headers: { ...headers, "content-type": contentType, "content-length": String(length) }
    })
  }
  return HttpServerResponse.stream(store.get(f.key, { start: range.start, end: range.end }), {
    status: 206,
    contentType,
    contentLength: length,
    headers
  })
}
