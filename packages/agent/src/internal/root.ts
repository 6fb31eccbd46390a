/**
 * Root mapping. A job sees absolute paths (`/work`, `/input`, output rules like `/out/*.tgz`);
 * on a dedicated worker they are real. The local provider runs many agents on one machine, so
 * each agent maps the job's `/` onto its own scratch directory (`--root`). Every path the agent
 * touches on the job's behalf goes through here; paths reported to the server stay job-visible.
 *
 * @internal
 */
import * as path from "node:path"

/** Normalises a job-visible path to an absolute one; `..` cannot climb above `/`. */
export const normalise = (jobPath: string): string => path.posix.resolve("/", jobPath)

/** The real path of a job-visible path under `root` (an absolute, normalised directory). */
export const toReal = (root: string, jobPath: string): string => path.join(root, normalise(jobPath))

/** Whether the job's `/` is mapped somewhere other than the real `/`. */
export const isMapped = (root: string): boolean => path.resolve(root) !== "/"
