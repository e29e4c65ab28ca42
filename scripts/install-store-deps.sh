#!/usr/bin/env bash
# Install the storage services that tests/stores runs the object content stores against:
# - Azurite, Microsoft's Azure Storage emulator (npm package `azurite`), into .tools/;
# - Ceph's S3 gateway with a one-node cluster (Debian's radosgw, ceph-mon, ceph-osd),
#   which tests/object_stores.py starts on free ports with its data in memory.
#
# Idempotent: when everything is there it changes nothing and needs no network. Run as
# root for the Debian packages (CI's `make test` does). Exits non-zero if anything is
# still missing afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install-store-deps: %s\n' "$*" >&2; }

AZURITE=.tools/node_modules/.bin/azurite-blob
if [[ ! -x $AZURITE ]]; then
    command -v npm >/dev/null || { log "npm is missing: install nodejs and npm"; exit 1; }
    log "installing azurite into .tools/"
    npm install --prefix .tools --no-audit --no-fund azurite >&2
fi

PACKAGES=(radosgw ceph-mon ceph-osd)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing packages: ${missing[*]}; run this script as root to install them"
        exit 1
    fi
    log "installing: ${missing[*]}"
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
fi

for tool in "$AZURITE" radosgw ceph-mon ceph-osd; do
    command -v "$tool" >/dev/null || [[ -x $tool ]] || { log "still missing: $tool"; exit 1; }
done
log "ok: azurite $(node "$PWD/.tools/node_modules/azurite/dist/src/blob/main.js" --version 2>/dev/null || echo installed), $(radosgw --version | head -1)"
