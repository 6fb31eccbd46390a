/**
 * The numbered schema migrations of the App's database, applied in order by `SqliteMigrator`.
 * Never edit one that has shipped: add the next.
 *
 * @internal
 */
import m0001 from "./migrations/0001_initial.js"

/** Keyed `<number>_<name>`, as `SqliteMigrator.fromRecord` expects. */
export const migrations = {
  "0001_initial": m0001
}
