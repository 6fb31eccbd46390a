/**
 * The boot script (EC2 user data) of a worker instance: buildomat's AWS factory template
 * (`factory/aws`, placeholders `%URL%`, `%STRAP%`, `%NODENAME%`) adapted to a Node agent.
 *
 * @internal
 */

/**
 * The template. Placeholders are replaced by single-quoted shell words.
 *
 * What it does, as root from cloud-init:
 * 1. Checks for `node` (Node.js 20 or later) and stops with a message on stderr and the console
 *    (`GetConsoleOutput`) if it is missing or too old: the agent is a Node program.
 * 2. Builds buildomat's query hints (`kernel`, `proc`, `mach`, `plat`, and `id`, `id_like`,
 *    `version_id` from `/etc/os-release`, spaces as `+`).
 * 3. Loops until it has the agent: `<url>/file/agent.gz<hints>` gunzipped, else
 *    `<url>/file/agent<hints>`, checked with `node --check`; fetched with curl, else wget, else
 *    Node's own `fetch`; one second between attempts, forever (as buildomat).
 * 4. Sets the hostname to the node name, writes `/opt/buildomat/etc/agent.env` (mode 0600, the
 *    bootstrap value is a secret) and starts the agent as systemd unit `buildomat-agent` when
 *    systemd runs, otherwise in the background with `nohup` (log in
 *    `/opt/buildomat/log/agent.log`). The agent keeps its state in `/opt/buildomat/etc`.
 *
 * `BUILDOMAT_SANDBOX=<dir>` in the environment (for tests that run the script on a developer
 * machine) puts everything under `<dir>`, maps the job's `/` to `<dir>/root`, keeps the
 * caller's PATH, leaves the hostname alone and never uses systemd. cloud-init never sets it.
 *
 * @internal
 */
