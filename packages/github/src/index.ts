/**
 * `@buildomat/github`: the buildomat GitHub App. Pushes and pull requests become core jobs from
 * the job files in the repository (`.github/buildomat/jobs/*.sh`), and their results become
 * check runs, with web pages for logs and artefacts. Start with `GitHubApp.layer` and
 * `Config.fromTable`; the operator tool is `buildomat-github-dbtool` (`DbTool`).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CheckRuns from "./CheckRuns.js"
/** @since 0.1.0 */
export * as Checks from "./Checks.js"
/** @since 0.1.0 */
export * as CloneToken from "./CloneToken.js"
/** @since 0.1.0 */
export * as Config from "./Config.js"
/** @since 0.1.0 */
export * as CoreAccess from "./CoreAccess.js"
/** @since 0.1.0 */
export * as Database from "./Database.js"
/** @since 0.1.0 */
export * as DbTool from "./DbToolCli.js"
/** @since 0.1.0 */
export * as Deliveries from "./Deliveries.js"
/** @since 0.1.0 */
export * as GitHubApi from "./GitHubApi.js"
/** @since 0.1.0 */
export * as GitHubApp from "./GitHubApp.js"
/** @since 0.1.0 */
export * as JobFile from "./JobFile.js"
/** @since 0.1.0 */
export * as Pages from "./Pages.js"
/** @since 0.1.0 */
export * as RepoConfig from "./RepoConfig.js"
/** @since 0.1.0 */
export * as Store from "./Store.js"
/** @since 0.1.0 */
export * as Tasks from "./Tasks.js"
/** @since 0.1.0 */
export * as Wakeup from "./Wakeup.js"
/** @since 0.1.0 */
export * as Webhook from "./Webhook.js"
