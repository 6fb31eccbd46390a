/**
 * The TLV-C container (internal/tlvc.ts) against the format's description and the independent
 * reader of the tests: the CRC-32C check value, header checksums, padding, and corruption.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Crypto from "node:crypto"
import * as Tlvc from "../src/server/internal/tlvc.js"
import { chunks, crc32cBitwise, headerChecksumBigInt } from "./tlvc-reader.js"

describe("TLV-C", () => {
  it("CRC-32/iSCSI has the catalogued check value, and agrees with a bitwise implementation", () => {
    // The CRC catalogue's check value of CRC-32/ISCSI for "123456789".
    assert.strictEqual(Tlvc.crc32c(Buffer.from("123456789")), 0xe3069283)
    assert.strictEqual(crc32cBitwise(Buffer.from("123456789")), 0xe3069283)
    for (const n of [0, 1, 3, 4, 5, 1000, 65537]) {
      const data = Crypto.randomBytes(n)
      assert.strictEqual(Tlvc.crc32c(data), crc32cBitwise(data), `length ${n}`)
      // Incremental use gives the same value.
      assert.strictEqual(Tlvc.crc32c(data.subarray(n >> 1), Tlvc.crc32c(data.subarray(0, n >> 1))), crc32cBitwise(data))
    }
  })

  it("chunks carry the header checksum, zero padding and the body checksum", () => {
    for (const [tag, n] of [["EVNT", 0], ["JOB\0", 1], ["INDX", 7], ["BMAT", 8], ["TYPE", 4093]] as const) {
      const body = Crypto.randomBytes(n)
      const c = Tlvc.chunk(tag, body)
      assert.strictEqual(c.length, 12 + Math.ceil(n / 4) * 4 + 4)
      assert.strictEqual(c.readUInt32LE(8), headerChecksumBigInt(Buffer.from(tag), n))
      const [read] = chunks(c)
      assert.strictEqual(read!.tag, tag)
      assert.isTrue(read!.body.equals(body))
      const back = Tlvc.readChunk(c, 0, tag)
      assert.isTrue(Buffer.from(back.body).equals(body))
      assert.strictEqual(back.next, c.length)
    }
  })

  it("a flipped bit in a header or a body is detected", () => {
    const c = Tlvc.chunk("EVNT", Buffer.from('{"payload":"hello"}'))
    for (const at of [0, 5, 9, 14, c.length - 1]) {
      const bad = Buffer.from(c)
      bad[at] = bad[at]! ^ 0x10
      assert.throws(() => Tlvc.readChunk(bad, 0, "EVNT"), /corrupt|truncated|expected/)
    }
    assert.throws(() => Tlvc.readChunk(c, 0, "INDX"), /expected a "INDX" chunk/)
    assert.throws(() => Tlvc.readChunk(c.subarray(0, c.length - 2), 0), /truncated/)
  })
})
