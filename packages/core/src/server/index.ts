/**
 * `@buildomat/core/server`: the core server and its parts, each a layer you can replace.
 *
 * @since 0.1.0
 */

export * as ArchiveQueue from "./ArchiveQueue.js"
/** @since 0.1.0 */
export * as Background from "./Background.js"
/** @since 0.1.0 */
export * as ChunkCleanup from "./ChunkCleanup.js"
/** @since 0.1.0 */
export * as Config from "./Config.js"
/** @since 0.1.0 */
export * as Control from "./Control.js"
/** @since 0.1.0 */
export * as Database from "./Database.js"
/** @since 0.1.0 */
export * as EventHub from "./EventHub.js"
/** @since 0.1.0 */
export * as FactoryStore from "./FactoryStore.js"
/** @since 0.1.0 */
export * as HeapGrowth from "./HeapGrowth.js"
/** @since 0.1.0 */
export * as Http from "./Http.js"
/** @since 0.1.0 */
export * as Inputs from "./Inputs.js"
export * as FileArchive from "./FileArchive.js"
/** @since 0.1.0 */
export * as JobArchive from "./JobArchive.js"
/** @since 0.1.0 */
export * as JobStore from "./JobStore.js"
/** @since 0.1.0 */
export * as JobValues from "./JobValues.js"
/** @since 0.1.0 */
export * as ObjectStore from "./ObjectStore.js"
/** @since 0.1.0 */
export * as Provisioner from "./Provisioner.js"
/** @since 0.1.0 */
export * as Publishing from "./Publishing.js"
export * as Purge from "./Purge.js"
/** @since 0.1.0 */
export * as S3ObjectStore from "./S3ObjectStore.js"
/** @since 0.1.0 */
export * as Scheduler from "./Scheduler.js"
/** @since 0.1.0 */
export * as Server from "./Server.js"
/** @since 0.1.0 */
export * as Signals from "./Signals.js"
/** @since 0.1.0 */
export * as TargetStore from "./TargetStore.js"
/** @since 0.1.0 */
export * as Uploads from "./Uploads.js"
/** @since 0.1.0 */
export * as UserStore from "./UserStore.js"
/** @since 0.1.0 */
export * as Waiters from "./Waiters.js"
export * as WorkerAdmin from "./WorkerAdmin.js"
export * as WorkerCleanup from "./WorkerCleanup.js"
/** @since 0.1.0 */
export * as WorkerStore from "./WorkerStore.js"
/** @since 0.1.0 */
export * as Why from "./Why.js"
/** @since 0.1.0 */
export * as Testing from "./Testing.js"
