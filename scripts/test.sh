#!/usr/bin/env bash
# The project's one test command (README, CI): set-up, static checks, unit
# tests with Pulumi mocks, then end-to-end tests with the real pulumi CLI
# against real test hosts, then checks that the run left the golden files and
# the clone as it found them. The last line is the tally:
# `N passed, N failed`, plus `, N skipped` when tests were not run.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root" || exit 1

# A test run only compares golden files; rewriting them is `npm run golden:update`.
if [ -n "${AYNA_GOLDEN_UPDATE:-}" ]; then
  log "AYNA_GOLDEN_UPDATE ignored: a test run never rewrites golden files (npm run golden:update does)"
fi
unset AYNA_GOLDEN_UPDATE

# One line per path: its name, then a content hash ("-" when it does not exist).
path_state() {
  local p=$1
  if [ -L "$p" ]; then
    printf '%q\tlink %s\n' "$p" "$(readlink -- "$p")"
  elif [ -f "$p" ]; then
    printf '%q\t%s\n' "$p" "$(sha256sum <"$p" | cut -c1-16)"
  elif [ -d "$p" ]; then
    printf '%q\tdir %s\n' "$p" "$(find "$p" -type f -print0 | sort -z | xargs -0r sha256sum | sha256sum | cut -c1-16)"
  else
    printf '%q\t-\n' "$p"
  fi
}

# The clone as git sees it: HEAD, and every changed, untracked or ignored path
# (ignored ones too: stack files such as Pulumi.<stack>.yaml are ignored) with
# its status and content hash, so that a file already dirty before the run and
# changed again also shows. node_modules/ and dist/ are what set-up creates.
clone_state() {
  printf 'HEAD\t%s\n' "$(git rev-parse HEAD 2>/dev/null)"
  local entry xy
  # --no-optional-locks: only look, never refresh the index of a shared checkout.
  git --no-optional-locks status --porcelain=v1 -z --ignored --untracked-files=all -- . \
    ':(exclude)node_modules' ':(exclude)dist' |
    while IFS= read -r -d '' entry; do
      xy=${entry:0:2}
      # A rename or copy entry is followed by its source path: skip that, the entry names the change.
      case $xy in R* | C*) IFS= read -r -d '' _ || true ;; esac
      path_state "${entry:3}" | sed "s/\t/\t$xy /"
    done
}

golden_state() {
  find test/unit/golden ! -type d -print0 | sort -z | while IFS= read -r -d '' p; do path_state "$p"; done
}

# Succeeds when two states are the same; otherwise lists the paths that differ.
same_state() {
  local before=$1 after=$2 diffs
  diffs=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
  [ -z "$diffs" ] && return 0
  local p was now
  printf '%s\n' "$diffs" | sed -n 's/^[<>] //p' | cut -f1 | sort -u | while IFS= read -r p; do
    was=$(printf '%s\n' "$before" | P=$p awk -F'\t' '$1 == ENVIRON["P"] { print $2 }')
    now=$(printf '%s\n' "$after" | P=$p awk -F'\t' '$1 == ENVIRON["P"] { print $2 }')
    printf '  %s: was [%s], now [%s]\n' "$p" "${was:-clean or absent}" "${now:-clean or absent}" >&2
  done
  return 1
}

# Before anything runs, set-up included: what "as it found them" means.
clone_before=$(clone_state)
golden_before=$(golden_state)

# The test host images (debootstrap: mostly downloads; the Docker tests'
# base image too) are built beside the toolchain (mostly the pulumi CLI's Go
# build): on a cold cache they overlap.
# Only the image's job runs apt-get, so the two never wait on dpkg's lock.
(
  bash scripts/testhost.sh deps && bash scripts/testhost.sh image && bash scripts/testhost.sh base-image >/dev/null &&
    { command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }; }
) > >(sed -u 's/^/[test host image] /' >&2) 2>&1 &
image_pid=$!
toolchain_rc=0
bash scripts/toolchain.sh || toolchain_rc=$?
image_rc=0
wait "$image_pid" || image_rc=$?
if [ "$toolchain_rc" != 0 ] || [ "$image_rc" != 0 ]; then
  [ "$toolchain_rc" = 0 ] || echo "FAILED set-up: scripts/toolchain.sh exited $toolchain_rc (its output is above)"
  [ "$image_rc" = 0 ] || echo "FAILED set-up: the test host image or its packages (scripts/testhost.sh deps, image, base-image) exited $image_rc (lines marked [test host image] above)"
  echo "0 passed, 1 failed"
  exit 1
fi
use_toolchain

tally=$(mktemp)
trap 'rm -f "$tally"' EXIT
check() {
  local name=$1
  shift
  if "$@"; then
    echo '{"passed":1,"failed":0,"skipped":0}' >>"$tally"
    log "ok: $name"
  else
    node -e 'console.log(JSON.stringify({ passed: 0, failed: 1, skipped: 0, failures: [process.argv[1]] }))' "$name" >>"$tally"
    log "FAILED: $name"
  fi
}

