import { defineConfig } from "tsup"

// One self-contained ESM file that runs with plain `node` on a worker machine: every dependency
// bundled, SQLite excluded (the agent never touches it; see effect-stack.md gotcha 12).
export default defineConfig({
  entry: { "buildomat-agent": "src/bin.ts" },
  outDir: "bundle",
  format: ["esm"],
  platform: "node",
  target: "node20",
  noExternal: [/.*/],
  external: ["better-sqlite3"],
  shims: true,
  // Bundled CommonJS code calls `require`, which ESM lacks. The import is renamed because a
  // bundled module (fdir) imports `createRequire` itself.
  banner: {
    js: "import { createRequire as __bmCreateRequire } from 'node:module'; const require = __bmCreateRequire(import.meta.url);"
  },
  clean: true,
  dts: false,
  // Resolve workspace packages (@buildomat/core) to their TypeScript source.
  esbuildOptions(options) {
    options.conditions = ["@buildomat/source"]
  }
})
