#!/usr/bin/env bash
# Runs vitest's three projects side by side, one process each: `unit` (files in parallel) and the
# two end-to-end lanes `e2e-a` and `e2e-b` (one file at a time each, in disjoint port bands:
# test/support/port-guard.ts). One vitest process would run every one-file-at-a-time project after
# the others, in a single queue. Each lane's output is printed when it ends; the last line sums them.
# With arguments (files, filters, --project ...), it is plain `vitest run` with those arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then exec npx vitest run "$@"; fi

out=test-output/lanes
rm -rf "$out" && mkdir -p "$out"
# Build once here (the global setup of each process would otherwise race to rebuild a stale dist/).
npx tsx -e "import('./test/setup/build.ts').then((m) => m.default())"

lanes=(unit e2e-a e2e-b)
pids=()
for lane in "${lanes[@]}"; do
  npx vitest run --project "$lane" --reporter=default --reporter=json --outputFile="$out/$lane.json" >"$out/$lane.log" 2>&1 &
  pids+=($!)
done
rc=0
declare -A done_lane=()
while [ ${#done_lane[@]} -lt ${#lanes[@]} ]; do
  for i in "${!lanes[@]}"; do
    lane=${lanes[$i]}
    [ -n "${done_lane[$lane]:-}" ] && continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}"; code=$?
      done_lane[$lane]=$code
      [ "$code" -ne 0 ] && rc=1
      echo "===== vitest --project $lane (exit $code) ====="
      cat "$out/$lane.log"
    fi
  done
  sleep 1
done
node -e '
const fs = require("fs");
let passed = 0, failed = 0, skipped = 0, files = 0;
for (const lane of process.argv.slice(1)) {
  const f = `test-output/lanes/${lane}.json`;
  if (!fs.existsSync(f)) { failed += 1; console.log(`${lane}: no report`); continue; }
  const r = JSON.parse(fs.readFileSync(f, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests; files += r.testResults.length;
}
console.log(`${files} test files in 3 projects`);
console.log(`Tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
' "${lanes[@]}"
exit $rc
