/**
 * Wire compatibility with buildomat: the OpenAPI document generated from `BuildomatApi` against
 * buildomat's published document (a copy in fixtures/, from shared/reference/). Every difference
 * must be listed, with its reason, in the table of docs/compatibility.md, and every row of that
 * table must still be a difference, so that the document and the API cannot drift apart.
 * Additions under `/ext/` are allowed.
 */
import { Api } from "@buildomat/core"
import { OpenApi } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import * as NodeFs from "node:fs"
import { type Difference, diff, listed, operations } from "./openapi-diff.js"

const theirs = JSON.parse(NodeFs.readFileSync(new URL("./fixtures/buildomat-openapi.json", import.meta.url), "utf8"))
const doc = NodeFs.readFileSync(new URL("../../../docs/compatibility.md", import.meta.url), "utf8")
const ADDITIONS = ["/ext/"]

const key = (d: Pick<Difference, "operation" | "where">) => `${d.operation} :: ${d.where}`
const show = (d: Difference) => `  ${d.operation} | ${d.where} | ours: ${d.ours} | theirs: ${d.theirs}`

describe("wire compatibility with buildomat's OpenAPI document", () => {
  it("every difference is listed in docs/compatibility.md with its reason, and nothing else is", () => {
    const ours = OpenApi.fromApi(Api.BuildomatApi)
    const found = diff(ours, theirs, ADDITIONS)
    const rows = listed(doc)
    const byKey = new Map(rows.map((r) => [key(r), r]))
    assert.strictEqual(byKey.size, rows.length, "a difference is listed twice in docs/compatibility.md")

    const unlisted = found.filter((d) => !byKey.has(key(d)))
    const changed = found.filter((d) => {
      const r = byKey.get(key(d))
      return r !== undefined && (r.ours !== d.ours || r.theirs !== d.theirs)
    })
    const foundKeys = new Set(found.map(key))
    const stale = rows.filter((r) => !foundKeys.has(key(r)))
    const noReason = rows.filter((r) => r.reason.length < 8)
    const report = [
      unlisted.length > 0 ? `Differences not listed in docs/compatibility.md (operation | where | ours | theirs):\n${unlisted.map(show).join("\n")}` : "",
      changed.length > 0 ? `Listed differences whose values changed:\n${changed.map((d) => `${show(d)}  (listed: ours ${byKey.get(key(d))!.ours}, theirs ${byKey.get(key(d))!.theirs})`).join("\n")}` : "",
      stale.length > 0 ? `Listed in docs/compatibility.md but no longer a difference (remove the rows):\n${stale.map((r) => `  line ${r.line}: ${show(r)}`).join("\n")}` : "",
      noReason.length > 0 ? `Rows without a reason:\n${noReason.map((r) => `  line ${r.line}: ${show(r)}`).join("\n")}` : ""
    ].filter((s) => s !== "").join("\n\n")
    assert.strictEqual(report, "", `\n${report}\n`)
  })

  it("the fixture is buildomat's published document", () => {
    assert.strictEqual(theirs.info.title, "Buildomat")
    const ops = operations(theirs)
    assert.strictEqual(ops.size, 74)
    assert.isTrue(ops.has("GET /0/job/{job}") && ops.has("POST /1/worker/job/{job}/append"))
  })

  it("the comparison sees each kind of difference (it is not vacuous)", () => {
    const copy = JSON.parse(JSON.stringify(theirs))
    const s = copy.components.schemas
    delete s.Job.properties.target_real
    s.JobEvent.properties.seq = { type: "string" }
    s.JobSubmit.required = [...s.JobSubmit.required, "tags"]
    copy.paths["/0/jobs/{job}/events"].get.parameters = copy.paths["/0/jobs/{job}/events"].get.parameters.filter((p: any) => p.name !== "minseq")
    copy.paths["/0/jobs"].post.responses = { "200": copy.paths["/0/jobs"].post.responses["201"], "4XX": {}, "5XX": {} }
    copy.paths["/0/quota"].get.responses = { "200": copy.paths["/0/quota"].get.responses["200"], "5XX": {} }
    copy.paths["/0/jobs/{job}/chunk"].post.requestBody.content = { "application/json": { schema: { type: "object" } } }
    copy.paths["/ext/0/thing"] = { get: { responses: { "200": { description: "" } } } }
    const d = diff(theirs, copy, ["/ext/"]).map((x) => `${x.operation} | ${x.where} | ${x.ours} | ${x.theirs}`)
    assert.deepStrictEqual(d, [
      "GET /0/admin/jobs | response field [].target_real | string | absent",
      "GET /0/admin/jobs/{job} | response field target_real | string | absent",
      "GET /0/job/{job} | response field target_real | string | absent",
      "GET /0/jobs/{job}/events | query parameter minseq | optional | absent",
      "GET /0/jobs/{job}/events | response field [].seq | integer | string",
      "GET /ext/0/thing | operation | absent | present",
      "POST /0/jobs | request field tags | map<string> (optional) | map<string>",
      "POST /0/jobs | success status | 201 | 200",
      "POST /0/jobs/{job}/chunk | request media type | application/octet-stream | application/json",
      "POST /0/jobs/{job}/chunk | request body | none | object"
    ])
    // The error family: a side that declares 4xx errors against one that declares none is not a
    // difference (theirs declared none); ours declaring none where theirs has 4XX is.
    const noErrors = JSON.parse(JSON.stringify(theirs))
    noErrors.paths["/0/quota"].get.responses = { "200": noErrors.paths["/0/quota"].get.responses["200"] }
    assert.deepStrictEqual(diff(noErrors, theirs, []).map((x) => `${x.where} | ${x.ours} | ${x.theirs}`), ["error status | none | 4xx"])
  })
})
