/**
 * Byte ranges of downloads (RFC 9110 §14), as buildomat serves them.
 *
 * @since 0.1.0
 */

/**
 * Parses a `Range` header against a representation of `size` bytes. buildomat serves a single
 * range; several ranges, or one that is malformed or starts past the end, are unsatisfiable.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseRange = (
  header: string | undefined,
  size: number
): { readonly _tag: "Full" } | { readonly _tag: "Partial"; readonly start: number; readonly end: number } | { readonly _tag: "Unsatisfiable" } => {
  if (header === undefined) return { _tag: "Full" }
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m === null) return { _tag: "Unsatisfiable" }
  const [, a, b] = m
  if (a === "" && b === "") return { _tag: "Unsatisfiable" }
  if (a === "") {
    const n = Number(b)
    if (n === 0 || size === 0) return { _tag: "Unsatisfiable" }
    return { _tag: "Partial", start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(a)
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1)
  if (start >= size || end < start) return { _tag: "Unsatisfiable" }
  return { _tag: "Partial", start, end }
}
