#!/usr/bin/env bash
# The project's one test command (README, CI): set-up, static checks, unit
# tests with Pulumi mocks, then end-to-end tests with the real pulumi CLI
# against real test hosts. The last line is the tally: `N passed, N failed`.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root" || exit 1

bash scripts/toolchain.sh || { echo "0 passed, 1 failed"; exit 1; }
use_toolchain
bash scripts/testhost.sh deps >&2 && bash scripts/testhost.sh image >&2 || { echo "0 passed, 1 failed"; exit 1; }
command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; } >&2

tally=$(mktemp)
export AYNA_TALLY_FILE=$tally
check() {
  local name=$1
  shift
  if "$@"; then
    echo '{"passed":1,"failed":0,"skipped":0}' >>"$tally"
    log "ok: $name"
  else
    echo '{"passed":0,"failed":1,"skipped":0}' >>"$tally"
    log "FAILED: $name"
  fi
}

check "typecheck (tsc --noEmit, strict)" npx tsc -p tsconfig.json --noEmit
check "eslint" npx eslint .
check "prettier --check" npx prettier --check --log-level warn .
check "shellcheck (scripts, CI, the host-side release tool)" shellcheck -x -S warning scripts/*.sh .ci/run builders/ayna-release.sh

mocha_run() {
  local config=$1
  local before
  before=$(wc -l <"$tally")
  npx mocha --config "$config"
  local rc=$?
  # A mocha that died before its reporter ran still counts as a failure.
  if [ "$rc" -ne 0 ] && [ "$(wc -l <"$tally")" -eq "$before" ]; then
    echo '{"passed":0,"failed":1,"skipped":0}' >>"$tally"
  fi
}

mocha_run .mocharc.unit.json
if [ "${AYNA_SKIP_E2E:-}" = "1" ]; then
  log "AYNA_SKIP_E2E=1: end-to-end tests not run (and not counted)"
else
  mocha_run .mocharc.e2e.json
  check "no test host, bridge, NAT rule or mount left behind" bash scripts/testhost.sh check-clean
fi

summary=$(node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean);
  const t = { passed: 0, failed: 0, skipped: 0 };
  for (const l of lines) { const x = JSON.parse(l); for (const k in t) t[k] += x[k]; }
  process.stdout.write(`${t.passed} passed, ${t.failed} failed` + (t.skipped ? `, ${t.skipped} skipped` : ""));
' "$tally")
rm -f "$tally"
echo "$summary"
case "$summary" in *" 0 failed"*) exit 0 ;; *) exit 1 ;; esac
