#!/usr/bin/env node
/**
 * `bmat` on its own (`bundle/bmat.cjs`): a few kilobytes that start in a fraction of the agent
 * bundle's time, since a task may call `bmat` many times. The agent's `bmat` wrapper runs it when
 * it sits beside the agent bundle, and the whole bundle in `bmat` mode otherwise (a machine that
 * fetched only the bundle). Arguments as `bmat --help` shows; a leading `bmat` is skipped.
 *
 * @since 0.1.0
 */
import * as Bmat from "./internal/bmat.js"

const argv = process.argv.slice(2)
Bmat.run(argv[0] === "bmat" ? argv.slice(1) : argv)
