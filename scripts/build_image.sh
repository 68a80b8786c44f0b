#!/usr/bin/env bash
# Build the agentbox sandbox image without any container registry.
#
#   scripts/build_image.sh [TAG]          (default TAG: agentbox/sandbox:latest)
#   AGENTBOX_IMAGE_PACKAGES="python3-seaborn" scripts/build_image.sh
#                                         (default TAG: agentbox/sandbox:plus-python3-seaborn)
#
# The image is a Debian bookworm "minbase" root filesystem made by debootstrap
# from Debian's package mirror, with python3 + pandas + numpy + matplotlib
# (Agg backend, MPLCONFIGDIR=/tmp/matplotlib), a non-root user
# `agent` (uid/gid 1000) and /workspace. It is imported with `docker import`, so
# no `docker pull` (and no registry) is ever needed. procps is deliberately
# absent: the executor must not rely on ps/pkill inside the sandbox.
#
# Needs: root (debootstrap/chroot), debootstrap, and either the docker CLI or
# curl + the Docker Engine socket (the script then talks to the Engine API).
#
# The image carries the label agentbox.recipe=<sha256 of this script + package
# list>; if the tag already has that label the script exits at once.
#
# Environment:
#   AGENTBOX_IMAGE_PACKAGES    more Debian packages (space or comma separated), e.g.
#                              "python3-seaborn python3-statsmodels"; without a TAG the
#                              image is tagged agentbox/sandbox:plus-<names>, so
#                              agentbox/sandbox:latest stays what the specs test
#   AGENTBOX_IMAGE_BUILD_DIR   parent of the temporary rootfs (default /var/tmp)
#   AGENTBOX_IMAGE_CACHE_DIR   cache of the debootstrapped rootfs, keyed by suite,
#                              arch and package list (default /var/cache/agentbox;
#                              "none" disables it)
#   AGENTBOX_IMAGE_REBUILD=1   rebuild even if the image is up to date
#   AGENTBOX_IMAGE_REFRESH=1   re-run debootstrap instead of using the cached
#                              rootfs (picks up Debian updates), then re-cache;
#                              implies AGENTBOX_IMAGE_REBUILD=1
#   AGENTBOX_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   AGENTBOX_DOCKER=cli|api    force the docker CLI or the Engine API (default:
#                              CLI if `docker` is on PATH, else API)
#   DOCKER_HOST                unix:///path/to/docker.sock (API mode; default
#                              /var/run/docker.sock)
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
# The package list is part of the recipe hash. Keep it minimal (no procps).
# matplotlib: AutoGen's material plots charts; Debian's package, so the image
# stays registry-free (pip has no network in the sandbox on purpose).
PACKAGES="python3,python3-pandas,python3-numpy,python3-matplotlib,ca-certificates"
AGENT_UID=1000
AGENT_GID=1000
MIRROR="${AGENTBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILD_PARENT="${AGENTBOX_IMAGE_BUILD_DIR:-/var/tmp}"
CACHE_DIR="${AGENTBOX_IMAGE_CACHE_DIR:-/var/cache/agentbox}"
REFRESH="${AGENTBOX_IMAGE_REFRESH:-0}"
REBUILD="${AGENTBOX_IMAGE_REBUILD:-$REFRESH}"
CACHE_FORMAT=1   # bump to invalidate cached rootfs tarballs

START_TS=$(date +%s)
log() { printf '[build_image] %s\n' "$*" >&2; }
die() { printf '[build_image] ERROR: %s\n' "$*" >&2; exit 1; }

# Extra packages: checked against Debian's name rules before they reach
# debootstrap's command line or a tag
EXTRA=""
for p in ${AGENTBOX_IMAGE_PACKAGES//,/ }; do
    [[ "$p" =~ ^[a-z0-9][a-z0-9.+-]+$ ]] ||
        die "AGENTBOX_IMAGE_PACKAGES: '$p' is not a Debian package name"
    case ",$PACKAGES,$EXTRA," in *",$p,"*) continue ;; esac
    EXTRA+="${EXTRA:+,}$p"
