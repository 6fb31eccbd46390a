/**
 * Checks requests against GitHub's published OpenAPI description (`@octokit/openapi`,
 * api.github.com): the path and method must exist, path and query parameters must be known and
 * of the right type, required ones present, and a JSON body must match the request schema
 * (types, enums, required fields, lengths, anyOf/oneOf/allOf, no unknown fields where the
 * schema closes the object). Also that a response status is one the operation documents.
 */
import * as NodeFs from "node:fs"
import { createRequire } from "node:module"

type Json = any

interface Route {
  readonly template: string
  readonly regex: RegExp
  readonly names: ReadonlyArray<string>
  readonly literal: number
  readonly item: Json
}

let cached: { spec: Json; routes: Array<Route> } | undefined

const load = () => {
  if (cached !== undefined) return cached
  const require = createRequire(import.meta.url)
  const file = require.resolve("@octokit/openapi/generated/api.github.com.json")
  const spec = JSON.parse(NodeFs.readFileSync(file, "utf8"))
  const routes: Array<Route> = []
  for (const [template, item] of Object.entries<Json>(spec.paths)) {
    const names: Array<string> = []
    let literal = 0
    const multi = new Set<string>()
    for (const op of Object.values<Json>(item)) {
      for (const p of op?.parameters ?? []) {
        const r = resolve(spec, p)
        if (r?.in === "path" && r["x-multi-segment"]) multi.add(r.name)
      }
    }
    const source = template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{([^}]+)\}/g, (_, n: string) => {
      names.push(n)
      return multi.has(n) ? "(.+)" : "([^/]+)"
    })
    literal = template.replace(/\{[^}]+\}/g, "").length
    routes.push({ template, regex: new RegExp(`^${source}$`), names, literal, item })
  }
  // The most literal template wins (`/repos/{o}/{r}/check-runs` before `/repos/{o}/{r}/{x}`).
  routes.sort((a, b) => b.literal - a.literal)
  cached = { spec, routes }
  return cached
}

const resolve = (spec: Json, node: Json): Json => {
  let n = node
  for (let i = 0; n && typeof n === "object" && typeof n.$ref === "string" && i < 20; i++) {
    const path = n.$ref.replace(/^#\//, "").split("/")
    n = path.reduce((o: Json, k: string) => o?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], spec)
  }
  return n
}

const typeOf = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v

