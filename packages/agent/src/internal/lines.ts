/**
 * Splitting a child's output into lines as buildomat does (§3.4): split on `\n` bytes, decode
 * each line as UTF-8 with invalid sequences replaced (lossy), trim trailing whitespace (which
 * also drops a `\r`). A final line without a newline is still a line.
 *
 * @internal
 */
import { Stream } from "effect"

const NL = 0x0a

/** The lines of a byte stream. */
export const splitLines = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<string, E, R> =>
  Stream.suspend(() => {
    // Splitting bytes before decoding never cuts a multi-byte character: none contains 0x0a.
    const decoder = new TextDecoder("utf-8", { fatal: false })
    const decode = (parts: ReadonlyArray<Uint8Array>) => decoder.decode(Buffer.concat(parts)).trimEnd()
    let pending: Array<Uint8Array> = []
    return bytes.pipe(
      Stream.mapConcat((chunk) => {
        const lines: Array<string> = []
        let start = 0
        for (let nl = chunk.indexOf(NL); nl !== -1; nl = chunk.indexOf(NL, start)) {
          pending.push(chunk.subarray(start, nl))
          lines.push(decode(pending))
          pending = []
          start = nl + 1
        }
        if (start < chunk.length) pending.push(chunk.subarray(start))
        return lines
      }),
      Stream.concat(Stream.suspend(() => (pending.length > 0 ? Stream.make(decode(pending)) : Stream.empty)))
    )
  })
