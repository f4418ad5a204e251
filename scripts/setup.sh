#!/usr/bin/env bash
# Installs dependencies and builds every package, on a fresh clone or an existing one.
# Puts Node >= 22 first on PATH (provisioning a project-local Node 24 when the machine's is older).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
eval "$(scripts/ensure-node.sh)"
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
if [ ! -d node_modules/.bin ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install`, not `npm ci`: the lockfile pins every version, but npm set up to omit registry data (as on these
  # machines) leaves other platforms' optional packages out of it, and `npm ci` then refuses the lock as incomplete.
  echo "# installing dependencies" >&2
  npm install --no-audit --no-fund --loglevel=error
fi
echo "# building" >&2
npx nx run-many -t build --outputStyle=static >/dev/null || npx nx run-many -t build --outputStyle=static --skip-nx-cache