/** Validates a value against a schema; returns the problems. */
const validate = (spec: Json, schema0: Json, value: unknown, at: string, out: Array<string>, depth = 0): void => {
  if (depth > 30) return
  const schema = resolve(spec, schema0)
  if (schema === undefined || schema === null || typeof schema !== "object") return
  if (Array.isArray(schema.allOf)) for (const s of schema.allOf) validate(spec, s, value, at, out, depth + 1)
  for (const key of ["anyOf", "oneOf"] as const) {
    if (Array.isArray(schema[key])) {
      const ok = schema[key].some((s: Json) => {
        const sub: Array<string> = []
        validate(spec, s, value, at, sub, depth + 1)
        return sub.length === 0
      })
      if (!ok) out.push(`${at}: matches none of the ${key} alternatives`)
    }
  }
  if (value === null) {
    if (schema.nullable === true || (Array.isArray(schema.type) && schema.type.includes("null")) || schema.type === undefined) return
    out.push(`${at}: is null`)
    return
  }
  const types: Array<string> = Array.isArray(schema.type) ? schema.type : schema.type !== undefined ? [schema.type] : []
  const t = typeOf(value)
  if (types.length > 0 && !types.includes(t) && !(t === "integer" && types.includes("number"))) {
    out.push(`${at}: expected ${types.join("|")}, got ${t}`)
    return
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`)
  if (typeof value === "string" && typeof schema.maxLength === "number" && value.length > schema.maxLength) {
    out.push(`${at}: longer than ${schema.maxLength}`)
  }
  if (Array.isArray(value)) {
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) out.push(`${at}: more than ${schema.maxItems} items`)
    if (schema.items !== undefined) value.forEach((v, i) => validate(spec, schema.items, v, `${at}[${i}]`, out, depth + 1))
  }
  if (t === "object") {
    const o = value as Record<string, unknown>
    for (const r of schema.required ?? []) if (!(r in o)) out.push(`${at}: missing required field ${r}`)
    const props = schema.properties ?? {}
    for (const [k, v] of Object.entries(o)) {
      if (k in props) validate(spec, props[k], v, `${at}.${k}`, out, depth + 1)
      else if (schema.additionalProperties === false) out.push(`${at}: unknown field ${k}`)
      else if (typeof schema.additionalProperties === "object") validate(spec, schema.additionalProperties, v, `${at}.${k}`, out, depth + 1)
    }
  }
}

/** The operation a request maps to, with its path parameters. */
export const match = (method: string, path: string) => {
  const { routes } = load()
  for (const r of routes) {
    const m = r.regex.exec(path)
    if (m === null) continue
    const op = r.item[method.toLowerCase()]
    if (op === undefined) continue
    const params: Record<string, string> = {}
    r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)))
    return { template: r.template, op, params, pathItem: r.item }
  }
  return undefined
}

/**
 * The ways a request differs from GitHub's description (empty when it conforms). `query` is the
 * parsed query string, `body` the parsed JSON body (undefined when there is none).
 */
export const checkRequest = (method: string, path: string, query: URLSearchParams, body: unknown): Array<string> => {
  const { spec } = load()
  const m = match(method, path)
  if (m === undefined) return [`${method} ${path}: no such operation in GitHub's REST API`]
  const out: Array<string> = []
  const where = `${method} ${m.template}`
  const params = [...(m.pathItem.parameters ?? []), ...(m.op.parameters ?? [])].map((p: Json) => resolve(spec, p))
  const known = new Set<string>()
  for (const p of params) {
    if (p.in === "query") {
      known.add(p.name)
      const v = query.get(p.name)
      if (v === null) {
        if (p.required) out.push(`${where}: missing required query parameter ${p.name}`)
        continue
      }
      const s = resolve(spec, p.schema)
      if (s?.type === "integer" && !/^-?\d+$/.test(v)) out.push(`${where}: query ${p.name}=${v} is not an integer`)
      if (s?.type === "boolean" && v !== "true" && v !== "false") out.push(`${where}: query ${p.name}=${v} is not a boolean`)
      if (Array.isArray(s?.enum) && !s.enum.includes(v)) out.push(`${where}: query ${p.name}=${v} is not one of ${JSON.stringify(s.enum)}`)
    }
    if (p.in === "path") {
      const s = resolve(spec, p.schema)
      const v = m.params[p.name]
      if (v !== undefined && s?.type === "integer" && !/^\d+$/.test(v)) out.push(`${where}: path ${p.name}=${v} is not an integer`)
    }
  }
  for (const k of query.keys()) if (!known.has(k)) out.push(`${where}: unknown query parameter ${k}`)
  const rb = resolve(spec, m.op.requestBody)
  if (rb === undefined) {
    if (body !== undefined && method !== "GET") out.push(`${where}: takes no body`)
  } else {
    const schema = rb.content?.["application/json"]?.schema
    if (body === undefined) {
      if (rb.required) out.push(`${where}: a JSON body is required`)
    } else if (schema !== undefined) {
      validate(spec, schema, body, "body", out)
      out.forEach((v, i) => (out[i] = v.startsWith("body") ? `${where}: ${v}` : v))
    }
  }
  return out
}

/** Whether an answer's status is one the operation documents. */
export const checkStatus = (method: string, path: string, status: number): Array<string> => {
  const m = match(method, path)
  if (m === undefined) return []
  const codes = Object.keys(m.op.responses ?? {})
  return codes.includes(String(status)) || codes.includes("default") ? [] : [`${method} ${m.template}: answered ${status}, which GitHub does not document (${codes.join(", ")})`]
}
