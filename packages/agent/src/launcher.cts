/**
 * `buildomat-agent-cached`: runs the agent bundle (`buildomat-agent.cjs`, beside this file)
 * through a V8 code cache, so that an agent that starts often on the same machine (the local
 * provider's workers) skips parsing and compiling the bundle. Arguments and exit codes are the
 * bundle's (`buildomat-agent --help`).
 *
 * The cache lives in the directory named by `BUILDOMAT_AGENT_CODE_CACHE`; without it, this is a
 * plain `require` of the bundle. The directory must be writable only by people trusted to run
 * code as the agent, since a cache holds compiled code; a cache file owned by another user is
 * ignored. One file per bundle (path, size, mtime),
 * Node version, architecture and Node flags; V8 also checks it and rejects a mismatch, which
 * only costs the compile. A process that ran without a usable cache writes one when it exits,
 * covering every function compiled by then (temp file and rename, so concurrent agents never
 * read a half-written cache). Node 22's `module.enableCompileCache` does the same for ES
 * modules; Node 20, our floor, has only `vm.Script`'s `cachedData`.
 *
 * @since 0.1.0
 */
import crypto = require("node:crypto")
import fs = require("node:fs")
import nodeModule = require("node:module")
import path = require("node:path")
import vm = require("node:vm")

/** The environment variable that names the code cache directory. */
const CACHE_ENV = "BUILDOMAT_AGENT_CODE_CACHE"

const bundle = path.join(__dirname, "buildomat-agent.cjs")
const dir = process.env[CACHE_ENV]

if (dir === undefined || dir === "") {
  require(bundle)
} else {
  const source = fs.readFileSync(bundle, "utf8")
  const stat = fs.statSync(bundle)
  const key = crypto.createHash("sha256")
    .update(JSON.stringify([bundle, stat.size, stat.mtimeMs, process.version, process.arch, process.execArgv]))
    .digest("hex")
    .slice(0, 32)
  const file = path.join(dir, `agent-${key}.v8cache`)
  let cachedData: Buffer | undefined
  try {
    // Only a cache this user wrote: compiled code from anyone else would run as us.
    if (fs.statSync(file).uid === process.getuid?.()) cachedData = fs.readFileSync(file)
  } catch {
    // none yet
  }
  // The CommonJS wrapper, as Node's loader would add it; a `#!` line is not JavaScript there.
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${source.replace(/^#!.*/, "")}\n})`,
    { filename: bundle, ...(cachedData !== undefined ? { cachedData } : {}) }
  )
  if (cachedData === undefined || script.cachedDataRejected === true) {
    process.once("exit", () => {
      try {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
        const temp = `${file}.${process.pid}.tmp`
        fs.writeFileSync(temp, script.createCachedData(), { mode: 0o600 })
        fs.renameSync(temp, file)
      } catch {
        // A cache is only an optimisation: an unwritable directory just means compiling again.
      }
    })
  }
  const module = { exports: {} }
  script.runInThisContext()(module.exports, nodeModule.createRequire(bundle), module, bundle, path.dirname(bundle))
}
