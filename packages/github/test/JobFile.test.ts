/**
 * The job-file parser and set validation (buildomat's jobsh semantics), and the repository
 * policy file.
 */
import { JobFile, RepoConfig } from "@buildomat/github"
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"

const file = (front: string, body = "echo hi\n") =>
  `#!/bin/bash\n${front.split("\n").map((l) => `#:${l === "" ? "" : ` ${l}`}`).join("\n")}\n\n${body}`

const ok = (path: string, text: string) => {
  const r = JobFile.parse(path, text)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}
const err = (path: string, text: string) => {
  const r = JobFile.parse(path, text)
  if (Either.isRight(r)) throw new Error("expected an error")
  return r.left.message
}

describe("JobFile.parse", () => {
  it("reads the #: lines of the comment block after the interpreter line", () => {
    const text = `#!/bin/bash
#:
#: name = "build"
#: variety = "basic"
# an ordinary comment in the block
#: target = "helios-2.0"
#: output_rules = ["/work/out/*"]
#:
#: [dependencies.lint]
#: job = "lint"
#: extra = 1

#: not = "front matter: after the blank line"
cargo build
`
    const j = ok("jobs/build.sh", text)!
    assert.strictEqual(j.name, "build")
    assert.strictEqual(j.variety, "basic")
    assert.deepStrictEqual(j.config, { target: "helios-2.0", output_rules: ["/work/out/*"] })
    assert.deepStrictEqual(j.dependencies, { lint: { job: "lint", config: { extra: 1 } } })
    assert.strictEqual(j.content, text)
  })

  it("refuses a file without an interpreter line, and bad TOML with the file's name", () => {
    assert.match(err("a.sh", "echo hi\n"), /"a\.sh" must have an interpreter line/)
    assert.match(err("b.sh", file("name = \"x\"\nvariety = ")), /^TOML front matter in "b\.sh": .*line/)
  })

  it("skips enable = false, and refuses its misspellings", () => {
    assert.isUndefined(ok("a.sh", file("name = \"x\"\nvariety = \"basic\"\nenable = false")))
    for (const k of ["enabled", "disable", "disabled"]) {
      assert.match(err("a.sh", file(`name = "x"\nvariety = "basic"\n${k} = false`)), /use "enable" to disable a job/)
    }
  })

  it("requires a name and the basic variety", () => {
    assert.match(err("a.sh", file("variety = \"basic\"")), /missing field "name"/)
    assert.match(err("a.sh", file("name = \"x\"")), /missing field "variety"/)
    assert.match(err("a.sh", file("name = \"x\"\nvariety = \"fancy\"")), /unknown variety "fancy"/)
    assert.match(err("a.sh", file("name = \"x\"\nvariety = \"basic\"\n[dependencies.a]\nnot_job = 1")), /needs job = /)
  })
})

describe("JobFile.validateSet", () => {
  const j = (name: string, deps: Record<string, string> = {}) =>
    ok(`${name}.sh`, file(`name = "${name}"\nvariety = "basic"\n${Object.entries(deps).map(([k, v]) => `[dependencies.${k}]\njob = "${v}"`).join("\n")}`))!

  it("sorts by name and accepts up to 32 files, not 33", () => {
    const set = JobFile.validateSet([j("c"), j("a", { x: "c" }), j("b")])
    assert.deepStrictEqual(Either.getOrThrow(set).map((f) => f.name), ["a", "b", "c"])
    const many = Array.from({ length: 32 }, (_, i) => j(`j${i}`))
    assert.isTrue(Either.isRight(JobFile.validateSet(many)))
    const tooMany = JobFile.validateSet([...many, j("j32")])
    assert.match(Either.isLeft(tooMany) ? tooMany.left.message : "", /at most 32 job files, this one has 33/)
  })

  it("refuses duplicate names, missing dependencies and cycles", () => {
    const dup = JobFile.validateSet([j("a"), j("a")])
    assert.match(Either.isLeft(dup) ? dup.left.message : "", /job name "a" is used in more than one file/)
    const missing = JobFile.validateSet([j("a", { x: "nope" })])
    assert.match(Either.isLeft(missing) ? missing.left.message : "", /depends on job "nope" that is not present/)
    const cycle = JobFile.validateSet([j("a", { x: "b" }), j("b", { y: "c" }), j("c", { z: "a" })])
    assert.match(Either.isLeft(cycle) ? cycle.left.message : "", /creates a dependency cycle: a -> b -> c -> a/)
    const self = JobFile.validateSet([j("a", { x: "a" })])
    assert.match(Either.isLeft(self) ? self.left.message : "", /cycle: a -> a/)
  })
})

describe("JobFile.decodeBasic", () => {
  it("fills defaults and names an unknown key", () => {
    assert.deepStrictEqual(Either.getOrThrow(JobFile.decodeBasic({})), {
      target: "default",
      output_rules: [],
      access_repos: [],
      publish: [],
      skip_clone: false
    })
    const e = JobFile.decodeBasic({ tagret: "x" })
    assert.match(Either.isLeft(e) ? e.left : "", /^TOML front matter: unknown field "tagret", expected one of "target"/)
    const t = JobFile.decodeBasic({ skip_clone: "yes" })
    assert.match(Either.isLeft(t) ? t.left : "", /skip_clone/)
    const p = JobFile.decodeBasic({ publish: [{ from_output: "/out/a", series: "s", name: "a", extra: 1 }] })
    assert.isTrue(Either.isLeft(p))
  })

  it("reads rust-toolchain.toml", () => {
    assert.deepStrictEqual(Either.getOrThrow(JobFile.parseRustToolchain("[toolchain]\nchannel = \"1.80\"\n")), { channel: "1.80", profile: "default" })
    assert.isTrue(Either.isLeft(JobFile.parseRustToolchain("[toolchain]\npath = \"/x\"\n")))
    assert.isTrue(Either.isLeft(JobFile.parseRustToolchain("channel = \"x\"\n")))
  })
})

describe("RepoConfig", () => {
  it("defaults to disabled and org_only, and ignores other keys", () => {
    assert.deepStrictEqual(Either.getOrThrow(RepoConfig.parse("")), { enable: false, org_only: true, allow_users: [] })
    assert.deepStrictEqual(Either.getOrThrow(RepoConfig.parse("enable = true\norg_only = false\nallow_users = [\"dependabot[bot]\"]\nother = 1\n")), {
      enable: true,
      org_only: false,
      allow_users: ["dependabot[bot]"]
    })
    assert.isTrue(Either.isLeft(RepoConfig.parse("enable = \"yes\"")))
    assert.isTrue(Either.isLeft(RepoConfig.parse("enable = tru")))
  })
})