done
if [[ -n "$EXTRA" ]]; then
    PACKAGES+=",$EXTRA"
    # a tag of its own: the derived image must not replace the one the
    # specs and the demo use; '+' is not allowed in a tag
    DERIVED="plus-$(tr ',+' '-p' <<<"$EXTRA")"
    (( ${#DERIVED} <= 100 )) || DERIVED="plus-$(sha256sum <<<"$EXTRA" | cut -c1-12)"
    TAG="${1:-agentbox/sandbox:$DERIVED}"
else
    TAG="${1:-agentbox/sandbox:latest}"
fi

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
command -v sha256sum >/dev/null || die "sha256sum missing (coreutils)"
RECIPE_HASH="$( { cat "$SELF"; printf 'packages=%s\n' "$PACKAGES"; } | sha256sum | cut -d' ' -f1)"

# ---------------------------------------------------------------- docker access
DOCKER_MODE="${AGENTBOX_DOCKER:-}"
if [[ -z "$DOCKER_MODE" ]]; then
    if command -v docker >/dev/null 2>&1; then DOCKER_MODE=cli; else DOCKER_MODE=api; fi
fi
case "$DOCKER_MODE" in
    cli) command -v docker >/dev/null 2>&1 || die "AGENTBOX_DOCKER=cli but no docker CLI on PATH" ;;
    api)
        command -v curl >/dev/null 2>&1 ||
            die "neither the docker CLI nor curl is on PATH; install one (apt-get install -y curl, or docker-ce-cli / docker.io)"
        case "${DOCKER_HOST:-}" in
            "") DOCKER_SOCK=/var/run/docker.sock ;;
            unix://*) DOCKER_SOCK="${DOCKER_HOST#unix://}" ;;
            *) die "DOCKER_HOST=$DOCKER_HOST: without the docker CLI only unix:// sockets are supported" ;;
        esac
        ;;
    *) die "AGENTBOX_DOCKER must be cli or api, not '$DOCKER_MODE'" ;;
esac

# urlencode STRING (pure bash, byte-wise)
urlencode() {
    local LC_ALL=C s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
            [A-Za-z0-9._~-]) out+="$c" ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}
# json_str STRING -> "STRING" with \ " and control characters escaped
json_str() {
    local s="${1//\\/\\\\}"
    s="${s//\"/\\\"}"; s="${s//$'\n'/\\n}"; s="${s//$'\t'/\\t}"; s="${s//$'\r'/\\r}"
    printf '"%s"' "$s"
}

# api METHOD PATH [curl args...]: print the response body, fail on HTTP >= 400
api() {
    local method="$1" path="$2"; shift 2
    curl -sS --fail-with-body --unix-socket "$DOCKER_SOCK" -X "$method" "$@" "http://localhost$path"
}

docker_ping() {
    if [[ "$DOCKER_MODE" == cli ]]; then
        docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    else
        [[ -S "$DOCKER_SOCK" ]] && [[ "$(api GET /_ping 2>/dev/null)" == OK ]]
    fi
}
docker_help() {
    local where="the Docker daemon"
    [[ "$DOCKER_MODE" == api ]] && where="the Docker Engine API at $DOCKER_SOCK"
    die "cannot reach $where. Is dockerd running? (start it: 'systemctl start docker', 'service docker start' or 'dockerd &'); are you root or in the docker group?; is DOCKER_HOST right?"
}

