/**
 * The server's `node:http` server, with a shutdown that does not wait on idle keep-alive
 * connections.
 *
 * `http.Server#close` stops accepting connections and (Node ≥ 19) destroys the connections that
 * are idle at that instant, then waits for every other connection to end. A response still being
 * written at that instant (the end of a download of a few MiB, say) leaves its connection open
 * once it is done: an idle keep-alive connection that nothing closes until the client gives it up
 * (undici: after 3 s) or the server's `keepAliveTimeout` fires (5 s by default). Here, once
 * `close` has been called:
 *
 * - a response in flight completes; its connection is closed as soon as it is idle;
 * - a new request on an open connection is served with `Connection: close`;
 * - after `graceMs`, whatever is still open is cut (`closeAllConnections`), so that a stalled
 *   client cannot hold the shutdown forever.
 *
 * A request that finds no other `request` listener (the API is not attached yet, or already
 * detached at shutdown, before the server closes) is answered `503` with `Connection: close`
 * instead of never being answered.
 *
 * @internal
 */
import * as Http from "node:http"
import * as Ids from "../../Ids.js"

/** How the server behaves around its shutdown; both in milliseconds. */
export interface Options {
  /** How long requests in flight at shutdown may take before their connections are cut. */
  readonly graceMs: number
  /** Node's `keepAliveTimeout`: how long an idle keep-alive connection is kept; default Node's (5 s). */
  readonly keepAliveTimeoutMs?: number | undefined
}

/** Makes the server (not listening). */
export const make = (options: Options): Http.Server => new GracefulServer(options)

class GracefulServer extends Http.Server {
  private closing = false
  private readonly inFlight = new Set<Http.ServerResponse>()

  constructor(private readonly options: Options) {
    super()
    if (options.keepAliveTimeoutMs !== undefined) this.keepAliveTimeout = options.keepAliveTimeoutMs
    // Registered first, so that it runs before the API's handler.
    this.on("request", (_req: Http.IncomingMessage, res: Http.ServerResponse) => {
      if (this.closing) res.shouldKeepAlive = false
      this.inFlight.add(res)
      res.once("close", () => this.inFlight.delete(res))
      if (this.listenerCount("request") > 1) return
      res.writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" })
      res.end(JSON.stringify({
        _tag: "ServiceUnavailable",
        message: this.closing ? "the server is shutting down" : "the server is not serving requests (it is starting or stopping)",
        request_id: Ids.make()
      }))
    })
  }

  override close(callback?: (err?: Error) => void): this {
    if (!this.closing && this.listening) {
      this.closing = true
      const sweep = () => this.closeIdleConnections()
      for (const res of this.inFlight) {
        if (!res.headersSent) res.shouldKeepAlive = false
        // Node's own `finish` listener (registered before the request was emitted) has already
        // detached the response from its socket when this one runs: the connection is idle.
        res.once("finish", sweep)
      }
      const cut = setTimeout(() => this.closeAllConnections(), this.options.graceMs)
      this.once("close", () => clearTimeout(cut))
    }
    return super.close(callback)
  }
}
