/**
 * The IPv4 address ranges of factory metadata (`addresses`, buildomat `FactoryAddresses`: `{name,
 * cidr, first, count, routed, gateway?}`), checked as `bmat address list` shows them. Free of
 * Effect, like `bmat.ts`, which bundles it.
 *
 * A range is usable when:
 *
 * - `name` is a non-empty string, `routed` a boolean, `count` an integer from 1;
 * - `cidr` is an IPv4 network `A.B.C.D/N` (N from 0 to 32; host bits may be set, the network is
 *   what they mask to), `first` an IPv4 address in it, and `first + count - 1` (`last`) too;
 * - in a network of /30 or wider, neither `first` nor `last` is the network or broadcast address
 *   (a /31 or /32 has neither: RFC 3021);
 * - `gateway`, if given (not null), is an IPv4 address.
 *
 * buildomat applies the same checks, skipping a range that fails them without a word, and has no
 * IPv6 either; here each one that fails says why.
 *
 * @internal
 */

/** A usable range; addresses in dotted-quad form. */
export interface AddressRange {
  readonly name: string
  /** The network, `A.B.C.D/N`, host bits cleared. */
  readonly cidr: string
  readonly first: string
  readonly last: string
  readonly count: number
  readonly network: string
  /** The netmask, `255.255.255.0` for a /24. */
  readonly mask: string
  readonly routed: boolean
  readonly gateway: string | undefined
}

/** What `parse` makes of the entries: the usable ranges in order, and why the others are not. */
export interface Parsed {
  readonly ranges: ReadonlyArray<AddressRange>
  /** One per unusable entry: its name (if it has one) and the reason. */
  readonly problems: ReadonlyArray<{ readonly name: string | undefined; readonly reason: string }>
}

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/

/** An IPv4 address as a number, or `undefined` if `s` is not exactly a dotted quad. */
export const parseIpv4 = (s: string): number | undefined => {
  const parts = s.split(".")
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined
  return parts.reduce((n, p) => n * 256 + Number(p), 0)
}

/** A number from 0 to 2^32 - 1 as a dotted quad. */
export const formatIpv4 = (n: number): string =>
  [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".")

/** Checks one entry: the range, or why it is not usable. */
const check = (entry: unknown): AddressRange | string => {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return "not an object"
  const e = entry as Record<string, unknown>
  if (typeof e["name"] !== "string" || e["name"] === "") return "name is not a non-empty string"
  if (typeof e["cidr"] !== "string") return "cidr is not a string"
  if (typeof e["first"] !== "string") return "first is not a string"
  const count = e["count"]
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1) return `count ${JSON.stringify(count)} is not an integer from 1`
  if (typeof e["routed"] !== "boolean") return "routed is not true or false"
  const gw = e["gateway"]
  if (gw !== undefined && gw !== null && (typeof gw !== "string" || parseIpv4(gw) === undefined)) {
    return `gateway ${JSON.stringify(gw)} is not an IPv4 address`
  }
  const cidr = e["cidr"]
  const first = e["first"]
  if (cidr.includes(":") || first.includes(":")) return "IPv6 ranges are not supported"
  const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr)
  const base = m === null ? undefined : parseIpv4(m[1]!)
  const prefix = m === null ? NaN : Number(m[2])
  if (base === undefined || !(prefix >= 0 && prefix <= 32)) return `cidr ${JSON.stringify(cidr)} is not an IPv4 network A.B.C.D/N`
  const size = 2 ** (32 - prefix)
  const network = base - (base % size)
  const broadcast = network + size - 1
  const start = parseIpv4(first)
  if (start === undefined) return `first ${JSON.stringify(first)} is not an IPv4 address`
  const net = `${formatIpv4(network)}/${prefix}`
  if (start < network || start > broadcast) return `first address ${first} is outside ${net}`
  const end = start + count - 1
  if (end > broadcast) return `${count} addresses from ${first} go past the end of ${net}`
  if (prefix <= 30 && start === network) return `first address ${first} is the network address of ${net}`
  if (prefix <= 30 && end === broadcast) return `the last address, ${formatIpv4(end)}, is the broadcast address of ${net}`
  return {
    name: e["name"],
    cidr: net,
    first: formatIpv4(start),
    last: formatIpv4(end),
    count,
    network: formatIpv4(network),
    mask: formatIpv4(2 ** 32 - size),
    routed: e["routed"],
    gateway: typeof gw === "string" ? gw : undefined
  }
}

/** Checks the `addresses` of factory metadata (anything but a list is one problem). */
export const parse = (addresses: unknown): Parsed => {
  if (addresses === undefined || addresses === null) return { ranges: [], problems: [] }
  if (!Array.isArray(addresses)) return { ranges: [], problems: [{ name: undefined, reason: "addresses is not a list" }] }
  const ranges: Array<AddressRange> = []
  const problems: Array<{ name: string | undefined; reason: string }> = []
  for (const entry of addresses) {
    const r = check(entry)
    if (typeof r !== "string") {
      ranges.push(r)
    } else {
      const name = typeof entry === "object" && entry !== null ? (entry as Record<string, unknown>)["name"] : undefined
      problems.push({ name: typeof name === "string" ? name : undefined, reason: r })
    }
  }
  return { ranges, problems }
}

/** The columns `bmat address list` knows, in order; `DEFAULT_COLUMNS` are shown unless `-o`. */
export const COLUMNS = ["name", "cidr", "first", "last", "count", "family", "network", "mask", "routed", "gateway"] as const
/** A column of the table. */
export type Column = (typeof COLUMNS)[number]
/** What `bmat address list` shows without `-o`. */
export const DEFAULT_COLUMNS: ReadonlyArray<Column> = ["name", "cidr", "first", "last", "count", "routed", "gateway"]

const cell = (r: AddressRange, c: Column): string => {
  switch (c) {
    case "family":
      return "inet"
    case "count":
      return String(r.count)
    case "routed":
      return r.routed ? "yes" : "no"
    case "gateway":
      return r.gateway ?? "-"
    default:
      return r[c]
  }
}

/**
 * The ranges as a table: a header of upper-case column names (unless `header` is false), one line
 * per range, columns padded to their widest cell and separated by two spaces.
 */
export const table = (ranges: ReadonlyArray<AddressRange>, columns: ReadonlyArray<Column>, header: boolean): string => {
  const rows = ranges.map((r) => columns.map((c) => cell(r, c)))
  if (header) rows.unshift(columns.map((c) => c.toUpperCase()))
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]!))).join("  ").trimEnd() + "\n").join("")
}
