/**
 * Input downloads (buildomat §3.7). The core server's `GET /0/worker/job/{job}/inputs/{input}`
 * belongs to the job model (issue 3) and is not in this branch yet, so this test serves that
 * route from a loopback HTTP server that speaks it as buildomat documents it (the file by id,
 * single byte ranges with 206 and `Content-Range`), and cuts a download in the middle to check
 * that the agent resumes it. Replace the stand-in with the real server once the route exists.
 */
import { Testing } from "@buildomat/core/server"
import { assert, describe, it } from "@effect/vitest"
import { Client } from "@buildomat/core"
import { Effect } from "effect"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import * as EventLog from "../src/internal/events.js"
import * as Inputs from "../src/internal/inputs.js"
import { jobId } from "./fixtures/server.js"

const JOB = jobId("01JCZ0000000000000000000AB")

describe("input downloads", () => {
  it.scopedLive("resumes a cut download with a range, checks sizes, refuses names that leave /input", () =>
    Effect.gen(function*() {
      const root = yield* Testing.tempDirectory("agent-inputs-")
      const files: Record<string, Buffer> = {
        F1: Crypto.randomBytes(3 * 1024 * 1024 + 11),
        F2: Buffer.from("copied from a dependency\n"),
        F3: Buffer.from("short")
      }
      const seen: Array<{ id: string; range: string | undefined }> = []
      let cutOnce = true
      const server = http.createServer((req, res) => {
        const m = /^\/0\/worker\/job\/[^/]+\/inputs\/([^/?]+)$/.exec(req.url ?? "")
        const data = m === null ? undefined : files[m[1]!]
        seen.push({ id: m?.[1] ?? "", range: req.headers.range })
        if (data === undefined) {
          res.writeHead(404, { "content-type": "application/json" })
          res.end(JSON.stringify({ message: "no such input" }))
          return
        }
        const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? "")
        const start = r === null ? 0 : Number(r[1])
        const body = data.subarray(start)
        res.writeHead(r === null ? 200 : 206, {
          "content-type": "application/octet-stream",
          "content-length": body.length,
          "accept-ranges": "bytes",
          ...(r === null ? {} : { "content-range": `bytes ${start}-${data.length - 1}/${data.length}` })
        })
        if (m![1] === "F1" && cutOnce) {
          // Half the file, then the connection drops.
          cutOnce = false
          res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20))
          return
        }
        res.end(body)
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.void))
        }),
        () => Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
      )
      const { http: client } = yield* Client.make({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        token: "worker-token"
      }).pipe(Effect.provide(Testing.httpClientLayer))
      const notes: Array<string> = []
      const log = yield* EventLog.make((b) =>
        Effect.sync(() => {
          for (const r of b.runs) notes.push(...r.payloads)
          return "sent" as const
        })
      )

      const errors = yield* Inputs.download(client, JOB, [
        { name: "big.bin", id: "F1", size: files["F1"]!.length },
        { name: "dep/work/out/a.txt", id: "F2" },
        { name: "short.txt", id: "F3", size: 99 },
        { name: "gone.txt", id: "F4" },
        { name: "../../etc/passwd", id: "F2" }
      ], root, log)
      yield* log.flush

      assert.isTrue(fs.readFileSync(path.join(root, "input/big.bin")).equals(files["F1"]!))
      assert.strictEqual(fs.readFileSync(path.join(root, "input/dep/work/out/a.txt"), "utf8"), "copied from a dependency\n")
      const f1 = seen.filter((s) => s.id === "F1")
      assert.strictEqual(f1.length, 2)
      assert.isUndefined(f1[0]!.range)
      assert.match(f1[1]!.range!, /^bytes=\d+-$/, "the second request resumes where the first stopped")
      assert.isAbove(Number(/\d+/.exec(f1[1]!.range!)![0]), 0)
      assert.deepStrictEqual(errors.map((e) => e.replace(/:.*/, "")), [
        "downloading /input/short.txt",
        "downloading /input/gone.txt",
        "input name \"../../etc/passwd\" does not stay under /input"
      ])
      assert.match(errors[0]!, /got 5 bytes, but the input is 99 bytes/)
      assert.match(errors[1]!, /404/)
      assert.isFalse(fs.existsSync(path.join(root, "etc/passwd")))
      assert.deepStrictEqual(notes.filter((n) => n.startsWith("downloaded")), [
        "downloaded input: /input/big.bin",
        "downloaded input: /input/dep/work/out/a.txt"
      ])
    }))
})
