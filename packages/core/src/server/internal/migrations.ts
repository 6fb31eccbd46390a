/**
 * The numbered schema migrations, applied in order by `SqliteMigrator` and recorded in
 * `effect_sql_migrations`; one file each under `migrations/`. Never edit a migration that has
 * shipped: add the next one. Booleans are INTEGER 0/1 and timestamps RFC 3339 TEXT, as
 * buildomat's schema.
 */
import m0001 from "./migrations/0001_initial.js"
import m0002 from "./migrations/0002_agent.js"
import m0003 from "./migrations/0003_interim_job_store.js"

/** The migrations, keyed `<number>_<name>` as `SqliteMigrator.fromRecord` expects. */
export const migrations = {
  "0001_initial": m0001,
  "0002_agent": m0002,
  "0003_interim_job_store": m0003
}
