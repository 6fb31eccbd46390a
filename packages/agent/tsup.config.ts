import { defineConfig } from "tsup"

// One self-contained CommonJS file that runs with plain `node` on a worker machine: every
// dependency bundled, SQLite excluded (the agent never touches it; see effect-stack.md gotcha 12).
// CommonJS rather than ESM so that `buildomat-agent-cached` (the second entry, a few lines) can
// compile it through a V8 code cache; Node 20 has no code cache for ES modules. `bmat` is also
// built on its own, small, for tasks that call it often.
export default defineConfig({
  entry: { "buildomat-agent": "src/bin.ts", "buildomat-agent-cached": "src/launcher.cts", bmat: "src/bmat-bin.ts" },
  outDir: "bundle",
  format: ["cjs"],
  platform: "node",
  target: "node20",
  noExternal: [/.*/],
  external: ["better-sqlite3"],
  // `import.meta.url` in CommonJS.
  shims: true,
  splitting: false,
  clean: true,
  dts: false,
  // Resolve workspace packages (@buildomat/core) to their TypeScript source.
  esbuildOptions(options) {
    options.conditions = ["@buildomat/source"]
  }
})