# image_label TAG -> value of label agentbox.recipe, empty if no image / no label
image_label() {
    if [[ "$DOCKER_MODE" == cli ]]; then
        docker image inspect --format '{{index .Config.Labels "agentbox.recipe"}}' "$1" 2>/dev/null || true
    else
        api GET "/images/$(urlencode "$1")/json" 2>/dev/null |
            grep -o '"agentbox.recipe":"[0-9a-f]*"' | head -n1 | sed 's/.*:"\(.*\)"/\1/' || true
    fi
}
# image_id TAG -> sha256:... or empty
image_id() {
    if [[ "$DOCKER_MODE" == cli ]]; then
        docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
    else
        api GET "/images/$(urlencode "$1")/json" 2>/dev/null |
            grep -o '"Id":"sha256:[0-9a-f]*"' | head -n1 | sed 's/.*:"\(.*\)"/\1/' || true
    fi
}
image_size() {
    if [[ "$DOCKER_MODE" == cli ]]; then
        docker image inspect --format '{{.Size}}' "$1"
    else
        api GET "/images/$(urlencode "$1")/json" | grep -o '"Size":[0-9]*' | head -n1 | cut -d: -f2
    fi
}
# image_rm ID: best effort (fails silently if a container still uses it)
image_rm() {
    if [[ "$DOCKER_MODE" == cli ]]; then
        docker image rm "$1" >/dev/null 2>&1 || true
    else
        api DELETE "/images/$(urlencode "$1")" >/dev/null 2>&1 || true
    fi
}
# image_tag SRC DST
image_tag() {
    if [[ "$DOCKER_MODE" == cli ]]; then
        docker tag "$1" "$2"
    else
        local repo t
        split_tag "$2"
        api POST "/images/$(urlencode "$1")/tag?repo=$(urlencode "$repo")&tag=$(urlencode "$t")" >/dev/null
    fi
}
# split_tag NAME[:TAG] -> sets $repo and $t
split_tag() {
    repo="${1%:*}" t="${1##*:}"
    if [[ "$1" != *:* || "$t" == */* ]]; then repo="$1"; t=latest; fi
}
# image_import TAG CHANGE... < tarball
image_import() {
    local tag="$1"; shift
    if [[ "$DOCKER_MODE" == cli ]]; then
        local args=() c
        for c in "$@"; do args+=(--change "$c"); done
        docker import "${args[@]}" - "$tag" >/dev/null
    else
        local repo t q c out
        split_tag "$tag"
        q="fromSrc=-&repo=$(urlencode "$repo")&tag=$(urlencode "$t")"
        for c in "$@"; do q+="&changes=$(urlencode "$c")"; done
        # -T - streams stdin with chunked encoding (no buffering of the tarball)
        out="$(api POST "/images/create?$q" -H 'Content-Type: application/x-tar' -T -)" ||
            { printf '%s\n' "$out" >&2; return 1; }
        # the Engine reports import errors in the (HTTP 200) JSON stream
        if grep -q '"error"' <<<"$out"; then printf '%s\n' "$out" >&2; return 1; fi
    fi
}
# container_run TAG CMD... : run with --rm --network none, print output, return exit code.
# With SANDBOXED=1: also as the DockerExecutor runs code (read-only root,
# /tmp a tmpfs, HOME=/workspace), to check what code will meet there.
container_run() {
    local tag="$1"; shift
    if [[ "$DOCKER_MODE" == cli ]]; then
        local opts=()
        [[ "${SANDBOXED:-}" == 1 ]] && opts=(--read-only --tmpfs /tmp:rw,size=64m,mode=1777 -e HOME=/workspace)
        docker run --rm --network none "${opts[@]}" "$tag" "$@" 2>&1
        return
    fi
    local cmd="" a id out code hc='"NetworkMode":"none"' env=""
    [[ "${SANDBOXED:-}" == 1 ]] &&
        hc+=',"ReadonlyRootfs":true,"Tmpfs":{"/tmp":"rw,size=64m,mode=1777"}' env=',"Env":["HOME=/workspace"]'
    for a in "$@"; do cmd+="${cmd:+,}$(json_str "$a")"; done
    out="$(api POST /containers/create -H 'Content-Type: application/json' \
        -d "{\"Image\":$(json_str "$tag"),\"Cmd\":[$cmd],\"Tty\":true$env,\"HostConfig\":{$hc}}")" ||
        { printf '%s\n' "$out" >&2; return 1; }
    id="$(grep -o '"Id":"[0-9a-f]*"' <<<"$out" | sed 's/.*:"\(.*\)"/\1/')"
    [[ -n "$id" ]] || { printf '%s\n' "$out" >&2; return 1; }
    code=1
    if api POST "/containers/$id/start" >/dev/null; then
        out="$(api POST "/containers/$id/wait")"
        code="$(grep -o '"StatusCode":[0-9]*' <<<"$out" | cut -d: -f2)"
        # Tty:true -> raw (non-multiplexed) log stream, with CRLF line ends
        api GET "/containers/$id/logs?stdout=1&stderr=1" | tr -d '\r'
    fi
    api DELETE "/containers/$id?force=1" >/dev/null || true
    return "${code:-1}"
}

# ------------------------------------------------------------------ cache check
docker_ping || docker_help
if [[ "$REBUILD" != 1 && "$(image_label "$TAG")" == "$RECIPE_HASH" ]]; then
    echo "image $TAG is up to date"
    exit 0
fi

# ---------------------------------------------------------------- preconditions
[[ "$(id -u)" == 0 ]] || die "must run as root (debootstrap and chroot need it): sudo $0 ${1:-}"
command -v debootstrap >/dev/null 2>&1 || [[ -x /usr/sbin/debootstrap ]] ||
    die "debootstrap is missing: apt-get install -y debootstrap"
export PATH="$PATH:/usr/sbin:/sbin"
for tool in chroot tar mktemp find; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (coreutils/tar/findutils)"
done
[[ -e "/usr/share/debootstrap/scripts/$SUITE" ]] ||
    die "this debootstrap does not know '$SUITE': apt-get install -y debootstrap (a newer one)"
ARCH="$(dpkg --print-architecture 2>/dev/null || true)"
if [[ -z "$ARCH" ]]; then
    case "$(uname -m)" in
        x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) die "cannot tell the Debian architecture of $(uname -m)" ;;
    esac
fi

# Serialise concurrent builds (a second caller waits, then usually finds the
# image up to date).
if [[ "$CACHE_DIR" != none ]]; then
    mkdir -p "$CACHE_DIR" || die "cannot create cache dir $CACHE_DIR (set AGENTBOX_IMAGE_CACHE_DIR, or 'none')"
    LOCK_FILE="$CACHE_DIR/build.lock"
else
    LOCK_FILE=/run/lock/agentbox-image-build.lock
    [[ -d /run/lock ]] || LOCK_FILE="$BUILD_PARENT/agentbox-image-build.lock"
fi
if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        log "another build holds $LOCK_FILE; waiting"
        flock 9
        if [[ "$REBUILD" != 1 && "$(image_label "$TAG")" == "$RECIPE_HASH" ]]; then
            echo "image $TAG is up to date"
            exit 0
        fi
    fi
fi

mkdir -p "$BUILD_PARENT" || die "cannot create $BUILD_PARENT (AGENTBOX_IMAGE_BUILD_DIR)"
WORKDIR="$(mktemp -d "$BUILD_PARENT/agentbox-image.XXXXXX")" ||
    die "cannot create a temp dir under $BUILD_PARENT (AGENTBOX_IMAGE_BUILD_DIR)"
ROOTFS="$WORKDIR/rootfs"
mkdir "$ROOTFS"

# Unmount anything still mounted under the rootfs (debootstrap mounts /proc,
# /sys and sometimes binds /dev; if it is killed those mounts stay). Deepest first.
umount_under() {
    local root="$1" m
    [[ -d "$root" ]] || return 0
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    ! awk -v r="$root" '$2 == r || index($2, r "/") == 1 { f = 1 } END { exit !f }' /proc/self/mounts
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "${WORKDIR:-}" && -d "$WORKDIR" ]]; then
        if umount_under "$WORKDIR"; then
            rm -rf --one-file-system "$WORKDIR"
        else
            log "WARNING: mounts remain under $WORKDIR; not deleting it (unmount them, then rm -rf it)"
        fi
    fi
    [[ -n "${CACHE_TMP:-}" ]] && rm -f "$CACHE_TMP"
    # an import that was not verified must not survive (its label would make
    # the next run think it is up to date)
    [[ -n "${BUILD_TAG:-}" ]] && image_rm "$BUILD_TAG"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

log "building $TAG (recipe ${RECIPE_HASH:0:12}, $SUITE/$ARCH, docker via $DOCKER_MODE) in $WORKDIR"

# ------------------------------------------------------------------- bootstrap
CACHE_KEY="$(printf '%s\n' "$CACHE_FORMAT" "$SUITE" "$ARCH" "$VARIANT" "$PACKAGES" | sha256sum | cut -c1-16)"
CACHE_TAR=""
[[ "$CACHE_DIR" != none ]] && CACHE_TAR="$CACHE_DIR/rootfs-$SUITE-$ARCH-$CACHE_KEY.tar"

if [[ -n "$CACHE_TAR" && -f "$CACHE_TAR" && "$REFRESH" != 1 ]]; then
    log "unpacking cached debootstrap rootfs $CACHE_TAR"
    tar -C "$ROOTFS" --numeric-owner -xpf "$CACHE_TAR" ||
        die "cannot unpack $CACHE_TAR (corrupt? delete it and rerun)"
else
    if command -v curl >/dev/null 2>&1; then
        curl -sSf -o /dev/null --max-time 30 "$MIRROR/dists/$SUITE/Release" ||
            die "Debian mirror $MIRROR is unreachable (no $MIRROR/dists/$SUITE/Release); check the network/proxy or set AGENTBOX_DEBIAN_MIRROR"
    fi
    log "debootstrap --variant=$VARIANT --include=$PACKAGES $SUITE from $MIRROR (a few minutes)"
    t0=$(date +%s)
    if ! debootstrap --variant="$VARIANT" --arch="$ARCH" --include="$PACKAGES" \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$WORKDIR/debootstrap.out" 2>&1; then
        log "debootstrap failed; last lines of its output:"
        tail -n 25 "$WORKDIR/debootstrap.out" >&2 || true
        if [[ -f "$ROOTFS/debootstrap/debootstrap.log" ]]; then
            log "last lines of $ROOTFS/debootstrap/debootstrap.log:"
            tail -n 25 "$ROOTFS/debootstrap/debootstrap.log" >&2 || true
        fi
        die "debootstrap failed (mirror unreachable? disk full under $BUILD_PARENT? a package name wrong?)"
    fi
    log "debootstrap done in $(( $(date +%s) - t0 ))s"
    umount_under "$ROOTFS" || die "debootstrap left mounts under $ROOTFS"
    if [[ -n "$CACHE_TAR" ]]; then
        # keep the three newest entries (~1.5 GB each): the base image and a
        # derived one (AGENTBOX_IMAGE_PACKAGES) must not evict each other
        find "$CACHE_DIR" -maxdepth 1 -name 'rootfs-*.tar' -printf '%T@ %p\n' 2>/dev/null | sort -rn |
            tail -n +4 | cut -d' ' -f2- | xargs -r rm -f -- || true
        CACHE_TMP="$CACHE_TAR.tmp.$$"
        if tar -C "$ROOTFS" --numeric-owner -cf "$CACHE_TMP" . && mv -f "$CACHE_TMP" "$CACHE_TAR"; then
            log "cached the debootstrap rootfs in $CACHE_TAR"
        else
            log "WARNING: could not write $CACHE_TAR (continuing without the cache)"
            rm -f "$CACHE_TMP"
        fi
        CACHE_TMP=""
    fi
fi

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 HOME=/root "$@"; }

log "checking that pandas, numpy and matplotlib import in the rootfs"
in_root python3 -c 'import pandas, numpy, matplotlib; print("pandas", pandas.__version__, "numpy", numpy.__version__, "matplotlib", matplotlib.__version__)' >&2 ||
    die "python3 cannot import pandas/numpy/matplotlib in the debootstrapped rootfs (rerun with AGENTBOX_IMAGE_REFRESH=1 to redo debootstrap)"

# --------------------------------------------------------------- customisation
log "adding user agent ($AGENT_UID:$AGENT_GID), /workspace, and trimming"
if ! grep -q '^agent:' "$ROOTFS/etc/group"; then
    in_root groupadd -g "$AGENT_GID" agent
fi
if ! grep -q '^agent:' "$ROOTFS/etc/passwd"; then
    in_root useradd -l -u "$AGENT_UID" -g "$AGENT_GID" -d /home/agent -m -s /bin/bash agent
fi
install -d -o "$AGENT_UID" -g "$AGENT_GID" -m 0755 "$ROOTFS/workspace" "$ROOTFS/home/agent"

# Keep future `apt-get install` in derived images small as well.
mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/agentbox-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/agentbox-clean" <<'EOF'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF

# matplotlib depends on fonttools, which depends on sympy, unicode-data and
# scipy (kept: analysts use it), and scipy on pythran, which drags in g++,
# boost headers and python3-dev: ~600 MB that nothing imports at run time.
# A local package, agentbox-slim, provides those three names at their
# versions, so dpkg's dependencies stay satisfied (apt-get install in an
# image built on this one still works); the real ones are purged, and apt
# removes what only they needed (everything not asked for is marked auto).
# A name in AGENTBOX_IMAGE_PACKAGES, or one that another package (one of
# them, say) depends on, stays real.
log "leaving out what matplotlib's dependencies drag in (pythran's C++ toolchain, sympy, unicode-data)"
STANDINS="" provides=""
for p in python3-pythran python3-sympy unicode-data; do
    case ",$EXTRA," in *",$p,"*) continue ;; esac
    v="$(in_root dpkg-query -W -f='${Version}' "$p" 2>/dev/null)" || continue
    users="$(in_root dpkg-query -W -f='${Package}: ${Depends}, ${Pre-Depends},\n' |
        grep -E ": (.*[ ,|])?${p//./\\.}[ ,(:]" | cut -d: -f1 | grep -vxE 'python3-fonttools|python3-scipy' || true)"
    [[ -z "$users" ]] || { log "keeping $p: needed by $(echo $users)"; continue; }
    STANDINS+=" $p" provides+="${provides:+, }$p (= $v)"
done
if [[ -n "$STANDINS" ]]; then
    mkdir -p "$ROOTFS/tmp/agentbox-slim/DEBIAN"
    cat >"$ROOTFS/tmp/agentbox-slim/DEBIAN/control" <<EOF
Package: agentbox-slim
Version: 1
Architecture: all
Maintainer: agentbox <agentbox@localhost>
Priority: optional
Section: misc
Provides: $provides
Description: stands in for packages the agentbox sandbox image leaves out
 They are dependencies of dependencies of python3-matplotlib (through
 python3-fonttools) that drawing a chart never imports.
EOF
    # shellcheck disable=SC2086  # a list of package names
    in_root dpkg-deb -b /tmp/agentbox-slim /tmp/agentbox-slim.deb >/dev/null &&
        in_root dpkg -i /tmp/agentbox-slim.deb >/dev/null &&
        in_root dpkg --purge $STANDINS >/dev/null ||
        die "cannot replace$STANDINS by a stand-in package in the rootfs"
    # shellcheck disable=SC2016,SC2086  # expanded by the chroot's sh; a list of names
    in_root sh -c 'apt-mark auto $(dpkg-query -W -f="\${Package}\n") >/dev/null &&
        apt-mark manual "$@" $(dpkg-query -W -f="\${Package} \${Priority}\n" |
            awk "\$2 == \"required\" || \$2 == \"important\" { print \$1 }") >/dev/null' sh \
        ${PACKAGES//,/ } agentbox-slim || die "apt-mark failed in the rootfs"
    # (its output only on failure: without /dev/pts apt says "E: Can not write log")
    out="$(in_root apt-get -y -qq -o APT::AutoRemove::RecommendsImportant=false \
        -o APT::AutoRemove::SuggestsImportant=false autoremove --purge 2>&1)" ||
        die "apt-get autoremove failed in the rootfs: $out"
    in_root dpkg --audit >&2 || die "dpkg reports broken packages after leaving out$STANDINS"
    rm -rf "$ROOTFS/tmp/agentbox-slim" "$ROOTFS/tmp/agentbox-slim.deb"
    in_root python3 -c 'import pandas, numpy, scipy, matplotlib.pyplot, fontTools' >&2 ||
        die "pandas/numpy/scipy/matplotlib no longer import after leaving out$STANDINS"
fi

# Trim: package caches/lists, docs (keep copyright files), man/info pages,
# translations, logs, and files Docker provides at run time.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/var/lib/dpkg/*-old "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/share/lintian "$ROOTFS"/usr/share/linda \
    "$ROOTFS"/usr/share/bug "$ROOTFS"/usr/share/common-licenses \
    "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$ROOTFS/var/log" -type f -delete
# setuptools' namespace-package .pth files (matplotlib's mpl_toolkits) run
# importlib at every interpreter start: ~25 ms of each python block. Python 3
# finds mpl_toolkits as an implicit namespace package without them.
find "$ROOTFS/usr/lib/python3/dist-packages" -maxdepth 1 -name '*-nspkg.pth' -delete
# The test suites shipped inside pandas/numpy (~45 MB, never imported at run
# time; numpy.testing and pandas._testing are separate and stay).
find "$ROOTFS/usr/lib/python3/dist-packages" -depth -type d -name tests \
    \( -path '*/pandas/*' -o -path '*/numpy/*' -o -path '*/matplotlib/*' -o -path '*/scipy/*' \) -exec rm -rf {} +
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/etc/hostname" "$ROOTFS/etc/resolv.conf" "$ROOTFS/etc/hosts"
# Docker mounts /dev itself; ship an empty one like the official base images.
umount_under "$ROOTFS" || die "unexpected mounts under $ROOTFS"
find "$ROOTFS/dev" -xdev -mindepth 1 -delete

# ---------------------------------------------------------------------- import
# Import under a temporary tag; $TAG is only moved once the image passed the
# checks, so a failed build leaves the previous image in place.
split_tag "$TAG"
BUILD_TAG="$repo:build-${RECIPE_HASH:0:12}"
log "importing into docker as $BUILD_TAG"
tar -C "$ROOTFS" --numeric-owner -c . | image_import "$BUILD_TAG" \
    "USER $AGENT_UID:$AGENT_GID" \
    'WORKDIR /workspace' \
    'ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8' \
    'ENV MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib' \
    "LABEL agentbox.recipe=$RECIPE_HASH" \
    'CMD ["sleep","infinity"]' ||
    die "docker import of $BUILD_TAG failed (is the daemon healthy and its disk not full? see above)"

# ---------------------------------------------------------------------- verify
log "verifying $BUILD_TAG"
out="$(container_run "$BUILD_TAG" python3 -c 'import pandas, numpy
df = pandas.DataFrame({"a": numpy.arange(4)}); assert int(df.a.sum()) == 6
print(pandas.__version__)')" ||
    die "python3 -c 'import pandas, numpy' fails in $BUILD_TAG: $out"
PANDAS_VERSION="$(tail -n1 <<<"$out")"
# matplotlib as the sandbox meets it: its config/cache directory must be
# writable (MPLCONFIGDIR on the /tmp tmpfs: HOME is work_dir, and a font
# cache there would look like a file the code produced) and Agg must draw
out="$(SANDBOXED=1 container_run "$BUILD_TAG" python3 -c 'import os, matplotlib, matplotlib.pyplot as plt
plt.plot([1, 3, 2]); plt.savefig("/tmp/check.png")
assert open("/tmp/check.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
assert matplotlib.get_backend().lower() == "agg", matplotlib.get_backend()
assert matplotlib.get_configdir() == "/tmp/matplotlib", matplotlib.get_configdir()
assert not os.path.exists("/workspace/.config") and not os.path.exists("/workspace/.cache")
print(matplotlib.__version__)')" ||
    die "matplotlib cannot save a PNG with Agg in $BUILD_TAG (read-only root, /tmp tmpfs): $out"
MPL_VERSION="$(tail -n1 <<<"$out")"
# shellcheck disable=SC2016  # expanded by the container's sh
out="$(container_run "$BUILD_TAG" sh -c 'echo "$(id -u):$(id -g) $HOME $(pwd)"; touch /workspace/.w && rm /workspace/.w && echo writable')" ||
    die "identity check failed in $BUILD_TAG: $out"
read -r ids home cwd <<<"$(head -n1 <<<"$out")"
[[ "$ids" == "$AGENT_UID:$AGENT_GID" ]] || die "$BUILD_TAG runs as $ids, expected $AGENT_UID:$AGENT_GID"
[[ "$cwd" == /workspace ]] || die "$BUILD_TAG starts in $cwd, expected /workspace"
grep -qx writable <<<"$out" || die "/workspace is not writable by $ids in $BUILD_TAG"
[[ "$(image_label "$BUILD_TAG")" == "$RECIPE_HASH" ]] || die "$BUILD_TAG lacks label agentbox.recipe=$RECIPE_HASH after import"

OLD_ID="$(image_id "$TAG")"
NEW_ID="$(image_id "$BUILD_TAG")"
image_tag "$BUILD_TAG" "$TAG" || die "cannot tag $BUILD_TAG as $TAG"
image_rm "$BUILD_TAG"   # only drops the temporary tag
BUILD_TAG=""
if [[ -n "$OLD_ID" && "$OLD_ID" != "$NEW_ID" ]]; then
    image_rm "$OLD_ID"   # the previous build, now untagged (kept if a container uses it)
fi

SIZE="$(image_size "$TAG")"
SIZE_H="$(numfmt --to=iec --suffix=B "$SIZE" 2>/dev/null || echo "$SIZE bytes")"
echo "built $TAG: pandas $PANDAS_VERSION, matplotlib $MPL_VERSION${EXTRA:+, plus $EXTRA}, user $ids (home $home), workdir $cwd, size $SIZE_H ($SIZE bytes), in $(( $(date +%s) - START_TS ))s"
