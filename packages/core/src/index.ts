/**
 * `@buildomat/core`: the contract shared by the server, the agent, the CLI and integrations:
 * ids, wire schemas, the `HttpApi` definition and its client, output rules and the worker
 * provider port. It has no SQLite in it; the server is `@buildomat/core/server`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Admin from "./Admin.js"
/** @since 0.1.0 */
export * as Api from "./Api.js"
/** @since 0.1.0 */
export * as Client from "./Client.js"
/** @since 0.1.0 */
export * as Errors from "./Errors.js"
/** @since 0.1.0 */
export * as Factories from "./Factories.js"
/** @since 0.1.0 */
export * as Factory from "./Factory.js"
/** @since 0.1.0 */
export * as Ids from "./Ids.js"
/** @since 0.1.0 */
export * as Jobs from "./Jobs.js"
/** @since 0.1.0 */
export * as JobModel from "./JobModel.js"
export * as Names from "./Names.js"
/** @since 0.1.0 */
export * as OutputRules from "./OutputRules.js"
/** @since 0.1.0 */
export * as ProcessGroup from "./ProcessGroup.js"
/** @since 0.1.0 */
export * as Schemas from "./Schemas.js"
/** @since 0.1.0 */
export * as Targets from "./Targets.js"
/** @since 0.1.0 */
export * as Users from "./Users.js"
/** @since 0.1.0 */
export * as WorkerProvider from "./WorkerProvider.js"
/** @since 0.1.0 */
export * as Workers from "./Workers.js"
