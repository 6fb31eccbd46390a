/**
 * The core tasks of a `basic` job (buildomat's `jobsh::variety::basic::TasksBuilder`,
 * buildomat-github.md §4.3): `setup`, optionally `rust-toolchain`, `authentication`,
 * `clone repository` (unless `skip_clone`), then `build`, which is the job file itself.
 *
 * The GitHub token never appears in a task definition or its environment (both are visible in
 * core's job view): the `authentication` task fetches it when the job runs (see `CloneToken`)
 * into `~/.buildomat/github-token` and `~/.netrc` (mode 0600), and installs the helper
 * `~/.buildomat/bin/github-token`, which prints the token and replaces it when it is about to
 * expire. The clone URL template's `{token}` is filled in by the clone script at run time, and
 * the token is removed from the `origin` remote afterwards.
 *
 * @since 0.1.0
 */
import type { Jobs } from "@buildomat/core"
import type { TokenDelivery, WorkerSetup } from "./Config.js"

/**
 * The uid and gid of the `build` user on ephemeral workers (buildomat).
 *
 * @since 0.1.0
 * @category constants
 */
export const BUILD_UID = 12345

/**
 * What the task list is made from.
 *
 * - `owner`/`repo`: the (base) repository, `GITHUB_REPOSITORY`;
 * - `headSha`: the commit under test; `headBranch` the branch, for suites made from a push;
 * - `setup`: the kind of worker (`WorkerSetup`);
 * - `cloneUrl`: the template, with `{owner}`, `{repo}`, `{token}`;
 * - `token`: how the `authentication` task gets the token: from a one-time URL (`broker`) or
 *   from core's job store (`store`);
 * - `rust`: a toolchain to install with rustup;
 * - `skipClone`: no clone, the build runs in `/work`;
 * - `script`: the job file, run as the `build` task.
 *
 * @since 0.1.0
 * @category models
 */
export interface BasicTasksInput {
  readonly owner: string
  readonly repo: string
  readonly headSha: string
  readonly headBranch: string | null
  readonly setup: WorkerSetup
  readonly cloneUrl: string
  readonly token: { readonly mode: "broker"; readonly url: string } | { readonly mode: "store" }
  readonly rust?: { readonly channel: string; readonly profile: string } | undefined
  readonly skipClone: boolean
  readonly script: string
}

/**
 * The job-store key buildomat uses for the token.
 *
 * @since 0.1.0
 * @category constants
 */
export const STORE_KEY = "GITHUB_TOKEN"

const SETUP_EPHEMERAL = `#!/bin/bash
#
# Prepare a fresh worker: the "build" user (uid/gid 12345) that every later task runs as, with
# password-less sudo (and pfexec/ptime shims on Linux), and the /work directory.
#
set -o errexit
set -o pipefail
set -o xtrace

if [[ $(id -u) == ${BUILD_UID} ]]; then
	# Already the build user (a re-used image): check what later tasks need.
	for d in "$HOME" /work; do
		[[ -w $d ]] || { echo "$d is not writable" >&2; exit 1; }
	done
	exit 0
fi

case "$(uname -s)" in
SunOS)
	groupadd -g ${BUILD_UID} build
	useradd -u ${BUILD_UID} -g build -d /home/build -s /bin/bash \\
	    -c 'build' -P 'Primary Administrator' build
	zfs create -o mountpoint=/work rpool/work || mkdir -p /work
	mkdir -p /home/build
	;;
Linux)
	export DEBIAN_FRONTEND=noninteractive
	if command -v apt-get >/dev/null; then
		apt-get -qq update
		apt-get -qq install -y sysvbanner build-essential git curl
	fi
	groupadd -g ${BUILD_UID} build
	useradd -u ${BUILD_UID} -g build -m -d /home/build -s /bin/bash build
	echo 'build ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/build
	chmod 0440 /etc/sudoers.d/build
	printf '#!/bin/bash\\nexec /usr/bin/sudo "$@"\\n' > /bin/pfexec
	chmod 0755 /bin/pfexec
	printf '#!/bin/bash\\nif [[ $1 == -m ]]; then shift; exec /usr/bin/time -v "$@"; fi\\nexec /usr/bin/time "$@"\\n' > /bin/ptime
	chmod 0755 /bin/ptime
	mkdir -p /work
	;;
*)
	echo "unsupported system $(uname -s)" >&2
	exit 1
	;;
esac

mkdir -p /home/build /work
chown build:build /home/build /work
chmod 0700 /home/build /work
`

