/**
 * The numbered schema migrations, applied in order by `SqliteMigrator` and recorded in
 * `effect_sql_migrations`; one file each under `migrations/`. Never edit a migration that has
 * shipped: add the next one. Booleans are INTEGER 0/1 and timestamps RFC 3339 TEXT, as
 * buildomat's schema.
 */
import m0001 from "./migrations/0001_initial.js"
import m0003 from "./migrations/0003_job_model.js"
import m0004 from "./migrations/0004_factories.js"
import m0005 from "./migrations/0005_archive.js"
import m0006 from "./migrations/0006_agent.js"

/** The migrations, keyed `<number>_<name>` as `SqliteMigrator.fromRecord` expects. */
export const migrations = {
  "0001_initial": m0001,
  "0003_job_model": m0003,
  "0004_factories": m0004,
  "0005_archive": m0005,
  "0006_agent": m0006
}
