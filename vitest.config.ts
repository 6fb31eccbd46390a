import { defineConfig } from "vitest/config"

// Workspace imports resolve to each package's `src` through the "@buildomat/source" condition,
// so the tests run on source without a build (the agent process itself runs from its bundle).
export default defineConfig({
  resolve: { conditions: ["@buildomat/source"] },
  ssr: { resolve: { conditions: ["@buildomat/source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    setupFiles: ["./vitest.setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks"
  }
})
