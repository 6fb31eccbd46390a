/**
 * Compares two OpenAPI documents the way a client of the API sees them: operations (method and
 * path), path and query parameters, request body media types and fields, the success status and
 * response fields, and the error status family. Types are reduced to what JSON carries
 * (`string`, `integer`, `number`, `boolean`, `array<T>`, `map<T>`, `object`, `any`; a trailing
 * `?` marks null allowed), so that OpenAPI 3.0 (`nullable`, Dropshot) and 3.1 (`anyOf` with
 * `null`, Effect) spellings compare equal, and formats and bounds are ignored.
 */

type Json = any

/** One difference: the operation, where in it, and what each side has. */
export interface Difference {
  readonly operation: string
  readonly where: string
  readonly ours: string
  readonly theirs: string
}

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"] as const

const resolve = (doc: Json, s: Json): Json => {
  let cur = s
  for (let i = 0; i < 32 && cur && typeof cur.$ref === "string"; i++) {
    const path = cur.$ref.replace(/^#\//, "").split("/")
    cur = path.reduce((o: Json, k: string) => o?.[k], doc)
  }
  return cur ?? {}
}

interface Shape {
  readonly type: string
  readonly nullable: boolean
  readonly schema: Json
}

/** Reduces a schema to its JSON type, following refs, single-element allOf, and null unions. */
const shape = (doc: Json, s0: Json): Shape => {
  let s = resolve(doc, s0)
  let nullable = s?.nullable === true
  for (let i = 0; i < 8; i++) {
    if (Array.isArray(s.allOf) && s.allOf.length === 1) {
      nullable ||= s.nullable === true
      s = resolve(doc, s.allOf[0])
      continue
    }
    const union = s.anyOf ?? s.oneOf
    if (Array.isArray(union)) {
      const rest = union.filter((u: Json) => resolve(doc, u).type !== "null")
      if (rest.length < union.length) nullable = true
      if (rest.length === 1) {
        s = resolve(doc, rest[0])
        nullable ||= s.nullable === true
        continue
      }
      // A union of objects (for example an error body): treat as an object with every field.
      return { type: "union", nullable, schema: s }
    }
    break
  }
  let type: string
  if (Array.isArray(s.type)) {
    if (s.type.includes("null")) nullable = true
    type = s.type.filter((t: string) => t !== "null")[0] ?? "any"
  } else {
    type = s.type ?? (s.properties ? "object" : "any")
  }
  if (type === "array") type = `array<${shape(doc, s.items ?? {}).type}>`
  else if (type === "object" && s.additionalProperties && typeof s.additionalProperties === "object" && Object.keys(s.properties ?? {}).length === 0) {
    type = `map<${shape(doc, s.additionalProperties).type}>`
  }
  return { type, nullable, schema: s }
}

const render = (sh: Shape) => `${sh.type}${sh.nullable ? "?" : ""}`

/**
 * Field paths of a body, each with its type and whether it is required: `name`, `tasks[].name`,
 * `depends{}.prior_job` (`[]` an array's items, `{}` a map's values).
 */
const fields = (doc: Json, s0: Json, path = "", depth = 0, out = new Map<string, string>()) => {
  if (depth > 6) return out
  const sh = shape(doc, s0)
  const s = sh.schema
  if (sh.type.startsWith("array<")) return fields(doc, s.items ?? {}, `${path}[]`, depth + 1, out)
  if (sh.type.startsWith("map<")) return fields(doc, s.additionalProperties, `${path}{}`, depth + 1, out)
  if (sh.type !== "object") return out
  const required = new Set<string>(s.required ?? [])
  for (const [name, p] of Object.entries<Json>(s.properties ?? {})) {
    const child = path === "" ? name : `${path}.${name}`
    out.set(child, `${render(shape(doc, p))}${required.has(name) ? "" : " (optional)"}`)
    fields(doc, p, child, depth + 1, out)
  }
  return out
}

/** The ancestors of a field path: `a.b[].c` has `a` and `a.b`. */
const ancestors = (path: string) => {
  const out: Array<string> = []
  const re = /[.[{]/g
  let m: RegExpExecArray | null
  while ((m = re.exec(path)) !== null) out.push(path.slice(0, m.index))
  return out.filter((p) => p !== "")
}

interface Operation {
  readonly path: Map<string, string>
  readonly query: Map<string, string>
  readonly requestTypes: string
  readonly request: Map<string, string>
  readonly requestRoot: string
  readonly success: string
  readonly response: Map<string, string>
  readonly responseRoot: string
  readonly errors: string
}

const bodyOf = (doc: Json, content: Json) => {
  const json = content?.["application/json"]?.schema
  if (json === undefined) return { root: "none", fields: new Map<string, string>() }
  return { root: render(shape(doc, json)), fields: fields(doc, json) }
}

const operation = (doc: Json, op: Json): Operation => {
  const path = new Map<string, string>()
  const query = new Map<string, string>()
  for (const p0 of op.parameters ?? []) {
    const p = resolve(doc, p0)
    if (p.in === "path") path.set(p.name, "required")
    if (p.in === "query") query.set(p.name, p.required ? "required" : "optional")
  }
  const content = op.requestBody?.content ?? {}
  const req = bodyOf(doc, content)
  const codes = Object.keys(op.responses ?? {})
  const ok = codes.filter((c) => /^2\d\d$/.test(c))
  const success = ok.length > 0 ? ok.join(",") : codes.includes("default") ? "default" : "none"
  const okResponse = resolve(doc, op.responses?.[ok[0] ?? "default"] ?? {})
  const res = bodyOf(doc, okResponse.content)
  const errorCodes = codes.filter((c) => /^[45]/.test(c))
  const families = [...new Set(errorCodes.map((c) => `${c[0]}xx`))].sort()
  return {
    path,
    query,
    requestTypes: Object.keys(content).sort().join(",") || "none",
    request: req.fields,
    requestRoot: req.root,
    success,
    response: res.fields,
    responseRoot: okResponse.content === undefined ? "none" : res.root,
    errors: families.filter((f) => f === "4xx").join(",") || "none"
  }
}

/** The operations of a document, keyed `METHOD /path`. */
export const operations = (doc: Json): Map<string, Operation> => {
  const out = new Map<string, Operation>()
  for (const [p, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const m of METHODS) {
      if (item[m] !== undefined) out.set(`${m.toUpperCase()} ${p}`, operation(doc, item[m]))
    }
  }
  return out
}

const compareMaps = (
  out: Array<Difference>,
  op: string,
  label: string,
  ours: Map<string, string>,
  theirs: Map<string, string>
) => {
  // Below a field one side types as `any`, the other side's detail is not a difference of its own.
  const untyped = (k: string) => ancestors(k).some((p) => ours.get(p)?.startsWith("any") || theirs.get(p)?.startsWith("any"))
  for (const k of [...new Set([...ours.keys(), ...theirs.keys()])].sort()) {
    if (untyped(k)) continue
    const a = ours.get(k) ?? "absent"
    const b = theirs.get(k) ?? "absent"
    if (a !== b) out.push({ operation: op, where: `${label} ${k}`, ours: a, theirs: b })
  }
}

/**
 * Every difference between `ours` and `theirs`. Operations only we have are differences too,
 * except under `allowedPrefixes` (our additions).
 */
export const diff = (ours: Json, theirs: Json, allowedPrefixes: ReadonlyArray<string>): Array<Difference> => {
  const a = operations(ours)
  const b = operations(theirs)
  const out: Array<Difference> = []
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const o = a.get(key)
    const t = b.get(key)
    if (o === undefined) {
      out.push({ operation: key, where: "operation", ours: "absent", theirs: "present" })
      continue
    }
    if (t === undefined) {
      const path = key.slice(key.indexOf(" ") + 1)
      if (!allowedPrefixes.some((p) => path.startsWith(p))) out.push({ operation: key, where: "operation", ours: "present", theirs: "absent" })
      continue
    }
    compareMaps(out, key, "path parameter", o.path, t.path)
    compareMaps(out, key, "query parameter", o.query, t.query)
    if (o.requestTypes !== t.requestTypes) out.push({ operation: key, where: "request media type", ours: o.requestTypes, theirs: t.requestTypes })
    if (o.requestRoot !== t.requestRoot) out.push({ operation: key, where: "request body", ours: o.requestRoot, theirs: t.requestRoot })
    compareMaps(out, key, "request field", o.request, t.request)
    if (t.success !== "default" && o.success !== t.success) {
      out.push({ operation: key, where: "success status", ours: o.success, theirs: t.success })
    }
    if (t.success !== "default" || t.responseRoot !== "none") {
      if (o.responseRoot !== t.responseRoot) out.push({ operation: key, where: "response body", ours: o.responseRoot, theirs: t.responseRoot })
      compareMaps(out, key, "response field", o.response, t.response)
    }
    if (o.errors !== t.errors && t.errors !== "none") out.push({ operation: key, where: "error status", ours: o.errors, theirs: t.errors })
  }
  return out
}

/**
 * The differences listed in a markdown document: the rows of the table between
 * `<!-- wire-differences:begin -->` and `<!-- wire-differences:end -->`, with columns
 * operation, where, ours, theirs, reason (backticks around cells are ignored).
 */
export const listed = (markdown: string): Array<Difference & { readonly reason: string; readonly line: number }> => {
  const lines = markdown.split("\n")
  const begin = lines.findIndex((l) => l.includes("<!-- wire-differences:begin -->"))
  const end = lines.findIndex((l) => l.includes("<!-- wire-differences:end -->"))
  if (begin < 0 || end < begin) throw new Error("the wire-differences markers are missing")
  const out: Array<Difference & { reason: string; line: number }> = []
  for (let i = begin + 1; i < end; i++) {
    const l = lines[i]!.trim()
    if (!l.startsWith("|")) continue
    const cells = l.slice(1, l.endsWith("|") ? -1 : undefined).split("|").map((c) => c.trim().replace(/^`(.*)`$/, "$1"))
    if (cells[0] === "operation" || /^-+$/.test(cells[0] ?? "")) continue
    if (cells.length !== 5) throw new Error(`docs line ${i + 1}: expected 5 cells, got ${cells.length}: ${l}`)
    const [operation, where, ours, theirs, reason] = cells as [string, string, string, string, string]
    out.push({ operation, where, ours, theirs, reason, line: i + 1 })
  }
  return out
}
