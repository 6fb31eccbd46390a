/**
 * The HTTP side of the server: handler layers for each group of `BuildomatApi`, authentication
 * middleware, byte ranges, and the mapping of unreadable bodies to 4xx errors.
 *
 * @since 0.1.0
 */
export * from "./http/Admin.js"
export * from "./http/AgentFile.js"
export * from "./http/Auth.js"
export * from "./http/Body.js"
export * from "./http/Errors.js"
export * from "./http/Files.js"
export * from "./http/JobModel.js"
export * from "./http/Factory.js"
export * from "./http/Jobs.js"
export * from "./http/Ranges.js"
export * from "./http/Users.js"
export * from "./http/Worker.js"
export * from "./http/WorkerDiagnostics.js"
export * from "./http/WorkerExt.js"