export const TEMPLATE = `#!/bin/bash
#
# buildomat worker %NODENAME%: fetch the agent from the buildomat server and start it.
# Written by @buildomat/provider-aws. Needs bash, Node.js 20 or later ("node" on the PATH),
# and curl or wget (without them, Node's fetch is used).
#
set -o errexit
set -o pipefail
set -o nounset

URL=%URL%
STRAP=%STRAP%
NODENAME=%NODENAME%

SANDBOX="\${BUILDOMAT_SANDBOX:-}"
PREFIX="$SANDBOX/opt/buildomat"
if [[ -z $SANDBOX ]]; then export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"; fi

say() {
  printf 'buildomat: %s\\n' "$*" >&2
  if [[ -z $SANDBOX && -w /dev/console ]]; then printf 'buildomat: %s\\n' "$*" >/dev/console || true; fi
}
die() {
  say "FATAL: $*"
  exit 1
}

NODE="$(command -v node || true)"
if [[ -z $NODE ]]; then
  die "node is not installed: the buildomat agent needs Node.js 20 or later on the PATH; use an image that has it (see docs/aws.md)"
fi
if ! "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  die "node $("$NODE" --version 2>&1 || true) at $NODE is too old: the buildomat agent needs Node.js 20 or later"
fi

enc() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '+'; }
osr() { ( [[ -r /etc/os-release ]] && . /etc/os-release && eval "printf '%s' \\"\\\${$1:-}\\"" ) 2>/dev/null || true; }
HINTS="?kernel=$(enc "$(uname -s)")&proc=$(enc "$(uname -p 2>/dev/null || echo unknown)")"
HINTS+="&mach=$(enc "$(uname -m)")&plat=$(enc "$(uname -i 2>/dev/null || echo unknown)")"
HINTS+="&id=$(enc "$(osr ID)")&id_like=$(enc "$(osr ID_LIKE)")&version_id=$(enc "$(osr VERSION_ID)")"

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -sSf --connect-timeout 10 --max-time 600 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 60 -O "$2" "$1"
  else
    "$NODE" -e '
      const [url, file] = process.argv.slice(1)
      fetch(url).then(async (r) => {
        if (!r.ok) throw new Error(url + ": HTTP " + r.status)
        require("node:fs").writeFileSync(file, Buffer.from(await r.arrayBuffer()))
      }).catch((e) => { console.error(String(e.message ?? e)); process.exit(1) })' "$1" "$2"
  fi
}
gunzip_to() {
  if command -v gzip >/dev/null 2>&1; then
    gzip -dc "$1" >"$2"
  else
    "$NODE" -e 'const fs = require("node:fs"); fs.writeFileSync(process.argv[2], require("node:zlib").gunzipSync(fs.readFileSync(process.argv[1])))' "$1" "$2"
  fi
}

mkdir -p "$PREFIX/lib" "$PREFIX/log"
install -d -m 0700 "$PREFIX/etc"
AGENT="$PREFIX/lib/buildomat-agent.cjs"
NEW="$PREFIX/lib/download/buildomat-agent.cjs"
mkdir -p "$PREFIX/lib/download"
attempt=0
while :; do
  rm -f "$NEW" "$NEW.gz"
  if fetch "$URL/file/agent.gz$HINTS" "$NEW.gz" && gunzip_to "$NEW.gz" "$NEW" && "$NODE" --check "$NEW"; then break; fi
  if fetch "$URL/file/agent$HINTS" "$NEW" && "$NODE" --check "$NEW"; then break; fi
  attempt=$((attempt + 1))
  say "could not fetch the agent from $URL (attempt $attempt); retrying in 1 s"
  sleep 1
done
chmod 0755 "$NEW"
mv -f "$NEW" "$AGENT"
rm -rf "$PREFIX/lib/download"
say "fetched the agent from $URL ($(wc -c <"$AGENT") bytes); node $("$NODE" --version)"

if [[ -z $SANDBOX ]]; then
  hostnamectl set-hostname "$NODENAME" 2>/dev/null || hostname "$NODENAME" 2>/dev/null || say "could not set the hostname"
fi

ROOT_LINE=""
if [[ -n $SANDBOX ]]; then
  mkdir -p "$SANDBOX/root"
  ROOT_LINE="BUILDOMAT_AGENT_ROOT=\\"$SANDBOX/root\\""
fi
(
  umask 077
  printf 'BUILDOMAT_URL="%s"\\nBUILDOMAT_BOOTSTRAP="%s"\\nBUILDOMAT_AGENT_STATE="%s"\\n%s\\n' \\
    "$URL" "$STRAP" "$PREFIX/etc" "$ROOT_LINE" >"$PREFIX/etc/agent.env"
)

if [[ -z $SANDBOX && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  cat >/etc/systemd/system/buildomat-agent.service <<EOF
[Unit]
Description=buildomat agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=$PREFIX/etc/agent.env
ExecStart=$NODE $AGENT run
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable --now --no-block buildomat-agent.service
  say "agent started as systemd unit buildomat-agent"
else
  (
    set -o allexport
    . "$PREFIX/etc/agent.env"
    set +o allexport
    exec nohup "$NODE" "$AGENT" run >>"$PREFIX/log/agent.log" 2>&1 </dev/null
  ) &
  say "agent started in the background (pid $!, log $PREFIX/log/agent.log)"
fi
exit 0
`

/**
 * Characters allowed in the server URL written into the script: enough for any URL, none that
 * a shell or a systemd environment file would read specially (quotes, `$`, backslash, space).
 */
const SAFE_URL = /^https?:\/\/[A-Za-z0-9._~:/?#[\]@!&()*+,;=%-]+$/

/** A single-quoted shell word (`'` becomes `'\''`). */
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/**
 * The user data for one worker, or the reason it cannot be made (a URL with characters unsafe
 * in a shell script or environment file, or a bootstrap or node name that is not a plain token).
 *
 * @internal
 */
export const render = (
  params: { readonly url: string; readonly bootstrap: string; readonly nodename: string }
): { readonly _tag: "Right"; readonly script: string } | { readonly _tag: "Left"; readonly reason: string } => {
  const url = params.url.replace(/\/+$/, "")
  if (!SAFE_URL.test(url)) {
    return { _tag: "Left", reason: `the server URL ${JSON.stringify(params.url)} is not an http(s) URL of plain characters` }
  }
  if (!/^[A-Za-z0-9_-]+$/.test(params.bootstrap)) return { _tag: "Left", reason: "the bootstrap value is not a plain token" }
  if (!/^[A-Za-z0-9_.-]+$/.test(params.nodename)) {
    return { _tag: "Left", reason: `the node name ${JSON.stringify(params.nodename)} is not a plain name` }
  }
  const script = TEMPLATE.replace(/%URL%/g, shellQuote(url))
    .replace(/%STRAP%/g, shellQuote(params.bootstrap))
    .replace(/%NODENAME%/g, shellQuote(params.nodename))
  return { _tag: "Right", script }
}
