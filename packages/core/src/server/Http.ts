/**
 * The HTTP side of the server: handler layers for each group of `BuildomatApi`, authentication
 * middleware, byte ranges, and the mapping of unreadable bodies to 4xx errors.
 *
 * @since 0.1.0
 */
export * from "./http/Auth.js"
export * from "./http/Body.js"
export * from "./http/Errors.js"
export * from "./http/Jobs.js"
export * from "./http/Ranges.js"
export * from "./http/Users.js"
export * from "./http/Worker.js"
export * from "./http/WorkerDiagnostics.js"
export * from "./http/WorkerExt.js"
export * from "./http/WorkerJobStoreInterim.js"
