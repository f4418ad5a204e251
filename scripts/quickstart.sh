#!/usr/bin/env bash
# One command from a fresh clone to a first real backup: installs and builds, creates the local repository in
# ~/.backup-manager/backups (with a generated password unless you configured one), backs up the given paths
# (default: this checkout's sources), and lists the snapshots.
#   scripts/quickstart.sh                 # back up this checkout
#   scripts/quickstart.sh ~/Documents     # back up your documents
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
eval "$(scripts/ensure-node.sh 2>/dev/null)"
bam() { node "$root/apps/cli/bin/bam.mjs" "$@"; }
home="${BACKUP_MANAGER_HOME:-$HOME/.backup-manager}"
if ! bam snapshots --quiet >/dev/null 2>&1; then
  if [ -e "${BACKUP_MANAGER_REPO:-$home/backups}/config" ]; then
    echo "A repository exists at ${BACKUP_MANAGER_REPO:-$home/backups} but cannot be opened: check its password (BACKUP_MANAGER_PASSWORD or $home/password)." >&2
    exit 12
  fi
  bam init
fi
if [ "$#" -gt 0 ]; then
  bam backup "$@"
else
  bam backup "$root" --exclude node_modules --exclude .tools --exclude dist --exclude .nx --exclude .git
fi
bam snapshots
cat <<MSG

Your first backup is done. Next:
  npx bam --help                          every command (from this folder)
  npx bam restore latest --target /tmp/r  restore it and check every file's SHA-256
  npx bam backup ~/Documents              back up something of your own
MSG
