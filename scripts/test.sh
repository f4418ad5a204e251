#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run): set up, build, check package boundaries, type-check,
# then every vitest project once. Ends with "N passed, N failed" computed from vitest's own JSON result.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
eval "$(scripts/ensure-node.sh 2>/dev/null)"
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
status=0
echo "# package boundaries"
node tools/check-boundaries/check-boundaries.mjs || status=1
echo "# type-check"
npx nx run-many -t typecheck --outputStyle=static >/tmp/bam-typecheck.$$ 2>&1 || { cat /tmp/bam-typecheck.$$; status=1; }
rm -f /tmp/bam-typecheck.$$
echo "# tests"
result="$(mktemp)"
npx vitest run --reporter=default --reporter=json --outputFile.json="$result" || status=1
counts="$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const failed = r.numFailedTests + (r.numFailedTestSuites || 0);
  console.log(`${r.numPassedTests} ${failed} ${r.numTotalTests}`);
' "$result" 2>/dev/null || echo "0 1 0")"
rm -f "$result"
read -r passed failed total <<<"$counts"
if [ "$total" = "0" ]; then status=1; fi
[ "$status" -ne 0 ] && [ "$failed" = "0" ] && failed=1
echo "${passed} passed, ${failed} failed"
exit "$status"
