/**
 * Splitting a child's output into lines as buildomat does (§3.4): split on `\n` bytes, decode
 * each line as UTF-8 with invalid sequences replaced (lossy), trim trailing whitespace (which
 * also drops a `\r`). A final line without a newline is still a line. A line longer than
 * `MAX_LINE_BYTES` is cut into pieces of that size, so that one event always fits in a request.
 *
 * @internal
 */
import { Stream } from "effect"

const NL = 0x0a

/** The longest line kept whole, in bytes (1 MiB); longer ones are sent in pieces. */
export const MAX_LINE_BYTES = 1024 * 1024

/**
 * A synchronous line splitter: `push` a chunk of bytes, get the lines it completes; `end` returns
 * the last, unterminated line, if any. Splitting bytes before decoding never cuts a multi-byte
 * character: none contains 0x0a.
 */
export class LineSplitter {
  private pending: Array<Buffer> = []
  private pendingBytes = 0

  constructor(private readonly maxLine = MAX_LINE_BYTES) {}

  private take(last: Buffer | undefined): string {
    let text: string
    if (this.pending.length === 0) {
      text = last === undefined ? "" : last.toString("utf8")
    } else {
      if (last !== undefined) this.pending.push(last)
      text = Buffer.concat(this.pending).toString("utf8")
      this.pending = []
      this.pendingBytes = 0
    }
    return text.trimEnd()
  }

  push(chunk: Uint8Array): Array<string> {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    const lines: Array<string> = []
    let start = 0
    for (let nl = buf.indexOf(NL, start); nl !== -1; nl = buf.indexOf(NL, start)) {
      if (this.pendingBytes + (nl - start) > this.maxLine) this.cut(buf.subarray(start, nl), lines)
      else lines.push(this.take(buf.subarray(start, nl)))
      start = nl + 1
    }
    if (start < buf.length) {
      const rest = buf.subarray(start)
      if (this.pendingBytes + rest.length > this.maxLine) {
        this.cut(rest, lines, true)
      } else {
        // Copy: the stream may reuse its buffer.
        this.pending.push(Buffer.from(rest))
        this.pendingBytes += rest.length
      }
    }
    return lines
  }

  /** Emits whole pieces of `maxLine` bytes; keeps the remainder pending when `keep`. */
  private cut(part: Buffer, lines: Array<string>, keep = false): void {
    const all = Buffer.concat([...this.pending, part])
    this.pending = []
    this.pendingBytes = 0
    let off = 0
    while (all.length - off > this.maxLine) {
      lines.push(all.subarray(off, off + this.maxLine).toString("utf8").trimEnd())
      off += this.maxLine
    }
    const rest = all.subarray(off)
    if (keep) {
      this.pending.push(Buffer.from(rest))
      this.pendingBytes = rest.length
    } else {
      lines.push(rest.toString("utf8").trimEnd())
    }
  }

  end(): Array<string> {
    if (this.pending.length === 0) return []
    return [this.take(undefined)]
  }
}

/** The lines of a byte stream. */
export const splitLines = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<string, E, R> =>
  Stream.suspend(() => {
    const splitter = new LineSplitter()
    return bytes.pipe(
      Stream.mapConcat((chunk) => splitter.push(chunk)),
      Stream.concat(Stream.suspend(() => Stream.fromIterable(splitter.end())))
    )
  })
