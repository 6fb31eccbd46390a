#!/usr/bin/env node
/**
 * `npm run demo`: the main job, end to end. Starts the reference server (embedded SQLite, local
 * provider) as its own process, creates a user, and submits a real build with the `buildomat`
 * CLI: clone this repository, type-check and build `@buildomat/core`, pack it. The output
 * streams to the terminal; then the artefacts are downloaded (SHA-256 checked by the CLI) and
 * their sizes and digests printed. Exits 0 when the build succeeded.
 *
 * @since 0.1.0
 */
import { spawn, spawnSync } from "node:child_process"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

const here = NodePath.dirname(fileURLToPath(import.meta.url))
const repo = NodePath.resolve(here, "../../..")
const work = NodePath.join(repo, ".buildomat", "demo")
const cli = NodePath.join(repo, "packages/cli/bundle/buildomat.js")
const serverMain = NodePath.join(here, "main.js")

const say = (s: string) => process.stdout.write(`\x1b[1m==> ${s}\x1b[0m\n`)

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

const main = async () => {
  for (const f of [cli, serverMain]) {
    if (!NodeFs.existsSync(f)) throw new Error(`${f} is missing: run "npm run build" first`)
  }
  NodeFs.rmSync(work, { recursive: true, force: true })
  NodeFs.mkdirSync(work, { recursive: true })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const config = NodePath.join(work, "buildomat.toml")
  NodeFs.writeFileSync(
    config,
    `[server]\nlisten = "127.0.0.1:${port}"\ndata_dir = "data"\n\n[providers.local]\ntargets = ["default"]\nlimit = 2\n`
  )

  say(`starting the reference server (${config})`)
  const server = spawn(process.execPath, [serverMain, "-f", config], { stdio: ["ignore", "pipe", "pipe"] })
  const serverLog = NodeFs.createWriteStream(NodePath.join(work, "server.log"))
  server.stdout.pipe(serverLog)
  server.stderr.pipe(serverLog)
  server.stdout.once("data", (d: Buffer) => process.stdout.write(d))
  const stop = () => {
    if (server.exitCode === null) server.kill("SIGTERM")
  }
  process.on("exit", stop)

  const adminTokenFile = NodePath.join(work, "data", "admin.token")
  let adminToken: string | undefined
  for (let i = 0; i < 300 && adminToken === undefined; i++) {
    if (server.exitCode !== null) throw new Error(`the server exited (${server.exitCode}); see ${work}/server.log`)
    try {
      const res = await fetch(`${url}/openapi.json`)
      if (res.ok && NodeFs.existsSync(adminTokenFile)) adminToken = NodeFs.readFileSync(adminTokenFile, "utf8").trim()
    } catch {
      // not listening yet
    }
    if (adminToken === undefined) await new Promise((r) => setTimeout(r, 100))
  }
  if (adminToken === undefined) throw new Error("the server did not start within 30 s")

  say("creating user \"demo\"")
  const res = await fetch(`${url}/0/users`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "demo" })
  })
  if (res.status !== 201) throw new Error(`creating the user failed: ${res.status} ${await res.text()}`)
  const user = (await res.json()) as { token: string }
  const env = { ...process.env, BUILDOMAT_URL: url, BUILDOMAT_TOKEN: user.token, BUILDOMAT_CONFIG: NodePath.join(work, "credentials.toml") }
  const bm = (args: Array<string>, inherit = true) =>
    spawnSync(process.execPath, [cli, ...args], { env, stdio: inherit ? "inherit" : ["ignore", "pipe", "inherit"], encoding: "utf8" })

  say("submitting the build: buildomat job run -n demo-build -C examples/server/demo/build.sh ...")
  const run = bm([
    "job", "run",
    "-n", "demo-build",
    "-C", NodePath.join(here, "../demo/build.sh"),
    "-e", `REPO=${repo}`,
    "-O", "=/work/out/*.tgz",
    "-O", "/work/out/SHA256SUMS",
    "-T", "demo=true"
  ])
  const list = bm(["job", "list", "--json"], false)
  const jobs = JSON.parse(list.stdout) as Array<{ id: string; state: string }>
  const job = jobs[jobs.length - 1]
  if (job === undefined) throw new Error("the job was not found")
  say(`job ${job.id} ${job.state}`)

  const outputsRun = bm(["job", "outputs", job.id, "--json"], false)
  const outputs = JSON.parse(outputsRun.stdout) as Array<{ id: string; path: string; size: number }>
  const dest = NodePath.join(work, "artefacts")
  NodeFs.mkdirSync(dest, { recursive: true })
  say(`downloading ${outputs.length} artefact(s) to ${dest}`)
  for (const o of outputs) {
    const file = NodePath.join(dest, NodePath.basename(o.path))
    const cp = bm(["job", "copy", job.id, o.path, file])
    if (cp.status !== 0) throw new Error(`downloading ${o.path} failed`)
  }
  say("artefacts")
  for (const o of outputs) {
    const file = NodePath.join(dest, NodePath.basename(o.path))
    const bytes = NodeFs.readFileSync(file)
    const sha = Crypto.createHash("sha256").update(bytes).digest("hex")
    process.stdout.write(`  ${o.path}  ${bytes.length} bytes  sha256 ${sha}\n`)
  }
  stop()
  const ok = run.status === 0 && job.state === "completed" && outputs.some((o) => o.path.endsWith(".tgz"))
  say(ok ? "the build succeeded" : "the build FAILED")
  process.exit(ok ? 0 : 1)
}

main().catch((e) => {
  process.stderr.write(`demo: ${(e as Error).message}\n`)
  process.exit(1)
})
