import { defineConfig } from "tsup"

// One self-contained ESM file, `bundle/buildomat.js` (the package's `bin`). See
// shared/reference/effect-stack.md, gotcha 12: everything is bundled except the native addon,
// `shims` gives bundled CJS its `__filename`, and the banner gives it a `require`.
export default defineConfig({
  entry: { buildomat: "src/bin.ts" },
  outDir: "bundle",
  format: ["esm"],
  platform: "node",
  target: "node20",
  dts: false,
  clean: true,
  sourcemap: false,
  splitting: false,
  noExternal: [/.*/],
  external: ["better-sqlite3"],
  shims: true,
  banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  esbuildOptions(o) {
    o.conditions = ["@buildomat/source"]
  }
})
