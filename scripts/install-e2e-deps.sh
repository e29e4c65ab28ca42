#!/usr/bin/env bash
# Install the real OCI clients that tests/e2e drives against `haven serve`:
# skopeo, podman, buildah and umoci (plus uidmap), from Debian 12's own packages, and for
# the authentication tests (tests/e2e/test_auth_clients.py) dockerd and the docker CLI
# (docker.io), containerd and ctr (containerd), openssl and curl; and a static busybox
# (busybox-static), the program of the image that the task tests run with buildah; and
# for the scale-out tests (tests/e2e/test_scale_out.py) nginx, which they run in front of
# two `haven serve` nodes with the configuration in deploy/nginx, and iproute2's `ss`.
#
# Idempotent: when everything is already there it changes nothing and needs no network.
# Run as root (CI's `make test` does); as another user it only checks and reports.
# Exits non-zero if any tool is still missing afterwards.
#
# The suite runs podman and buildah as root with the vfs storage driver and its own
# --root/--runroot per test, so neither fuse-overlayfs nor a storage.conf is needed, and
# no container is started by a runtime (only pull/push/manifest/commit; task steps run in a
# chroot through `buildah run --isolation chroot`), so no network stack either.
# What the tools do need from the system is a signature policy
# (/etc/containers/policy.json, shipped by golang-github-containers-common): podman
# `manifest push` has no flag to point at another one.
#
# dockerd and containerd are not started as services: the suite starts a private instance
# of each (own data root, state and socket) and stops it afterwards. docker, dockerd,
# containerd and ctr are taken from wherever they already are on PATH (for example Docker's
# own docker-ce and containerd.io packages, which Debian's docker.io would conflict with);
# the Debian package is installed only for a tool that is missing.
set -euo pipefail

PACKAGES=(
    skopeo
    podman
    buildah
    umoci
    uidmap
    golang-github-containers-common  # /etc/containers/policy.json, containers.conf defaults
    golang-github-containers-image   # /etc/containers/registries.conf
    busybox-static                   # /bin/busybox, for the task tests' image
    nginx                            # the scale-out tests' load balancer (not started as a service)
    iproute2                         # ss, which finds the node receiving an upload
)
# Tools of the authentication tests, and the Debian 12 package that provides each.
AUTH_TOOLS=(dockerd docker containerd ctr openssl curl)
declare -A AUTH_TOOL_PACKAGE=(
    [dockerd]=docker.io
    [docker]=docker.io
    [containerd]=containerd
    [ctr]=containerd
    [openssl]=openssl
    [curl]=curl
)
TOOLS=(skopeo podman buildah umoci newuidmap ss "${AUTH_TOOLS[@]}")
POLICY=/etc/containers/policy.json

log() { printf 'install-e2e-deps: %s\n' "$*" >&2; }

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing_packages=()
for pkg in "${PACKAGES[@]}"; do
    package_installed "$pkg" || missing_packages+=("$pkg")
done
for tool in "${AUTH_TOOLS[@]}"; do
    pkg=${AUTH_TOOL_PACKAGE[$tool]}
    if ! command -v "$tool" >/dev/null && [[ " ${missing_packages[*]} " != *" $pkg "* ]]; then
        missing_packages+=("$pkg")
    fi
done

if ((${#missing_packages[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing packages: ${missing_packages[*]}; run this script as root to install them"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when there are none yet or the first install attempt
    # fails on stale ones (a fresh machine has empty lists; a used one may be outdated).
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        log "apt-get update (no package lists yet)"
        apt-get update -q
    fi
    log "installing: ${missing_packages[*]}"
    if ! apt-get install -y -q --no-install-recommends "${missing_packages[@]}"; then
        log "install failed; refreshing package lists and retrying"
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing_packages[@]}"
    fi
else
    log "all packages already installed: ${PACKAGES[*]} (and ${AUTH_TOOLS[*]} are on PATH)"
fi

# The default trust policy: accept anything (the suite only talks to a local registry).
# Written only if absent, so a machine's own policy is never overwritten.
if [[ ! -s $POLICY ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        log "$POLICY is missing; run this script as root to create it"
        exit 1
    fi
    log "writing $POLICY"
    install -d -m 0755 "$(dirname "$POLICY")"
    printf '%s\n' '{"default": [{"type": "insecureAcceptAnything"}]}' >"$POLICY"
fi

status=0
for tool in "${TOOLS[@]}"; do
    if path=$(command -v "$tool"); then
        case $tool in
            newuidmap | ss) log "ok: $path" ;;
            openssl) log "ok: $path ($(openssl version 2>&1 | head -n 1))" ;;
            *) log "ok: $path ($("$tool" --version 2>&1 | head -n 1))" ;;
        esac
    else
        for dir in /usr/sbin /sbin /usr/local/sbin; do
            if [[ -x $dir/$tool ]]; then
                log "MISSING: $tool is in $dir, which is not on PATH ($PATH)"
                status=1
                continue 2
            fi
        done
        log "MISSING: $tool"
        status=1
    fi
done
# nginx is in /usr/sbin, which a non-root PATH lacks: the tests look there too.
if nginx=$(PATH=$PATH:/usr/sbin:/sbin command -v nginx); then
    log "ok: $nginx ($("$nginx" -v 2>&1))"
else
    log "MISSING: nginx"
    status=1
fi
if [[ ! -s $POLICY ]]; then
    log "MISSING: $POLICY"
    status=1
fi
exit "$status"
