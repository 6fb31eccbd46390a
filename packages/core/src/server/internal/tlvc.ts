/**
 * TLV-C (Oxide's "Tag - Length - Value - Checksum", https://github.com/oxidecomputer/tlvc), the
 * container buildomat writes job archives in. A chunk is:
 *
 * - a 4-byte tag (UTF-8, e.g. `EVNT`);
 * - the body length, u32 little-endian, padding not included;
 * - a header checksum, u32 LE: `NOT(tag_as_u32_le * 0x6b329f69 + len)`, wrapping;
 * - the body, zero-padded to a multiple of 4 bytes;
 * - the body checksum, u32 LE: CRC-32/iSCSI (Castagnoli) of the unpadded body.
 *
 * A body may itself be a sequence of chunks (nesting).
 */

const HEADER_MAGIC = 0x6b329f69

/** The size of a chunk header (tag, length, header checksum), in bytes. */
export const HEADER_BYTES = 12

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[i] = c >>> 0
  }
  return t
})()

/** CRC-32/iSCSI (CRC-32C, reflected polynomial 0x82F63B78), incrementally: start with `crc32c()`. */
export const crc32c = (data: Uint8Array = new Uint8Array(0), previous = 0): number => {
  let c = ~previous >>> 0
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

const tagBytes = (tag: string): Uint8Array => {
  const b = Buffer.from(tag, "utf8")
  if (b.length !== 4) throw new Error(`a TLV-C tag is 4 bytes, got ${JSON.stringify(tag)}`)
  return b
}

/** The header checksum of a tag and body length. */
export const headerChecksum = (tag: Uint8Array, len: number): number => {
  const t = Buffer.from(tag).readUInt32LE(0)
  return ~((Math.imul(t, HEADER_MAGIC) + len) >>> 0) >>> 0
}

/** The padded size of a body of `len` bytes. */
export const padded = (len: number) => (len + 3) & ~3

/** The whole size of a chunk whose body is `len` bytes: header, padded body, body checksum. */
export const chunkBytes = (len: number) => HEADER_BYTES + padded(len) + 4

/** Encodes one chunk. `body` may be the encoding of nested chunks. */
export const chunk = (tag: string, body: Uint8Array): Buffer => {
  const t = tagBytes(tag)
  const out = Buffer.alloc(chunkBytes(body.length))
  out.set(t, 0)
  out.writeUInt32LE(body.length, 4)
  out.writeUInt32LE(headerChecksum(t, body.length), 8)
  out.set(body, HEADER_BYTES)
  out.writeUInt32LE(crc32c(body), HEADER_BYTES + padded(body.length))
  return out
}

/** A u32 big-endian body (buildomat's `VERS` chunks). */
export const u32be = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n, 0)
  return b
}

/** A u64 big-endian value (buildomat's `INDX` slots). */
export const u64be = (n: number): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n), 0)
  return b
}

/** A chunk header as read back, checked against its checksum. */
export interface Header {
  readonly tag: string
  readonly len: number
}

/**
 * Reads and checks the chunk header at `offset` of `buf` (the header only: the body may be
 * elsewhere). Throws on a bad checksum.
 */
export const readHeader = (buf: Uint8Array, offset: number): Header => {
  if (offset + HEADER_BYTES > buf.length) throw new Error(`TLV-C: truncated header at byte ${offset}`)
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  const tag = b.subarray(offset, offset + 4)
  const len = b.readUInt32LE(offset + 4)
  const stored = b.readUInt32LE(offset + 8)
  const computed = headerChecksum(tag, len)
  if (stored !== computed) {
    throw new Error(`TLV-C: corrupt header at byte ${offset} (checksum ${stored}, expected ${computed})`)
  }
  return { tag: tag.toString("utf8"), len }
}

/**
 * Checks a whole chunk at `offset` (header and body checksum) and returns its tag and body
 * (a view into `buf`). Throws if the chunk is corrupt or does not have tag `expect`.
 */
export const readChunk = (buf: Uint8Array, offset: number, expect?: string, limit: number = buf.length) => {
  const h = readHeader(buf, offset)
  if (offset + chunkBytes(h.len) > Math.min(limit, buf.length)) throw new Error(`TLV-C: chunk at byte ${offset} is truncated`)
  if (expect !== undefined && h.tag !== expect) {
    throw new Error(`TLV-C: expected a ${JSON.stringify(expect)} chunk at byte ${offset}, found ${JSON.stringify(h.tag)}`)
  }
  const body = buf.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + h.len)
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  const stored = b.readUInt32LE(offset + HEADER_BYTES + padded(h.len))
  const computed = crc32c(body)
  if (stored !== computed) {
    throw new Error(`TLV-C: corrupt body of ${JSON.stringify(h.tag)} at byte ${offset} (crc ${stored}, expected ${computed})`)
  }
  return { tag: h.tag, body, next: offset + chunkBytes(h.len) }
}
