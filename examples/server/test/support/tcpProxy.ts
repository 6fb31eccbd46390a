/**
 * A TCP proxy for fault tests: it forwards each connection to the target, and cuts some of them
 * (both sides, at once) after a number of bytes chosen per connection: in the middle of a request
 * body, in the middle of a response, between requests of a kept-alive connection. It can also
 * refuse to forward for a while (`hold`), as an unreachable server.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as net from "node:net"

export interface ProxyStats {
  connections: number
  /** Connections cut by the proxy. */
  cut: number
  /** ... of which after the server had started answering (the request may have been handled). */
  cutInAnswer: number
}

export interface TcpProxy {
  readonly url: string
  readonly stats: ProxyStats
  /** While true, new connections are accepted and left hanging, then cut after 2 s. */
  hold: boolean
}

/** A small deterministic PRNG (mulberry32), so that a failing run can be replayed. */
export const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * Starts the proxy for the scope. `cutAfter(n)` decides, for the n-th connection, after how many
 * bytes (both directions together) to cut it, `"answer"` to cut it the moment the server starts
 * answering (the request was handled, the answer is lost), or `undefined` to leave it alone.
 */
export const start = (
  target: { readonly host: string; readonly port: number },
  cutAfter: (connection: number) => number | "answer" | undefined
): Effect.Effect<TcpProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const stats: ProxyStats = { connections: 0, cut: 0, cutInAnswer: 0 }
    const sockets = new Set<net.Socket>()
    const proxy: { url: string; stats: ProxyStats; hold: boolean } = { url: "", stats, hold: false }
    const server = net.createServer((client) => {
      const n = stats.connections++
      sockets.add(client)
      client.on("close", () => sockets.delete(client))
      client.on("error", () => {})
      if (proxy.hold) {
        setTimeout(() => client.destroy(), 2000)
        return
      }
      const rule = cutAfter(n)
      const limit = typeof rule === "number" ? rule : undefined
      let seen = 0
      let answered = false
      let dead = false
      const upstream = net.connect(target.port, target.host)
      sockets.add(upstream)
      upstream.on("close", () => sockets.delete(upstream))
      upstream.on("error", () => client.destroy())
      client.on("close", () => upstream.destroy())
      upstream.on("close", () => client.destroy())
      const cut = () => {
        if (dead) return
        dead = true
        stats.cut++
        if (answered) stats.cutInAnswer++
        client.destroy()
        upstream.destroy()
      }
      const pass = (from: net.Socket, to: net.Socket, isAnswer: boolean) =>
        from.on("data", (data: Buffer) => {
          if (dead) return
          if (rule === "answer" && isAnswer) {
            answered = true
            cut()
            return
          }
          if (limit !== undefined && seen + data.length > limit) {
            const keep = Math.max(0, limit - seen)
            if (keep > 0) to.write(data.subarray(0, keep))
            if (isAnswer) answered = true
            seen = limit
            // Let what was written go out, then cut.
            setImmediate(cut)
            return
          }
          seen += data.length
          if (isAnswer) answered = true
          if (!to.write(data)) {
            from.pause()
            to.once("drain", () => from.resume())
          }
        })
      pass(client, upstream, false)
      pass(upstream, client, true)
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const s of sockets) s.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    proxy.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
    return proxy as TcpProxy
  })