const SETUP_LOCAL = `#!/bin/bash
#
# A local worker (the local provider): tasks run as the agent's user, and the job's "/" is the
# agent's root directory, \${BUILDOMAT_ROOT}. Only /work is needed.
#
set -o errexit
set -o pipefail

mkdir -p "\${BUILDOMAT_ROOT:-}/work"
echo "local worker: tasks run as $(id -un), job root \${BUILDOMAT_ROOT:-/}"
`

const RUSTUP = `#!/bin/bash
set -o errexit
set -o pipefail

curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | /bin/bash -s - \\
    -y --no-modify-path --default-toolchain "$TC_CHANNEL" --profile "$TC_PROFILE"
export PATH="$HOME/.cargo/bin:$PATH"
rustc --version
cargo --version
`

/** The helper's body for each delivery mode; it prints the token on stdout. */
const helper = (mode: TokenDelivery) => {
  const fetch = mode === "broker"
    ? `	# A one-time URL of the GitHub App: it answers the token, its expiry (Unix seconds) and
	# the next one-time URL, and only while this job is running.
	url=$(cat "$d/github-token-next" 2>/dev/null || printf '%s' "\${BUILDOMAT_GITHUB_TOKEN_URL:-}")
	if [[ -z $url ]]; then
		echo "github-token: no token URL" >&2
		exit 1
	fi
	resp=$(curl -fsS "$url")
	{ read -r token; read -r expires; read -r next; } <<< "$resp"
	printf '%s\\n' "$next" > "$d/github-token-next"`
    : `	# Core's job store, where the GitHub App keeps a current token for this job.
	token=$(bmat store get ${STORE_KEY})
	expires=$(( $(date +%s) + 600 ))`
  return `#!/bin/bash
#
# Prints this job's GitHub token (read-only contents of the repository and its access_repos),
# getting a new one when there is none or it expires within ten minutes; keeps ~/.netrc current.
#
set -o errexit
set -o pipefail
umask 077
d="$HOME/.buildomat"
mkdir -p "$d"

exp=$(cat "$d/github-token-expires" 2>/dev/null || echo 0)
if [[ ! -s $d/github-token || $(( exp - $(date +%s) )) -lt 600 ]]; then
${fetch}
	if [[ -z $token ]]; then
		echo "github-token: no token received" >&2
		exit 1
	fi
	printf '%s\\n' "$token" > "$d/github-token"
	printf '%s\\n' "$expires" > "$d/github-token-expires"
	printf 'machine %s login x-access-token password %s\\n' \\
	    github.com "$token" api.github.com "$token" > "$HOME/.netrc"
fi
cat "$d/github-token"
`
}

const authentication = (mode: TokenDelivery) => `#!/bin/bash
#
# Get the job's GitHub token, without it ever being part of a task's definition or environment.
#
set -o errexit
set -o pipefail
umask 077

mkdir -p "$HOME/.buildomat/bin"
cat > "$HOME/.buildomat/bin/github-token" <<'BUILDOMAT_HELPER'
${helper(mode)}BUILDOMAT_HELPER
chmod 0700 "$HOME/.buildomat/bin/github-token"
"$HOME/.buildomat/bin/github-token" > /dev/null
echo "GitHub token in ~/.netrc and ~/.buildomat/github-token;" \\
    "run ~/.buildomat/bin/github-token for a current one"
`

