/**
 * The chunk cleanup loop (buildomat §5.6), every 73 s: removes `<dataDir>/chunk/<job>/`, the
 * uploaded chunks of a job, once the job is complete or if no such job exists. Chunks of a job
 * that is still running or waiting are kept: a commit may still need them. Entries whose name is
 * not a job id are only logged.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as Ids from "../Ids.js"
import { loop } from "./Background.js"
import { ServerConfig } from "./Config.js"

/**
 * How often the loop runs (buildomat: 73 s).
 *
 * @since 0.1.0
 * @category constants
 */
export const INTERVAL = Duration.seconds(73)

/**
 * One pass. Returns the job ids whose chunk directories were removed.
 *
 * @since 0.1.0
 * @category loops
 */
export const cleanChunksOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* ServerConfig
  const root = NodePath.join(config.dataDir, "chunk")
  const entries = yield* Effect.promise(() =>
    NodeFs.promises.readdir(root, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return [] as Array<NodeFs.Dirent>
      throw e
    })
  )
  const removed: Array<string> = []
  for (const e of entries) {
    if (!e.isDirectory() || !Ids.isUlid(e.name)) {
      yield* Effect.logWarning(`unexpected entry in ${root}: ${JSON.stringify(e.name)}`)
      continue
    }
    const [j] = yield* sql<{ complete: number }>`SELECT complete FROM job WHERE id = ${e.name.toUpperCase()}`
    if (j !== undefined && !j.complete) continue
    yield* Effect.promise(() => NodeFs.promises.rm(NodePath.join(root, e.name), { recursive: true, force: true }))
    yield* Effect.logInfo(`removed the chunks of ${j === undefined ? "unknown" : "completed"} job ${e.name}`)
    removed.push(e.name)
  }
  return removed
}).pipe(Effect.orDie, Effect.withSpan("ChunkCleanup.cleanChunksOnce"))

/**
 * The loop: a pass at start, then every `INTERVAL`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.scopedDiscard(loop("chunk cleanup", cleanChunksOnce, INTERVAL))
