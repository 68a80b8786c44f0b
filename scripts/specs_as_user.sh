#!/bin/bash
# Runs chosen specs as a normal user (the daemonless sandbox and its building
# blocks must hold unprivileged, not only as root): creates the user
# agentbox-ci (home /home/agentbox-ci) if missing, copies the tracked files
# and build/ into a directory that user owns, and runs busted there as that
# user. Ends with run_specs.sh's line "N passed, N failed".
# Usage (as root): scripts/specs_as_user.sh spec/a_spec.lua ...
set -uo pipefail
cd "$(dirname "$0")/.."
USER_NAME=${AGENTBOX_CI_USER:-agentbox-ci}
if [ "$(id -u)" -ne 0 ]; then
  echo "specs_as_user.sh: needs root (it creates the user $USER_NAME and runs the specs as that user)"
  echo "0 passed, 1 failed"
  exit 1
fi
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$USER_NAME" || { echo "useradd $USER_NAME failed"; echo "0 passed, 1 failed"; exit 1; }
fi
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
dir=$(mktemp -d /tmp/agentbox-as-user.XXXXXX)
trap 'rm -rf "$dir"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$dir"
cp -a build "$dir/"
chown -R "$USER_NAME:" "$dir"
chmod 755 "$dir"
echo "specs as $USER_NAME (uid $(id -u "$USER_NAME")) in $dir: $*"
cd "$dir" && runuser -u "$USER_NAME" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" USER="$USER_NAME" \
  CI="${CI:-}" TMPDIR=/tmp LANG=C.UTF-8 SPECS="$*" bash scripts/run_specs.sh lua5.4 /usr/bin/busted