const CLONE = `#!/bin/bash
#
# Clone the repository and check out the commit under test.
#
set -o errexit
set -o pipefail

token=$("$HOME/.buildomat/bin/github-token")
url=\${BUILDOMAT_CLONE_URL//"{token}"/$token}
# The same URL without credentials, for the origin remote that the build sees.
public=$(printf '%s' "\${BUILDOMAT_CLONE_URL//"{token}"/}" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@#\\1#')
dir="\${BUILDOMAT_ROOT:-}/work/$GITHUB_REPOSITORY"

mkdir -p "$(dirname "$dir")"
echo "cloning $public into /work/$GITHUB_REPOSITORY"
git clone --quiet --no-checkout "$url" "$dir"
cd "$dir"
git remote set-url origin "$public"
git fetch --quiet "$url" "$GITHUB_SHA"
current=$(git rev-parse --abbrev-ref HEAD)
if [[ -n \${GITHUB_BRANCH:-} && $GITHUB_BRANCH != "$current" ]]; then
	git branch -f "$GITHUB_BRANCH" "$GITHUB_SHA"
	git checkout --quiet -f "$GITHUB_BRANCH"
fi
git reset --quiet --hard "$GITHUB_SHA"
git log -1 --format='checked out %H: %s'
`

/**
 * Fills in the `{owner}` and `{repo}` of a clone URL template; `{token}` stays for the clone
 * script.
 *
 * @since 0.1.0
 * @category utils
 */
export const cloneUrlFor = (template: string, owner: string, repo: string): string =>
  template.replaceAll("{owner}", owner).replaceAll("{repo}", repo)

/**
 * The environment every task but `setup` gets (buildomat's "buildenv"): on ephemeral workers
 * the `build` user's `HOME`, `USER`, `LOGNAME` and `PATH`; everywhere `CI=true`,
 * `GITHUB_REPOSITORY`, `GITHUB_SHA`, and, for suites made from a push, `GITHUB_BRANCH` and
 * `GITHUB_REF`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const buildEnv = (input: BasicTasksInput): Record<string, string> => {
  const env: Record<string, string> = {}
  if (input.setup === "ephemeral") {
    env["HOME"] = "/home/build"
    env["USER"] = "build"
    env["LOGNAME"] = "build"
    env["PATH"] = "/home/build/.buildomat/bin:/home/build/.cargo/bin:/usr/bin:/bin:/usr/sbin:/sbin:/opt/ooce/bin:/opt/ooce/sbin"
  }
  env["CI"] = "true"
  env["GITHUB_REPOSITORY"] = `${input.owner}/${input.repo}`
  env["GITHUB_SHA"] = input.headSha
  if (input.headBranch !== null) {
    env["GITHUB_BRANCH"] = input.headBranch
    env["GITHUB_REF"] = `refs/heads/${input.headBranch}`
  }
  return env
}

/**
 * The task list of a basic job.
 *
 * @since 0.1.0
 * @category constructors
 */
export const basicTasks = (input: BasicTasksInput): ReadonlyArray<Jobs.TaskSubmit> => {
  const env = buildEnv(input)
  const user = input.setup === "ephemeral" ? { uid: BUILD_UID, gid: BUILD_UID } : {}
  const home = input.setup === "ephemeral" ? { workdir: "/home/build" } : {}
  const tasks: Array<Jobs.TaskSubmit> = [
    { name: "setup", script: input.setup === "ephemeral" ? SETUP_EPHEMERAL : SETUP_LOCAL, env_clear: false, env: {} }
  ]
  if (input.rust !== undefined) {
    tasks.push({
      name: "rust-toolchain",
      script: RUSTUP,
      env_clear: false,
      env: { ...env, TC_CHANNEL: input.rust.channel, TC_PROFILE: input.rust.profile },
      ...user,
      ...home
    })
  }
  tasks.push({
    name: "authentication",
    script: authentication(input.token.mode),
    env_clear: false,
    env: input.token.mode === "broker" ? { ...env, BUILDOMAT_GITHUB_TOKEN_URL: input.token.url } : env,
    ...user,
    ...home
  })
  if (!input.skipClone) {
    tasks.push({
      name: "clone repository",
      script: CLONE,
      env_clear: false,
      env: { ...env, BUILDOMAT_CLONE_URL: cloneUrlFor(input.cloneUrl, input.owner, input.repo) },
      ...user,
      ...home
    })
  }
  tasks.push({
    name: "build",
    script: input.script,
    env_clear: false,
    env,
    ...user,
    workdir: input.skipClone ? "/work" : `/work/${input.owner}/${input.repo}`
  })
  return tasks
}
