#!/bin/bash
#
# The demo's build job: clone this repository, type-check and build @buildomat/core, and pack it.
# It runs on a worker from the local provider, where "/" is the worker's scratch directory, so
# /work below is <scratch>/root/work. REPO is the repository to clone (set by the demo).
#
set -o errexit
set -o pipefail
set -o xtrace

mkdir -p work/out
cd work

git clone --quiet --depth 1 "file://$REPO" src
cd src
git log -1 --format='building %h: %s'

# The worker has no network: reuse the dependencies the repository already installed.
ln -s "$REPO/node_modules" node_modules

node --version
npx tsc -b packages/core/tsconfig.src.json
ls packages/core/dist | head -20

export npm_config_cache="$PWD/../.npm" npm_config_update_notifier=false
npm pack --quiet --workspace @buildomat/core --pack-destination ../out
cd ../out
sha256sum ./*.tgz | tee SHA256SUMS
