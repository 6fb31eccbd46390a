/**
 * Bearer secrets. Tokens are random alphanumerics from the CSPRNG; the database keeps only their
 * SHA-256, so a copy of the database grants nothing. Lookups go by hash, and the final comparison
 * is constant-time.
 */
import * as Crypto from "node:crypto"

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/** A random alphanumeric secret of `length` characters (rejection sampling: no modulo bias). */
export const generate = (length: number): string => {
  let out = ""
  while (out.length < length) {
    for (const b of Crypto.randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALPHABET[b % 62]
    }
  }
  return out
}

/** The SHA-256 of a token, in lower-case hex. */
export const hash = (token: string): string => Crypto.createHash("sha256").update(token, "utf8").digest("hex")

/** Constant-time equality of two hex digests of the same length. */
export const hashesEqual = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "hex")
  const y = Buffer.from(b, "hex")
  return x.length === y.length && Crypto.timingSafeEqual(x, y)
}

/**
 * Splits an `Authorization` value the way buildomat does: exactly two whitespace-separated parts,
 * the scheme `bearer` in any case, a token of at least 3 characters. Returns the token or
 * undefined.
 */
export const parseBearer = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const parts = header.trim().split(/\s+/)
  if (parts.length !== 2 || parts[0]!.toLowerCase() !== "bearer" || parts[1]!.length < 3) return undefined
  return parts[1]
}
