/**
 * The webhook endpoint (`POST /webhook`): store first, process later (buildomat-github.md §2.1).
 *
 * 1. The `X-Hub-Signature-256` header must be `sha256=` and the HMAC-SHA256 of the **raw body**
 *    with the webhook secret, compared in constant time (`@octokit/webhooks-methods`). Missing
 *    or wrong: 401, and nothing is stored. (buildomat answers 500 and compares with `==`.)
 * 2. `X-GitHub-Delivery` and `X-GitHub-Event` are required and the body must be JSON: else 400.
 * 3. The delivery is stored (`Store.storeDelivery`), on disk, before the answer: an identical
 *    redelivery (same `X-GitHub-Delivery`, event and body) is stored once and answered again as
 *    a success; the same id with another body is a 409.
 * 4. 200 `{ "seq": N, "duplicate": bool }`, and the background loop is woken. Nothing else
 *    happens in the request.
 *
 * Source: GitHub, "Validating webhook deliveries" (docs.github.com/en/webhooks/using-webhooks/
 * validating-webhook-deliveries); bodies are at most 25 MB ("Webhook events and payloads").
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { verify } from "@octokit/webhooks-methods"
import { Effect, Option } from "effect"
import { AppConfig } from "./Config.js"
import { Store } from "./Store.js"
import { Wakeup } from "./Wakeup.js"

/**
 * The largest body accepted, in bytes (GitHub caps payloads at 25 MB).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024

const answer = (status: number, message: string) => HttpServerResponse.unsafeJson({ message }, { status })

// `ignoreBOM` keeps a byte-order mark in the text, so that the text is exactly the raw bytes.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * The handler. Needs `AppConfig`, `Store`, `Wakeup` and the request.
 *
 * @since 0.1.0
 * @category handlers
 */
export const handler = Effect.gen(function*() {
  const req = yield* HttpServerRequest.HttpServerRequest
  const config = yield* AppConfig
  const store = yield* Store
  const wakeup = yield* Wakeup

  if (Number(req.headers["content-length"] ?? "0") > MAX_WEBHOOK_BYTES) {
    return answer(413, `the body is larger than ${MAX_WEBHOOK_BYTES} bytes`)
  }
  const body = yield* req.arrayBuffer.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, Option.some(FileSystem.Size(MAX_WEBHOOK_BYTES))),
    Effect.either
  )
  if (body._tag === "Left") return answer(400, "the body could not be read (or is larger than 25 MB)")

  const signature = req.headers["x-hub-signature-256"]
  if (signature === undefined || signature === "") return answer(401, "X-Hub-Signature-256 is missing")
  let text: string
  try {
    text = utf8.decode(body.right)
  } catch {
    return answer(400, "the body is not UTF-8")
  }
  if (text.length === 0) return answer(400, "the body is empty")
  const good = yield* Effect.promise(() => verify(config.webhookSecret, text, signature).catch(() => false))
  if (!good) return answer(401, "X-Hub-Signature-256 does not match the body")

  const uuid = req.headers["x-github-delivery"]
  const event = req.headers["x-github-event"]
  if (uuid === undefined || !/^[A-Za-z0-9-]{1,100}$/.test(uuid)) return answer(400, "X-GitHub-Delivery is missing or malformed")
  if (event === undefined || !/^[a-z_]{1,64}$/.test(event)) return answer(400, "X-GitHub-Event is missing or malformed")
  try {
    JSON.parse(text)
  } catch (e) {
    return answer(400, `the body is not JSON: ${(e as Error).message}`)
  }
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v
  return yield* store.storeDelivery({ uuid, event, headers, payload: text, recvtime: new Date().toISOString() }).pipe(
    Effect.tap(() => wakeup.wake),
    Effect.map((r) => HttpServerResponse.unsafeJson({ seq: r.seq, duplicate: r.duplicate })),
    Effect.catchTag("DeliveryConflict", (e) =>
      Effect.succeed(answer(409, `delivery ${e.uuid} was already stored (seq ${e.seq}) with another event or body`)))
  )
})