check "typecheck (tsc --noEmit, strict)" npx tsc -p tsconfig.json --noEmit
check "eslint" npx eslint .
check "prettier --check" npx prettier --check --log-level warn .
check "shellcheck (scripts, CI, launchers, the host-side release, proxy and database tools)" shellcheck -x -S warning scripts/*.sh .ci/run plugins/bin/* plugins/language-nodejs/pulumi-language-nodejs builders/ayna-release.sh builders/ayna-docker.sh builders/ayna-proxy.sh test/unit/golden/ayna-db

# Each mocha run gets a tally file of its own, so that what its reporter
# recorded is known: a run whose reporter wrote nothing, or that exited
# non-zero with no failure recorded, still adds a failure (test/support/tally.js).
mocha_run() {
  local label=$1
  shift
  local run_tally rc
  run_tally=$(mktemp)
  # .only, it.skip, xit, bodiless tests and this.skip() fail the run; so does a spec glob that finds nothing.
  AYNA_TALLY_FILE=$run_tally npx mocha --forbid-only --forbid-pending --fail-zero "$@"
  rc=$?
  node test/support/tally.js run "$label" "$rc" "$run_tally" >>"$tally" ||
    echo '{"passed":0,"failed":1,"skipped":0}' >>"$tally"
  rm -f "$run_tally"
}

# How long each end-to-end file took in one run of this command on 2 cores,
# in minutes (2026-12-03, both lanes busy): only the order they start in, so
# that no lane is left with a long file at the end. A file not listed counts 5.
e2e_minutes() { # file
  case $(basename -- "$1" .e2e.test.ts) in
    faults) echo 27 ;;
    operator) echo 16 ;;
    releases) echo 15 ;;
    docker) echo 12 ;;
    batches | database | multiproject) echo 9 ;;
    connection | teamstate) echo 7 ;;
    layouts | venv-systemd) echo 6 ;;
    sample-app | smoke) echo 3 ;;
    dockerhost | provider | testhost | toolchain) echo 1 ;;
    *) echo 5 ;;
  esac
}

# Two lanes side by side take end-to-end files from one queue, one mocha run
# per file, its lines prefixed with the file's name. A file's loads take the
# machine's load token (test/support/load.ts), so no two loads and their
# hosts ever compete for the 2 cores at once: a load runs beside other work
# without load, and waits while the other lane's load runs. So that a lane
# seldom waits, the queue mixes the two kinds by their minutes: files with
# loads (startLoad) longest first, files without longest first, the next one
# taken from the kind with fewer minutes queued so far.
e2e_queue() { # queue-file file...
  local queue=$1 f
  shift
  {
    for f in $(grep -l startLoad "$@"); do printf 'L\t%s\t%s\n' "$(e2e_minutes "$f")" "$f"; done
    for f in $(grep -L startLoad "$@"); do printf 'N\t%s\t%s\n' "$(e2e_minutes "$f")" "$f"; done
  } | sort -t "$(printf '\t')" -k2,2nr -k3,3 | awk -F '\t' '
    { kind[NR] = $1; mins[NR] = $2; file[NR] = $3 }
    END {
      split("", done_); total["L"] = 0; total["N"] = 0
      for (n = 1; n <= NR; n++) {
        want = total["L"] <= total["N"] ? "L" : "N"
        pick = 0
        for (i = 1; i <= NR; i++) if (!(i in done_) && kind[i] == want) { pick = i; break }
        if (!pick) for (i = 1; i <= NR; i++) if (!(i in done_)) { pick = i; break }
        done_[pick] = 1; total[kind[pick]] += mins[pick]; print file[pick]
      }
    }' >"$queue"
}

e2e_next() { # queue-file: prints and removes its first file; fails when it is empty
  local queue=$1 f=""
  {
    flock 9
    f=$(head -n 1 "$queue")
    if [ -n "$f" ]; then sed -i 1d "$queue"; fi
  } 9>"$queue.lock"
  [ -n "$f" ] && printf '%s\n' "$f"
}

e2e_lane() { # queue-file
  local queue=$1 file name cfg
  while file=$(e2e_next "$queue"); do
    name=$(basename -- "$file" .e2e.test.ts)
    cfg=$(mktemp --suffix .json)
    node -e 'const fs = require("fs");
const [out, file] = process.argv.slice(1);
const rc = JSON.parse(fs.readFileSync(".mocharc.e2e.json", "utf8"));
fs.writeFileSync(out, JSON.stringify({ ...rc, spec: [file], parallel: false }));' "$cfg" "$file"
    log "$name: started"
    mocha_run "end-to-end tests ($name)" --config "$cfg" 2>&1 | sed -u "s/^/[$name] /"
    log "$name: ended"
    rm -f "$cfg"
  done
}

mocha_run "unit tests" --config .mocharc.unit.json
if [ "${AYNA_SKIP_E2E:-}" = "1" ]; then
  # Listed but not run (mocha --dry-run): the reporter counts each as skipped.
  log "AYNA_SKIP_E2E=1: end-to-end tests listed, not run; they count as skipped"
  mocha_run "end-to-end tests (dry run)" --config .mocharc.e2e.json --dry-run --no-parallel
  echo '{"passed":0,"failed":0,"skipped":1}' >>"$tally"
  log "skipped: no test host, bridge, NAT rule or mount left behind"
else
  e2e_tmp=$(mktemp -d)
  e2e_queue "$e2e_tmp/queue" test/e2e/*.e2e.test.ts
  # Types were checked above (tsc --noEmit): each file's run only transpiles.
  export TS_NODE_TRANSPILE_ONLY=true
  e2e_lane "$e2e_tmp/queue" &
  e2e_lane "$e2e_tmp/queue" &
  wait
  unset TS_NODE_TRANSPILE_ONLY
  rm -rf "$e2e_tmp"
  check "no test host, bridge, NAT rule or mount left behind" bash scripts/testhost.sh check-clean
fi

check "golden files unchanged by the run (test/unit/golden)" same_state "$golden_before" "$(golden_state)"
check "tests left the clone as they found it" same_state "$clone_before" "$(clone_state)"

summary=$(node test/support/tally.js sum "$tally") || summary="0 passed, 1 failed"
# What failed, just above the closing line: the end of the output is what CI shows.
node test/support/tally.js failures "$tally" || echo "FAILED (the tally could not be read)"
echo "$summary"
case "$summary" in *", 0 failed"*) exit 0 ;; *) exit 1 ;; esac
