/**
 * A TLV-C reader written for the tests from the format's description
 * (https://github.com/oxidecomputer/tlvc, README), independent of the server's implementation:
 * bitwise CRC-32C, header checksums in BigInt arithmetic. It checks every checksum it reads.
 */

/** CRC-32/iSCSI, bit by bit (reflected polynomial 0x82F63B78). */
export const crc32cBitwise = (data: Uint8Array): number => {
  let crc = 0xffffffff
  for (const byte of data) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

/** `!(tag_le * 0x6b329f69 + len)` in u32 arithmetic. */
export const headerChecksumBigInt = (tag: Uint8Array, len: number): number => {
  const t = BigInt(Buffer.from(tag).readUInt32LE(0))
  const v = (t * 0x6b329f69n + BigInt(len)) & 0xffffffffn
  return Number(~v & 0xffffffffn)
}

export interface Chunk {
  readonly tag: string
  readonly offset: number
  readonly body: Buffer
  readonly end: number
}

/** Reads the chunks of `buf` from `start` to `end`, checking every header and body checksum. */
export const chunks = (buf: Buffer, start = 0, end = buf.length): Array<Chunk> => {
  const out: Array<Chunk> = []
  let off = start
  while (off < end) {
    const tag = buf.subarray(off, off + 4)
    const len = buf.readUInt32LE(off + 4)
    const hc = buf.readUInt32LE(off + 8)
    if (hc !== headerChecksumBigInt(tag, len)) throw new Error(`bad header checksum at ${off}`)
    const body = buf.subarray(off + 12, off + 12 + len)
    const padded = Math.ceil(len / 4) * 4
    for (let i = len; i < padded; i++) if (buf[off + 12 + i] !== 0) throw new Error(`non-zero padding at ${off}`)
    const crc = buf.readUInt32LE(off + 12 + padded)
    if (crc !== crc32cBitwise(body)) throw new Error(`bad body checksum at ${off}`)
    const next = off + 12 + padded + 4
    out.push({ tag: tag.toString("utf8"), offset: off, body, end: next })
    off = next
  }
  if (off !== end) throw new Error(`chunks overrun their container: ${off} != ${end}`)
  return out
}

/** A parsed buildomat job archive (version 2). */
export const readJobArchive = (buf: Buffer) => {
  const top = chunks(buf)
  const [bmat, job, indx, ...events] = top
  if (bmat?.tag !== "BMAT" || job?.tag !== "JOB\0" || indx?.tag !== "INDX") {
    throw new Error(`unexpected layout: ${top.slice(0, 3).map((c) => c.tag).join(",")}`)
  }
  const header = chunks(bmat.body)
  const arch = chunks(header[2]!.body)
  const index = Array.from({ length: indx.body.length / 8 }, (_, i) => Number(indx.body.readBigUInt64BE(i * 8)))
  return {
    header: {
      vers: header[0]!.tag === "VERS" ? header[0]!.body.readUInt32BE(0) : -1,
      type: header[1]!.tag === "TYPE" ? header[1]!.body.toString("utf8") : "",
      arch: {
        tag: header[2]!.tag,
        vers: arch[0]!.tag === "VERS" ? arch[0]!.body.readUInt32BE(0) : -1,
        type: arch[1]!.tag === "TYPE" ? arch[1]!.body.toString("utf8") : ""
      }
    },
    job: JSON.parse(job.body.toString("utf8")),
    index,
    eventsStart: indx.end,
    events: events.map((e) => ({ tag: e.tag, offset: e.offset - indx.end, value: JSON.parse(e.body.toString("utf8")) }))
  }
}
