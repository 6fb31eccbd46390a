import { assert, describe, it } from "@effect/vitest"
import * as Addresses from "../src/internal/addresses.js"

const range = (over: Record<string, unknown> = {}) => ({
  name: "lab",
  cidr: "10.0.1.0/24",
  first: "10.0.1.10",
  count: 5,
  routed: true,
  gateway: "10.0.1.1",
  ...over
})

const reason = (over: Record<string, unknown>) => {
  const { ranges, problems } = Addresses.parse([range(over)])
  assert.deepStrictEqual(ranges, [])
  return problems[0]!.reason
}

describe("factory metadata addresses", () => {
  it("a usable range, with last address, network and mask worked out", () => {
    assert.deepStrictEqual(Addresses.parse([range()]), {
      ranges: [{
        name: "lab",
        cidr: "10.0.1.0/24",
        first: "10.0.1.10",
        last: "10.0.1.14",
        count: 5,
        network: "10.0.1.0",
        mask: "255.255.255.0",
        routed: true,
        gateway: "10.0.1.1"
      }],
      problems: []
    })
    // Host bits in the CIDR are masked off; no gateway is fine.
    const [r] = Addresses.parse([range({ cidr: "10.0.1.77/24", gateway: null })]).ranges
    assert.strictEqual(r!.cidr, "10.0.1.0/24")
    assert.isUndefined(r!.gateway)
  })

  it("/31 and /32 have no network or broadcast address to avoid (RFC 3021); wider networks do", () => {
    const ok = Addresses.parse([
      range({ name: "p2p", cidr: "192.168.7.4/31", first: "192.168.7.4", count: 2 }),
      range({ name: "host", cidr: "192.168.7.9/32", first: "192.168.7.9", count: 1 }),
      range({ name: "all", cidr: "0.0.0.0/0", first: "0.0.0.1", count: 3 })
    ])
    assert.deepStrictEqual(ok.problems, [])
    assert.deepStrictEqual(ok.ranges.map((r) => [r.name, r.cidr, r.first, r.last, r.mask]), [
      ["p2p", "192.168.7.4/31", "192.168.7.4", "192.168.7.5", "255.255.255.254"],
      ["host", "192.168.7.9/32", "192.168.7.9", "192.168.7.9", "255.255.255.255"],
      ["all", "0.0.0.0/0", "0.0.0.1", "0.0.0.3", "0.0.0.0"]
    ])
    assert.strictEqual(reason({ first: "10.0.1.0" }), "first address 10.0.1.0 is the network address of 10.0.1.0/24")
    assert.strictEqual(reason({ first: "10.0.1.250", count: 6 }), "the last address, 10.0.1.255, is the broadcast address of 10.0.1.0/24")
  })

  it("says why a range is not usable", () => {
    assert.strictEqual(reason({ first: "10.0.2.1" }), "first address 10.0.2.1 is outside 10.0.1.0/24")
    assert.strictEqual(reason({ first: "10.0.1.200", count: 100 }), "100 addresses from 10.0.1.200 go past the end of 10.0.1.0/24")
    assert.strictEqual(reason({ cidr: "10.0.1.0/33" }), "cidr \"10.0.1.0/33\" is not an IPv4 network A.B.C.D/N")
    assert.strictEqual(reason({ cidr: "10.0.1.0" }), "cidr \"10.0.1.0\" is not an IPv4 network A.B.C.D/N")
    assert.strictEqual(reason({ cidr: "10.0.01.0/24" }), "cidr \"10.0.01.0/24\" is not an IPv4 network A.B.C.D/N")
    assert.strictEqual(reason({ first: "10.0.1.256" }), "first \"10.0.1.256\" is not an IPv4 address")
    assert.strictEqual(reason({ cidr: "fd00::/64", first: "fd00::1" }), "IPv6 ranges are not supported")
    assert.strictEqual(reason({ count: 0 }), "count 0 is not an integer from 1")
    assert.strictEqual(reason({ count: 1.5 }), "count 1.5 is not an integer from 1")
    assert.strictEqual(reason({ routed: "yes" }), "routed is not true or false")
    assert.strictEqual(reason({ gateway: "router" }), "gateway \"router\" is not an IPv4 address")
    assert.strictEqual(reason({ name: "" }), "name is not a non-empty string")
    assert.deepStrictEqual(Addresses.parse([range(), 7, range({ name: "x", first: "1.2.3.4" })]).problems, [
      { name: undefined, reason: "not an object" },
      { name: "x", reason: "first address 1.2.3.4 is outside 10.0.1.0/24" }
    ])
    assert.deepStrictEqual(Addresses.parse({ lab: range() }).problems, [{ name: undefined, reason: "addresses is not a list" }])
    assert.deepStrictEqual(Addresses.parse(undefined), { ranges: [], problems: [] })
  })

  it("a table: upper-case header, columns padded to their widest cell, optional header", () => {
    const { ranges } = Addresses.parse([range(), range({ name: "p2p", cidr: "192.168.7.4/31", first: "192.168.7.4", count: 2, routed: false, gateway: null })])
    assert.strictEqual(
      Addresses.table(ranges, Addresses.DEFAULT_COLUMNS, true),
      [
        "NAME  CIDR            FIRST        LAST         COUNT  ROUTED  GATEWAY",
        "lab   10.0.1.0/24     10.0.1.10    10.0.1.14    5      yes     10.0.1.1",
        "p2p   192.168.7.4/31  192.168.7.4  192.168.7.5  2      no      -",
        ""
      ].join("\n")
    )
    assert.strictEqual(Addresses.table(ranges, ["first", "family"], false), "10.0.1.10    inet\n192.168.7.4  inet\n")
    assert.strictEqual(Addresses.table([], ["name"], false), "")
  })
})
