#!/bin/bash
# ayna-release: the host-side release tool of one project, installed as
# /opt/ayna/{project}/bin/ayna-release by ayna-deploy (standard v2.0 deploy
# steps 1-9). Do not edit on a host: the next `pulumi up` rewrites it.
# Run, it calls main; sourced (test/unit/releaseTool.test.ts), it only defines
# its steps, so each can be called alone.
# shellcheck disable=SC2154 # settings are rendered in place of the marker below
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8
#@SETTINGS@
# Only the unit tests set this, to work in a scratch tree. On a host nothing
# does: the tool runs as a transient unit that gets AYNA_ACTOR alone.
ROOT=${AYNA_RELEASE_ROOT:-$ROOT}
ENV_FILE=$ROOT/shared/.env.$STAGE
UNIT_DIR=${AYNA_UNIT_DIR:-/etc/systemd/system}
RELEASES=$ROOT/releases
VENVS=$ROOT/venvs
LOCK=$ROOT/.deploy-lock
AUDIT=$ROOT/logs/deploy-audit.log
POLL_INTERVAL=0.3 # seconds between two health requests
OWN_LOCK=
HEALTH_ANSWER= # the last answer poll_health got, for the failure message
HEALTH_NOTE=   # how poll_health used its budget, when it stretched it
STRETCHED=     # the services that answered only past their budget, for the audit log
PROC=${AYNA_PROC:-/proc} # only the unit tests move it
declare -A RESTARTS=() # per role: NRestarts once the release was applied
declare -A STARTED=()  # per role: when its unit was (re)started for the release
# The bundle (--bundle): the env file and unit files this release runs with,
# staged in a root-only directory and installed only inside the gated switch.
STAGING=$ROOT/.staging
BUNDLE=
ENV_CHANGED=0   # the env file's content differs from the installed one
ENV_REWRITE=0   # it must be written (content, mode or owner differ)
UNITS_CHANGED=() # unit files that differ from the installed ones
UNITS_OBSOLETE=() # installed unit files of the project the bundle no longer has
OLD_ENV_B64=    # the env file before the switch, kept in memory only
HAD_ENV=0
INSTALLED=0     # the bundle is in place (a failure must restore the old one)
RUN_ENV=$ENV_FILE # the env file candidates and one-shot commands run with

say() { printf '%s\n' "$*" >&2 2>/dev/null || true; }
result() { printf 'release=%s previous=%s\n' "$1" "$2" 2>/dev/null || true; }
die() { say "ayna-release: $1"; exit "${2:-1}"; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

audit() { # result from to sha detail
  local line
  line=$(printf '%s\tactor=%s\tfrom=%s\tto=%s\tsha=%s\tresult=%s\t%s' "$(now)" "${AYNA_ACTOR:-unknown}" "$2" "$3" "$4" "$1" "${5:-}")
  printf '%s\n' "$line" >>"$AUDIT"
}

# --- the deploy lock: a directory (mkdir is atomic) with its holder's info ---

boot_id() { cat /proc/sys/kernel/random/boot_id; }

lock_info() { cat "$LOCK/info" 2>/dev/null || echo "owner=unknown"; }

lock_holder_gone() { # the holder's process has exited, or the host rebooted since
  local pid boot
  pid=$(sed -n 's/^pid=//p' "$LOCK/info" 2>/dev/null || true)
  boot=$(sed -n 's/^boot=//p' "$LOCK/info" 2>/dev/null || true)
  [ -n "$pid" ] && { [ "$boot" != "$(boot_id)" ] || ! kill -0 "$pid" 2>/dev/null; }
}

acquire_lock() { # reason
  local tries=0
  while ! mkdir "$LOCK" 2>/dev/null; do
    if lock_holder_gone; then
      say "ayna-release: breaking a stale deploy lock (its holder is gone): $(lock_info | tr '\n' ' ')"
      rm -rf "$LOCK"
      continue
    fi
    tries=$((tries + 1))
    [ "$tries" = 1 ] && say "waiting for the deploy lock: $(lock_info | tr '\n' ' ')"
    if [ "$tries" -ge "$LOCK_WAIT" ]; then
      die "another deploy has held the lock on $(hostname) for over ${LOCK_WAIT}s: $(lock_info | tr '\n' ' ')- if that deploy is dead, break the lock with: sudo $ROOT/bin/ayna-release unlock" 75
    fi
    sleep 1
  done
  OWN_LOCK=1
  printf 'owner=%s\nsince=%s\nreason=%s\npid=%s\nboot=%s\n' "${AYNA_ACTOR:-unknown}" "$(now)" "$1" "$$" "$(boot_id)" >"$LOCK/info"
}

release_lock() { if [ -n "$OWN_LOCK" ]; then rm -rf "$LOCK"; OWN_LOCK=; fi; }

# --- releases on disk ---

# For a write that failed: when the disk is (nearly) full, say so and how to
# make room, since that is then the cause.
space_note() {
  local free
  free=$(df -Pm "$ROOT" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ -n "$free" ] && [ "$free" -lt 64 ]; then
    printf ': the disk holding %s is full (%s MB free) - make room (old logs, journalctl --vacuum-size, files outside %s) and run pulumi up again' "$ROOT" "$free" "$ROOT"
  fi
}

serving() { if [ "$1" = none ]; then echo "nothing was serving before"; else echo "$1 is still serving"; fi; }

previous_release() { cat "$ROOT/.previous-release" 2>/dev/null || true; }

current_release() { basename "$(readlink "$RELEASES/current" 2>/dev/null || echo none)"; }

release_numbers() { # complete releases, ascending
  local d
  for d in "$RELEASES"/v*; do
    [ -f "$d/.ayna-release.json" ] || continue
    basename "$d" | sed -n 's/^v\([0-9][0-9]*\)$/\1/p'
  done | sort -n
}

available_releases() { release_numbers | sed 's/^/v/' | tr '\n' ' '; }

next_release() { echo "v$(($(release_numbers | tail -n 1 | sed 's/^$/0/') + 1))"; }

json_field() { # file key
  # sed quits at the first match itself: `| head -n 1` could fail under pipefail.
  sed -n 's/.*"'"$2"'": *"\([^"]*\)".*/\1/p;T;q' "$1"
}

venv_of() { readlink -f "$RELEASES/$1/.venv" 2>/dev/null || true; }

existing_release() { # checksum venv: the newest complete release of this archive on this environment, if any
  local n
  for n in $(release_numbers | sort -rn); do
    if [ "$(json_field "$RELEASES/v$n/.ayna-release.json" checksum)" = "$1" ] && [ "$(basename "$(venv_of "v$n")")" = "$2" ]; then
      echo "v$n"
      return 0
    fi
  done
}

# What collectstatic's output depends on, conservatively: the environment (the
# installed apps' own static files) and every file of the release that is not
# Python code, plus the settings modules. A release that changes only other
# Python files gets the serving release's static files copied instead.
# Bytecode (__pycache__, written by compile_bytecode) is not an input.
static_inputs_hash() { # dir venv; empty when STATIC_INPUTS is unset (the build always runs)
  [ -n "$STATIC_INPUTS" ] || return 0
  (cd "$1" && find . \( -path ./staticfiles -o -name __pycache__ \) -prune -o -type f \( ! -name '*.py' -o -path "$STATIC_INPUTS" \) ! -name .ayna-release.json.part -print0 |
    sort -z | xargs -0 -r sha256sum | { cat; printf 'venv %s\n' "$2"; } | sha256sum | cut -c1-16)
}

migrations_hash() { # dir: one hash over every migration file of the release; empty when MIGRATE_INPUTS is unset
  [ -n "$MIGRATE_INPUTS" ] || return 0
  (cd "$1" && find . -name __pycache__ -prune -o -path "$MIGRATE_INPUTS" -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-16)
}

switch_to() { # release name; atomic: a new link renamed over the old one
  ln -sfn "$1" "$RELEASES/.current.tmp"
  mv -Tf "$RELEASES/.current.tmp" "$RELEASES/current"
}

# --- the bundle: env file and unit files, installed inside the gated switch ---

# Only the services' own units: the project's other units (its backup timer's
# service) are not the release's to replace or remove.
unit_name_ok() { [[ $1 =~ ^${PROJECT}-(web|api|celery|beat)(\.socket|\.service|-handover\.service)$ ]]; }

read_bundle() { # two base64 lines on stdin: the env file, then "name<TAB>base64" unit lines
  local env_b64 units_b64 name b64
  IFS= read -r env_b64 || die "deploy: --bundle given but stdin holds no env file line"
  IFS= read -r units_b64 || die "deploy: --bundle given but stdin holds no units line"
  rm -rf "$STAGING"
  mkdir -m 0700 "$STAGING"
  mkdir -m 0700 "$STAGING/units" "$STAGING/old-units"
  (umask 077 && printf '%s' "$env_b64" | base64 -d >"$STAGING/env") || die "deploy: the env file in the bundle could not be stored$(space_note)"
  while IFS=$'\t' read -r name b64; do
    [ -n "$name" ] || continue
    unit_name_ok "$name" || die "deploy: refusing unit file name '$name' (not $PROJECT-<role>.service, .socket or -handover.service)"
    printf '%s' "$b64" | base64 -d >"$STAGING/units/$name" || die "deploy: unit $name in the bundle could not be stored$(space_note)"
  done < <(printf '%s' "$units_b64" | base64 -d)
  BUNDLE=1
  RUN_ENV=$STAGING/env
}

installed_units() { # the project's unit files now in UNIT_DIR
  local f
  for f in "$UNIT_DIR/$PROJECT"-*.service "$UNIT_DIR/$PROJECT"-*.socket; do
    [ -f "$f" ] || continue
    unit_name_ok "$(basename "$f")" && basename "$f"
  done
  return 0
}

env_owner_ok() { [ "$(stat -c '%a %U %G' "$ENV_FILE" 2>/dev/null)" = "600 $SERVICE_USER $SERVICE_GROUP" ]; }

bundle_changes() { # sets ENV_CHANGED, ENV_REWRITE, UNITS_CHANGED, UNITS_OBSOLETE
  local f name
  ENV_CHANGED=0 ENV_REWRITE=0 UNITS_CHANGED=() UNITS_OBSOLETE=()
  [ -n "$BUNDLE" ] || return 0
  if ! cmp -s "$STAGING/env" "$ENV_FILE"; then ENV_CHANGED=1 ENV_REWRITE=1; elif ! env_owner_ok; then ENV_REWRITE=1; fi
  for f in "$STAGING/units"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    cmp -s "$f" "$UNIT_DIR/$name" || UNITS_CHANGED+=("$name")
  done
  for name in $(installed_units); do
    [ -f "$STAGING/units/$name" ] || UNITS_OBSOLETE+=("$name")
  done
}

bundle_summary() { # what the bundle changes, for messages and the audit log
  local parts=()
  [ "$ENV_CHANGED" = 1 ] && parts+=("env file")
  [ "$ENV_CHANGED" = 0 ] && [ "$ENV_REWRITE" = 1 ] && parts+=("env file mode/owner")
  [ ${#UNITS_CHANGED[@]} -gt 0 ] && parts+=("units: ${UNITS_CHANGED[*]}")
  [ ${#UNITS_OBSOLETE[@]} -gt 0 ] && parts+=("removed units: ${UNITS_OBSOLETE[*]}")
  local IFS=';'
  printf '%s' "${parts[*]}"
}

write_env() { # source: the env file, atomically, 0600, owned by the service user
  local tmp
  tmp=$(dirname "$ENV_FILE")/.env.tmp.$$
  mkdir -p "$(dirname "$ENV_FILE")"
  install -m 0600 -o "$SERVICE_USER" -g "$SERVICE_GROUP" "$1" "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

write_unit() { # source name
  install -m 0644 -o root -g root "$1" "$UNIT_DIR/.$2.tmp"
  mv -f "$UNIT_DIR/.$2.tmp" "$UNIT_DIR/$2"
}

install_bundle() { # the staged env file and units go live; the old ones are kept to restore
  local name
  [ -n "$BUNDLE" ] || return 0
  HAD_ENV=0
  if [ -f "$ENV_FILE" ]; then HAD_ENV=1 OLD_ENV_B64=$(base64 -w0 "$ENV_FILE"); fi
  for name in "${UNITS_CHANGED[@]}" "${UNITS_OBSOLETE[@]}"; do
    if [ -f "$UNIT_DIR/$name" ]; then cp -p "$UNIT_DIR/$name" "$STAGING/old-units/$name"; fi
  done
  INSTALLED=1
  [ "$ENV_REWRITE" = 0 ] || write_env "$STAGING/env"
  for name in "${UNITS_OBSOLETE[@]}"; do
    systemctl disable --now --quiet "$name" 2>/dev/null || true
    rm -f "$UNIT_DIR/$name"
  done
  for name in "${UNITS_CHANGED[@]}"; do write_unit "$STAGING/units/$name" "$name"; done
  if [ ${#UNITS_CHANGED[@]} -gt 0 ] || [ ${#UNITS_OBSOLETE[@]} -gt 0 ]; then systemctl daemon-reload; fi
  for name in "${UNITS_CHANGED[@]}"; do
    # A handover unit runs only while a release hands over: never enabled.
    case $name in *-handover.service) ;; *) systemctl enable --quiet "$name" ;; esac
  done
  RUN_ENV=$ENV_FILE
}

restore_bundle() { # puts the env file and units back as they were before install_bundle
  local name tmp
  [ "$INSTALLED" = 1 ] || return 0
  if [ "$ENV_REWRITE" = 1 ]; then
    if [ "$HAD_ENV" = 1 ]; then
      tmp=$STAGING/env.old
      (umask 077 && printf '%s' "$OLD_ENV_B64" | base64 -d >"$tmp")
      write_env "$tmp"
      rm -f "$tmp"
    else
      rm -f "$ENV_FILE"
    fi
  fi
  for name in "${UNITS_CHANGED[@]}" "${UNITS_OBSOLETE[@]}"; do
    if [ -f "$STAGING/old-units/$name" ]; then
      write_unit "$STAGING/old-units/$name" "$name"
    else
      systemctl disable --now --quiet "$name" 2>/dev/null || true
      rm -f "$UNIT_DIR/$name"
    fi
  done
  if [ ${#UNITS_CHANGED[@]} -gt 0 ] || [ ${#UNITS_OBSOLETE[@]} -gt 0 ]; then
    systemctl daemon-reload
    for name in "${UNITS_OBSOLETE[@]}"; do
      case $name in *-handover.service) ;; *) systemctl enable --quiet "$name" 2>/dev/null || true ;; esac
    done
  fi
  INSTALLED=0
  RUN_ENV=$ENV_FILE
  say "restored the previous env file and units"
}

record_bundle() { # what verify compares the host with: hashes of the env file and units installed last
  local name
  [ -n "$BUNDLE" ] || return 0
  {
    printf 'env %s\n' "$(sha256sum <"$ENV_FILE" | cut -d' ' -f1)"
    for name in $(installed_units); do printf 'unit %s %s\n' "$name" "$(sha256sum <"$UNIT_DIR/$name" | cut -d' ' -f1)"; done
  } >"$ROOT/.bundle.tmp"
  chmod 0600 "$ROOT/.bundle.tmp"
  mv -f "$ROOT/.bundle.tmp" "$ROOT/.bundle"
}

# --- services ---

unit_of() { printf '%s-%s.service' "$PROJECT" "$1"; }

enabled() { systemctl is-enabled --quiet "$1" 2>/dev/null; }

unit_alive() { systemctl is-active --quiet "$1"; }

unit_logs() { journalctl -u "$1" -n "${2:-20}" --no-pager -o cat >&2 2>/dev/null || true; } # unit [lines]: to stderr

health_url() { printf 'http://127.0.0.1:%s%s' "$2" "$(health_path "$1")"; } # role port: where the serving role answers

fetch_health() { curl -fsS --max-time 2 "$1"; } # url

prepare_runtime() { :; } # once a deploy or a rollback holds the lock (Docker mode: network, volumes, Redis)

unit_changed() { local u; for u in "${UNITS_CHANGED[@]}"; do [ "$u" = "$1" ] && return 0; done; return 1; }

WORKERS_APPLIED=0 # the workers were restarted for the release being applied

# web and api ("http") go first and are checked before the workers ("workers")
# restart, together, in one systemd job each; "all" does both in one go.
apply_release() { # from to [all|http|workers]: make services serve 'to', with the env file and units now installed
  local which=${3:-all} entry role port mode cport ready unit sock
  local -a together=()
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode cport ready <<<"$entry"
    case $which in
      http) [ -n "$port" ] || continue ;;
      workers) [ -z "$port" ] || continue ;;
    esac
    unit=$(unit_of "$role")
    sock="$PROJECT-$role.socket"
    enabled "$unit" || continue
    if unit_changed "$sock"; then
      # A new or changed listening socket: the service hands its port over to
      # systemd, which holds it from then on, across every restart.
      systemctl stop "$unit"
      systemctl restart "$sock"
    fi
    # A unit that fails to come up is the health gate's to judge (and roll back).
    if ! systemctl is-active --quiet "$unit"; then
      start_unit start "$unit" || say "warning: $unit did not start"
    elif [ "$mode" = handover ]; then
      # One role at a time: with web and api handing over side by side (two
      # app boots at once beside the serving workers), all 8 web clients of a
      # CI run timed out together once; one at a time never showed that.
      handover "$role" "$unit" "$ready" "$port"
    else
      together+=("$role")
      continue
    fi
    RESTARTS[$role]=$(systemctl show -P NRestarts "$unit")
    STARTED[$role]=$(date +%s)
  done
  [ "$which" = http ] || WORKERS_APPLIED=1
  if [ ${#together[@]} -gt 0 ]; then
    local -a units=()
    for role in "${together[@]}"; do units+=("$(unit_of "$role")"); done
    restart_units "${units[@]}" || say "warning: ${units[*]} did not restart"
    for role in "${together[@]}"; do
      RESTARTS[$role]=$(systemctl show -P NRestarts "$(unit_of "$role")")
      STARTED[$role]=$(date +%s)
    done
  fi
  # After web and api alone (the gate comes next) the last handover may still drain.
  [ "$which" = http ] || handovers_drained
}

# A restart without a gap: a second server of the new release (the handover
# unit, on the same socket systemd holds) starts beside the old process; only
# then does the role's unit restart, while the handover serves alone; once the
# unit serves again the handover stops. Both load the app before they report
# ready (--preload), so neither takes requests it cannot answer yet. Requests
# in flight finish in the process that took them; queued connections stay in
# the one socket for whichever process accepts next.
#
# The handover is told to stop without waiting for it (--no-block): it drains
# the requests it took (0.5-1 s for gunicorn) while the next role hands over;
# handovers_drained waits for them before the release is judged.
handover() { # role unit ready port
  local h
  h=$(handover_unit "$1")
  handovers_drained "$1" # this role's handover from an earlier apply (a rollback right after a failed gate)
  if start_unit start "$h"; then
    serving_workers "$h" "$3" "$4"
    start_unit restart "$2" || say "warning: $2 did not restart"
    serving_workers "$2" "$3" "$4"
    systemctl stop --no-block "$h" || say "warning: $h did not stop"
  else
    say "warning: $h did not start; restarting $2 without a handover"
    systemctl reset-failed "$h" 2>/dev/null || true
    start_unit restart "$2" || say "warning: $2 did not restart"
  fi
}

# systemctl start|restart, tried again when systemd itself could not spawn the
# unit (Result=resources). systemd 257 sometimes fails a start right after the
# unit's previous process stopped with "Failed to spawn executor: No such file
# or directory" (its cgroup pruned under the new start): seen in CI on busy
# hosts for a handover (a plain restart then cost 8 web requests) and for
# beat in a workers' restart (a healthy release rolled back). A unit whose own
# process fails is not retried: that is the app's failure to judge.
start_unit() { # start|restart unit
  local attempt
  for attempt in 1 2 3; do
    systemctl "$1" "$2" && return 0
    spawn_failed "$2" || return 1
    [ "$attempt" -lt 3 ] || return 1
    say "warning: systemd could not spawn $2 (attempt $attempt of 3); trying again"
    systemctl reset-failed "$2" 2>/dev/null || true
    sleep 0.5
  done
}

spawn_failed() { [ "$(systemctl show -P Result "$1" 2>/dev/null)" = resources ]; }

# Units restarted in one systemctl call (one job each, side by side); any that
# systemd could not spawn is then started on its own, as start_unit does.
restart_units() { # unit...
  systemctl restart "$@" && return 0
  local u rc=0
  for u; do
    systemctl is-active --quiet "$u" && continue
    if spawn_failed "$u"; then
      say "warning: systemd could not spawn $u; trying again"
      systemctl reset-failed "$u" 2>/dev/null || true
      start_unit start "$u" || rc=1
    else
      rc=1
    fi
  done
  return "$rc"
}

handover_unit() { echo "$PROJECT-$1-handover.service"; }

listener_inode() { # port: the inode (hex, as fdinfo shows it) of the socket listening on 127.0.0.1:port
  awk -v a="0100007F:$(printf '%04X' "$1")" '$2 == a && $4 == "0A" { printf "%x\n", $10; exit }' "$PROC/net/tcp" 2>/dev/null
}

# A server is serving once it has workers and each of them accepts. The app is
# preloaded, so a synchronous worker ("fork") accepts as soon as it exists; an
# event-loop worker ("listening") only once the listening socket is registered
# in its epoll set (an fdinfo line naming the socket's inode), which takes a
# moment after the fork and longer when the host is busy.
serving_workers() { # unit fork|listening port
  local deadline pid kids k ready ino=
  deadline=$(($(date +%s) + 10))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    pid=$(main_pid "$1")
    kids=
    if [ "${pid:-0}" != 0 ]; then kids=$(pgrep -P "$pid" || true); fi
    if [ -n "$kids" ]; then
      ready=1
      if [ "${2:-fork}" = listening ]; then
        [ -n "$ino" ] || ino=$(listener_inode "$3")
        for k in $kids; do
          [ -n "$ino" ] && grep -qs "^tfd: .* ino:$ino " "$PROC/$k"/fdinfo/* || ready=0
        done
      fi
      [ "$ready" = 0 ] || return 0
    fi
    sleep 0.1
  done
  say "warning: $1 has no worker accepting after 10s"
}

# Every handover told to stop (or only ROLE's) has stopped: systemd's own stop
# timeout ends a drain that hangs; a handover still up after 300 s is named.
handovers_drained() { # [role]
  local entry role mode h deadline
  deadline=$(($(date +%s) + 300))
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role _ mode _ <<<"$entry"
    [ "$mode" = handover ] && [ "${1:-$role}" = "$role" ] || continue
    h=$(handover_unit "$role")
    while [[ $(systemctl show -P ActiveState "$h") =~ ^(active|activating|deactivating|reloading)$ ]]; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        say "warning: $h is still running 300s after it was told to stop"
        break
      fi
      sleep 0.1
    done
  done
}

# After an interrupted release: a handover still serving beside a running unit stops.
stop_handovers() {
  local entry role port mode
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode _ <<<"$entry"
    [ "$mode" = handover ] || continue
    if systemctl is-active --quiet "$(handover_unit "$role")" && systemctl is-active --quiet "$(unit_of "$role")"; then
      systemctl stop "$(handover_unit "$role")" || true
    fi
  done
}

names_release() { # answer release: does the health answer name this release? (always yes for an app that names none)
  [ "$HEALTH_NAMES_RELEASE" = 1 ] || return 0
  local key='"release": *"'
  [[ $1 =~ $key"$2"\" ]]
}

health_path() { printf '%s' "${HEALTH_PATHS[$1]:-$HEALTH_PATH}"; } # role

# CPU time (clock ticks: user and system, its own and its waited-for
# children's) that a process and its children have used so far.
cpu_ticks() { # pid
  local p t=0 line
  local -a f
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    line=$(cat "$PROC/$p/stat" 2>/dev/null) || continue
    # After "pid (comm) ": state is [0], utime [11], stime [12], cutime [13], cstime [14].
    read -r -a f <<<"${line##*) }"
    t=$((t + ${f[11]:-0} + ${f[12]:-0} + ${f[13]:-0} + ${f[14]:-0}))
  done
  echo "$t"
}

main_pid() { systemctl show -P MainPID "$1" 2>/dev/null; } # unit: 0 when it has no process

# The one health poll, for the candidates, the real ports after the switch and
# the check after a rollback: HEALTH_PASSES answers in a row that name the
# release. It fails at once when the watched unit (a candidate's) is no longer
# running. The deadline is a budget for progress, not a wall clock: a service
# still starting on a host short of CPU (8 releases on 2 cores) keeps using
# CPU and does not answer yet; one that answers an error status has decided,
# and one that hangs does not use CPU. So past the deadline, while the URL
# gives no HTTP answer (refused, timed out), the poll goes on as long as the
# busy unit's same main process used at least BUSY_TICKS of CPU in each
# BUSY_SECONDS, until twice the budget again; answering, idle, restarted (a
# crash loop) or without a busy unit, it fails. HEALTH_ANSWER keeps the last
# answer, HEALTH_NOTE says how the budget was used when it was stretched.
BUSY_SECONDS=2
BUSY_TICKS=5 # 50 ms of CPU in 2 s: far above an idle server's timers, far below a boot
poll_health() { # url release deadline [unit] [busy unit, default: unit]
  local url=$1 rel=$2 deadline=$3 unit=${4:-} busy=${5:-${4:-}} passes=0 rc now late pid pid0='' ticks t0=0 ticks0=0 cap
  cap=$((deadline + 2 * HEALTH_TIMEOUT))
  HEALTH_ANSWER=
  HEALTH_NOTE=
  while :; do
    HEALTH_ANSWER=$(fetch_health "$url" 2>&1) && rc=0 || rc=$?
    if [ "$rc" = 0 ] && names_release "$HEALTH_ANSWER" "$rel"; then
      passes=$((passes + 1))
    else
      passes=0
    fi
    if [ "$passes" -ge "$HEALTH_PASSES" ]; then
      if [ "$t0" != 0 ]; then
        late=$(($(date +%s) - deadline)) # one reading, so the message and the audit log agree
        say "health: $busy was still starting (using CPU) when the ${HEALTH_TIMEOUT}s budget ran out; it answered ${late}s past it"
        STRETCHED="${STRETCHED:+$STRETCHED, }$busy +${late}s"
      fi
      return 0
    fi
    if [ -n "$unit" ] && ! unit_alive "$unit"; then return 1; fi
    now=$(date +%s)
    if [ "$now" -ge "$deadline" ] && [ "$passes" = 0 ]; then
      # An HTTP answer (curl's 0 or 22) that does not pass, an error status included, is the server's own verdict.
      [ -n "$busy" ] && [ "$rc" != 0 ] && [ "$rc" != 22 ] || return 1
      pid=$(main_pid "$busy")
      [ "${pid:-0}" != 0 ] || return 1
      ticks=$(cpu_ticks "$pid")
      if [ "$t0" = 0 ]; then
        t0=$now ticks0=$ticks pid0=$pid
      elif [ "$pid" != "$pid0" ]; then
        # A server that crashes and is started again burns CPU too: that is no progress.
        HEALTH_NOTE=" ($busy restarted past the budget)"
        return 1
      elif [ $((now - t0)) -ge "$BUSY_SECONDS" ]; then
        if [ $((ticks - ticks0)) -lt "$BUSY_TICKS" ]; then
          HEALTH_NOTE=" (past the budget it used $((ticks - ticks0)) ticks of CPU in ${BUSY_SECONDS}s: idle, not starting)"
          return 1
        fi
        t0=$now ticks0=$ticks
      fi
      if [ "$now" -ge "$cap" ]; then
        HEALTH_NOTE=" (it was still using CPU at three times the budget)"
        return 1
      fi
    fi
    sleep "$POLL_INTERVAL"
  done
}

# poll_health for several URLs side by side, one subshell each: one after the
# other, each service's passes (HEALTH_PASSES answers, POLL_INTERVAL apart)
# waited for the one before. Results are read back in the order given, so the
# first failure reported is the one a sequential poll would have met; the polls
# after it are stopped. Sets POLL_FAILED (index of that failure, or -1) and,
# for it, HEALTH_ANSWER and HEALTH_NOTE; STRETCHED gets every poll's note.
POLL_FAILED=-1
# The polls of a poll_side_by_side under way and their results' directory,
# for the EXIT trap: a tool stopped mid-gate leaves neither behind.
POLL_DIR=
POLL_PIDS=()

stop_polls() {
  if [ ${#POLL_PIDS[@]} -gt 0 ]; then kill "${POLL_PIDS[@]}" 2>/dev/null || true; fi
  POLL_PIDS=()
  if [ -n "$POLL_DIR" ]; then rm -rf "$POLL_DIR"; fi
  POLL_DIR=
}

poll_side_by_side() { # release deadline spec...: spec "url|unit|busy unit", as poll_health takes them
  local rel=$1 deadline=$2 dir i k n rc stretched note url unit busy
  shift 2
  local -a specs=("$@") polls=()
  POLL_FAILED=-1
  n=${#specs[@]}
  [ "$n" -gt 0 ] || return 0
  # The results come back through files; without a place for them (a full
  # /tmp) the polls run one after the other here, as before, rather than
  # failing a healthy release.
  if ! dir=$(mktemp -d "${TMPDIR:-/tmp}/ayna-poll.XXXXXX" 2>/dev/null); then
    for ((i = 0; i < n; i++)); do
      IFS='|' read -r url unit busy <<<"${specs[$i]}"
      poll_health "$url" "$rel" "$deadline" "$unit" "$busy" || { POLL_FAILED=$i; return 1; }
    done
    return 0
  fi
  POLL_DIR=$dir
  for ((i = 0; i < n; i++)); do
    IFS='|' read -r url unit busy <<<"${specs[$i]}"
    (
      STRETCHED=
      rc=0
      poll_health "$url" "$rel" "$deadline" "$unit" "$busy" || rc=$?
      printf '%s' "$HEALTH_ANSWER" >"$dir/$i.answer"
      printf '%s\n%s\n%s\n' "$STRETCHED" "$HEALTH_NOTE" "$rc" >"$dir/$i.tmp" && mv "$dir/$i.tmp" "$dir/$i"
    ) &
    polls+=($!)
    POLL_PIDS=("${polls[@]}")
  done
  for ((i = 0; i < n; i++)); do
    wait "${polls[$i]}" || true
    [ "$POLL_FAILED" -lt 0 ] || continue
    { IFS= read -r stretched && IFS= read -r note && read -r rc; } <"$dir/$i" 2>/dev/null || {
      stretched='' note=' (the poll ended without a result)' rc=1
    }
    [ -z "$stretched" ] || STRETCHED="${STRETCHED:+$STRETCHED, }$stretched"
    if [ "$rc" != 0 ]; then
      POLL_FAILED=$i
      HEALTH_NOTE=$note
      HEALTH_ANSWER=$(cat "$dir/$i.answer" 2>/dev/null || true)
      # The polls after it are not waited for; their subshells stop here.
      for ((k = i + 1; k < n; k++)); do kill "${polls[$k]}" 2>/dev/null || true; done
    fi
  done
  POLL_PIDS=()
  rm -rf "$dir"
  POLL_DIR=
  [ "$POLL_FAILED" -lt 0 ]
}

http_gate() { # release: every HTTP service answers 200 naming it
  local rel=$1 entry role port mode unit deadline i j
  local -a units=() urls=() specs=()
  deadline=$(($(date +%s) + HEALTH_TIMEOUT))
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode _ <<<"$entry"
    [ -n "$port" ] || continue
    unit=$(unit_of "$role")
    enabled "$unit" || continue
    units+=("$unit")
    urls+=("$(health_url "$role" "$port")")
    specs+=("${urls[-1]}||$unit")
  done
  if ! poll_side_by_side "$rel" "$deadline" "${specs[@]}"; then
    i=$POLL_FAILED
    for ((j = 0; j < i; j++)); do say "health ok: ${urls[$j]} serves $rel"; done
    say "health check failed: ${urls[$i]} did not answer 200 for release $rel within ${HEALTH_TIMEOUT}s$HEALTH_NOTE; last answer: ${HEALTH_ANSWER:0:300}"
    say "last log lines of ${units[$i]}:"
    unit_logs "${units[$i]}"
    return 1
  fi
  for i in "${!urls[@]}"; do say "health ok: ${urls[$i]} serves $rel"; done
}

unit_states() { # unit...: a line "unit state main-pid restarts" per unit, from one systemctl call
  systemctl show -p Id -p ActiveState -p MainPID -p NRestarts -- "$@" | awk -F= '
    $1 == "Id" { id = $2 } $1 == "ActiveState" { st = $2 } $1 == "MainPID" { pid = $2 } $1 == "NRestarts" { nr = $2 }
    /^$/ { if (id != "") print id, st, pid, nr; id = "" }
    END { if (id != "") print id, st, pid, nr }'
}

# The watch window: a service that answers at once but dies a few seconds
# later (a crash on a timer, a worker that exits after its first task) must
# fail the release while the previous one can still come back. Every service
# keeps the same main process, with no restart, until WATCH seconds after its
# own start; then the HTTP services answer once more.
watch_services() { # release
  local rel=$1 entry role port mode unit until=0 t u st pid nr seen url
  local -A pids=() role_of=()
  local -a units=()
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode _ <<<"$entry"
    unit=$(unit_of "$role")
    enabled "$unit" || continue
    units+=("$unit")
    role_of[$unit]=$role
    t=$((${STARTED[$role]:-0} + WATCH))
    [ "$t" -le "$until" ] || until=$t
  done
  [ ${#units[@]} -gt 0 ] || return 0
  while read -r u st pid nr; do pids[${role_of[$u]}]=$pid; done < <(unit_states "${units[@]}")
  # One systemctl call per round for every unit: the window costs next to no CPU.
  while :; do
    seen=0
    while read -r u st pid nr; do
      role=${role_of[$u]:-}
      [ -n "$role" ] || continue
      seen=$((seen + 1))
      if [[ ! $st =~ ^(active|reloading)$ ]] || [ "$pid" != "${pids[$role]:-}" ] || [ "$nr" != "${RESTARTS[$role]:-0}" ]; then
        say "health check failed: $u stopped or restarted $(($(date +%s) - ${STARTED[$role]:-0}))s after it started (it must stay up for ${WATCH}s)"
        say "last log lines of $u:"
        unit_logs "$u"
        return 1
      fi
    done < <(unit_states "${units[@]}")
    if [ "$seen" -ne ${#units[@]} ]; then
      say "health check failed: systemd did not report on every unit of $rel (${units[*]})"
      return 1
    fi
    [ "$(date +%s)" -lt "$until" ] || break
    sleep 0.5
  done
  [ "$WATCH" -gt 0 ] || return 0
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode _ <<<"$entry"
    if [ -z "$port" ] || [ -z "${pids[$role]:-}" ]; then continue; fi
    url=$(health_url "$role" "$port")
    if ! poll_health "$url" "$rel" "$(($(date +%s) + HEALTH_TIMEOUT))"; then
      say "health check failed: $url stopped answering for release $rel during the watch window; last answer: ${HEALTH_ANSWER:0:300}"
      return 1
    fi
  done
  say "health ok: every service of $rel stayed up for ${WATCH}s"
}

# --- candidates: blue-green before the switch ---
# Each HTTP service of the new release runs as a candidate on its reserved port
# and must answer healthy, naming the release, before `current` moves; until
# then no request reaches the new code.

candidate_unit() { printf '%s-%s-candidate.service' "$PROJECT" "$1"; }

candidate_units() { # the candidate unit of every role that has a candidate port, one per line
  local entry role port mode cport
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode cport _ <<<"$entry"
    [ -z "$cport" ] || printf '%s\n' "$(candidate_unit "$role")"
  done
}

# All in one systemctl call, so they stop side by side: one after the other,
# the api's graceful exit (0.9 s) waited for the web's (0.4 s) first.
stop_candidates() {
  local -a units
  mapfile -t units < <(candidate_units)
  [ ${#units[@]} -gt 0 ] || return 0
  systemctl stop "${units[@]}" 2>/dev/null || true
  systemctl reset-failed "${units[@]}" 2>/dev/null || true
}

# Candidates that passed are told to stop without waiting for them: no request
# but the gate's ever reached them, yet their graceful exit (0.9 s, the api's
# drain) held up the switch. The stop runs beside the switch; the next
# candidate_check, and the tool's exit, wait for it (stop_candidates).
retire_candidates() {
  local -a units
  mapfile -t units < <(candidate_units)
  [ ${#units[@]} -gt 0 ] || return 0
  systemctl stop --no-block "${units[@]}" 2>/dev/null || true
}

start_candidates() { # dir
  local dir=$1 entry role port mode cport ref
  local -a cmd
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode cport _ <<<"$entry"
    [ -n "$cport" ] || continue
    ref="CANDIDATE_${role}[@]"
    cmd=("${!ref}")
    systemd-run --quiet --collect --service-type=exec --unit="$(candidate_unit "$role")" \
      --uid="$SERVICE_USER" --gid="$SERVICE_GROUP" \
      -p EnvironmentFile="$RUN_ENV" -p WorkingDirectory="$dir" \
      -p ProtectSystem=strict -p ReadWritePaths="$ROOT/shared $ROOT/logs" \
      -p PrivateTmp=yes -p NoNewPrivileges=yes \
      -E PATH="$dir/.venv/bin:/usr/bin:/bin" -- "${cmd[@]//@RELEASE@/$dir}"
  done
}

workers_load() { # dir release: a worker has no port; its code must at least load, as it does at start
  local dir=$1 rel=$2 entry role port mode cport ref rc
  local -a cmd
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode cport _ <<<"$entry"
    declare -p "CHECK_$role" >/dev/null 2>&1 || continue
    ref="CHECK_${role}[@]"
    cmd=("${!ref}")
    rc=0
    run_step "$role-check" "$dir" "${cmd[@]//@RELEASE@/$dir}" || rc=$?
    if [ "$rc" != 0 ]; then
      say "health check failed: the $role code of release $rel does not load (exit status $rc):"
      printf '%s\n' "$STEP_OUT" | tail -n 25 >&2 2>/dev/null || true
      return 1
    fi
    say "candidate ok: $role code of $rel loads ($(printf '%s' "$STEP_OUT" | tail -n 1))"
  done
}

candidate_check() { # dir release
  local dir=$1 rel=$2 entry role port mode cport deadline i j
  local -a roles=() cports=() urls=() specs=()
  stop_candidates
  start_candidates "$dir"
  if ! workers_load "$dir" "$rel"; then
    stop_candidates
    return 1
  fi
  deadline=$(($(date +%s) + HEALTH_TIMEOUT))
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode cport _ <<<"$entry"
    [ -n "$cport" ] || continue
    roles+=("$role")
    cports+=("$cport")
    urls+=("http://127.0.0.1:$cport$(health_path "$role")")
    specs+=("${urls[-1]}|$(candidate_unit "$role")|")
  done
  if ! poll_side_by_side "$rel" "$deadline" "${specs[@]}"; then
    i=$POLL_FAILED
    for ((j = 0; j < i; j++)); do say "candidate ok: ${roles[$j]} of $rel is healthy on 127.0.0.1:${cports[$j]}"; done
    say "health check failed: ${roles[$i]} of release $rel did not answer 200 on its candidate port ${cports[$i]} (${urls[$i]}) within ${HEALTH_TIMEOUT}s$HEALTH_NOTE; last answer: ${HEALTH_ANSWER:0:300}"
    say "last log lines of the candidate:"
    journalctl -u "$(candidate_unit "${roles[$i]}")" -n 25 --no-pager -o cat >&2 2>/dev/null || true
    stop_candidates
    return 1
  fi
  for i in "${!roles[@]}"; do say "candidate ok: ${roles[$i]} of $rel is healthy on 127.0.0.1:${cports[$i]}"; done
  retire_candidates
}

run_as_app() { # [--unit NAME] dir command...: the service's user, env file and confinement
  local -a named=()
  if [ "$1" = --unit ]; then
    named=("--unit=$2")
    shift 2
  fi
  local dir=$1
  shift
  systemd-run --quiet --wait --pipe --collect --service-type=exec "${named[@]}" \
    --uid="$SERVICE_USER" --gid="$SERVICE_GROUP" \
    -p EnvironmentFile="$RUN_ENV" -p WorkingDirectory="$dir" \
    -p ProtectSystem=strict -p ReadWritePaths="$ROOT/shared $ROOT/logs $dir/staticfiles" \
    -p PrivateTmp=yes -p NoNewPrivileges=yes \
    -E PATH="$dir/.venv/bin:/usr/bin:/bin" -- "$@"
}

# What systemd saw of a step's unit since an epoch second (its own lines, such
# as a kill or a failed namespace set-up), on one line.
unit_account() { # unit since
  local seen
  seen=$(journalctl -u "$1" --since "@$2" -n 5 --no-pager -o cat 2>/dev/null | tr '\n' ' ')
  printf '%s' "${seen:-systemd logged nothing for $1}"
}

# One of the app's own steps (a worker's check, migrations, the static files
# build) under a unit named for it and this run, its output in STEP_OUT. A
# step that ends non-zero without a word never ran the app's code (a
# traceback would say why): it was stopped from outside it, so what systemd
# saw is said and it runs once more.
run_step() { # name dir command...
  local name=$1 unit="$PROJECT-$1-$$.service" dir=$2 rc=0 since
  shift 2
  since=$(date +%s)
  STEP_OUT=$(run_as_app --unit "$unit" "$dir" "$@" 2>&1) || rc=$?
  if [ "$rc" != 0 ] && [ -z "${STEP_OUT//[[:space:]]/}" ]; then
    say "the $name step ended with status $rc and printed nothing ($(unit_account "$unit" "$since")): running it once more"
    rc=0
    since=$(date +%s)
    STEP_OUT=$(run_as_app --unit "$unit" "$dir" "$@" 2>&1) || rc=$?
    if [ "$rc" != 0 ] && [ -z "${STEP_OUT//[[:space:]]/}" ]; then STEP_OUT="($(unit_account "$unit" "$since"))"; fi
  fi
  return "$rc"
}

# --- retention ---

in_use_releases() { # releases a service's main process still has as its working directory
  local entry role port mode pid
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode _ <<<"$entry"
    pid=$(systemctl show -P MainPID "$(unit_of "$role")" 2>/dev/null || echo 0)
    if [ "$pid" != 0 ]; then basename "$(readlink "/proc/$pid/cwd" 2>/dev/null || echo none)"; fi
  done | sort -u
}

env_in_use() { # venv dir: does a kept release use it?
  local d
  for d in "$RELEASES"/v*; do
    if [ "$(readlink -f "$d/.venv" 2>/dev/null)" = "$1" ]; then return 0; fi
  done
  return 1
}

# Keep the newest KEEP releases, and always current, previous and any release
# a running service still works in; then environments no kept release uses
# (an hour after they were built, so one being built is safe).
prune() {
  local keep_list cur prev n d h in_use
  cur=$(current_release)
  prev=$(previous_release)
  keep_list=$(release_numbers | tail -n "$KEEP" | sed 's/^/v/')
  in_use=$(in_use_releases)
  for n in $(release_numbers); do
    d="v$n"
    if [ "$d" = "$cur" ] || [ "$d" = "$prev" ]; then continue; fi
    # Matched in the shell: `printf ... | grep -q` fails now and then under
    # pipefail (grep exits at its match, printf's next write gets EPIPE),
    # and then removed a release it had to keep (seen in CI: the newest).
    case $'\n'"$keep_list"$'\n'"$in_use"$'\n' in *$'\n'"$d"$'\n'*) continue ;; esac
    rm -rf "${RELEASES:?}/$d"
    say "pruned release $d"
  done
  rm -rf "$RELEASES"/.v*.tmp
  for h in "$VENVS"/*; do
    [ -d "$h" ] || continue
    if env_in_use "$h"; then continue; fi
    if [ -n "$(find "$h" -maxdepth 0 -mmin +60)" ]; then
      rm -rf "$h"
      say "pruned environment $(basename "$h")"
    fi
  done
  return 0
}

# --- the deploy steps ---

# Python compiles a module it finds no bytecode for on every import, and the
# services cannot write __pycache__ (the release and the environment are
# root's): without this, each start of the app compiled Django and the rest
# again (importing the sample app's web, api and worker modules in one
# process: 2.7 CPU-seconds without bytecode, 0.9 with it). So bytecode is
# written here, as root, once per environment and once per release, by the
# stdlib's compileall under -I -S (no site: no package's .pth file runs as
# root). A file that does not compile is left to fail where the app imports it.
compile_bytecode() { # dir venv
  local py=$VENVS/$2/bin/python
  [ -x "$py" ] || return 0
  if [ ! -f "$VENVS/$2/.ayna-bytecode" ]; then
    "$py" -I -S -m compileall -q -j 0 "$VENVS/$2/lib" >/dev/null 2>&1 || true
    touch "$VENVS/$2/.ayna-bytecode"
  fi
  "$py" -I -S -m compileall -q "$1" >/dev/null 2>&1 || true
}

unpack_release() { # to sha checksum venv; tar.gz on stdin. (1)-(3): the release directory and its environment
  local to=$1 sha=$2 checksum=$3 venv=$4 tmp=$RELEASES/.$1.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # The archive's checksum (that of its uncompressed tar, the same on every
  # deploying machine) is verified before use.
  cat >"$tmp/.archive.tar.gz" || { rm -rf "$tmp"; die "deploy: the upload could not be stored$(space_note); nothing changed"; }
  # A gzip error (cut off, junk after the end) spoils the hash.
  [ "$({ gzip -dc <"$tmp/.archive.tar.gz" 2>/dev/null || echo damaged; } | sha256sum | cut -d' ' -f1)" = "$checksum" ] ||
    { rm -rf "$tmp"; die "deploy: archive checksum mismatch (upload damaged or cut off); nothing changed"; }
  tar -xzf "$tmp/.archive.tar.gz" -C "$tmp" --no-same-owner ||
    { rm -rf "$tmp"; die "deploy: the archive could not be unpacked$(space_note); nothing changed"; }
  rm -f "$tmp/.archive.tar.gz"
  compile_bytecode "$tmp" "$venv"
  printf '{"release": "%s", "sha": "%s", "checksum": "%s", "venv": "%s", "created": "%s"}\n' "$to" "$sha" "$checksum" "$venv" "$(now)" >"$tmp/.ayna-release.json.part"
  # The release's dependencies: the environment keyed by its lockfile.
  ln -sfn "../../venvs/$venv" "$tmp/.venv"
  install -d -o "$SERVICE_USER" -g "$SERVICE_GROUP" -m 0750 "$tmp/staticfiles"
  chown -R root:"$SERVICE_GROUP" "$tmp"
  chown "$SERVICE_USER" "$tmp/staticfiles"
  chmod -R g+rX,o-rwx "$tmp"
  # Others may enter (never list) the release, to reach its static files:
  # Caddy serves them from disk when proxy.staticPath is on.
  chmod o+x "$tmp"
  mv -T "$tmp" "$RELEASES/$to"
}

app_step() { # name dir command...: run_step, its output on stderr once it ends (side by side steps do not interleave)
  local rc=0
  run_step "$@" || rc=$?
  if [ -n "$STEP_OUT" ]; then printf '%s\n' "$STEP_OUT" >&2; fi
  return "$rc"
}

prepare_release() { # from to sha venv. (4)-(5): migrations once per release and static files, before the switch
  local from=$1 to=$2 sha=$3 dir=$RELEASES/$2 mig static mig_pid="" static_pid=""
  [ ${#MIGRATE[@]} -gt 0 ] || [ ${#STATIC[@]} -gt 0 ] || return 0
  # Side by side; each is skipped when its inputs are exactly those of the
  # serving release: its migrations are applied, its static files built.
  mig=$(migrations_hash "$dir")
  static=$(static_inputs_hash "$dir" "$4")
  sed -i 's/}$/, "migrations": "'"$mig"'", "static": "'"$static"'"}/' "$dir/.ayna-release.json.part"
  if [ ${#MIGRATE[@]} -eq 0 ]; then
    :
  elif [ -n "$mig" ] && [ "$from" != none ] && [ "$(json_field "$RELEASES/$from/.ayna-release.json" migrations)" = "$mig" ]; then
    say "migrations unchanged since $from: not run"
  else
    app_step migrate "$dir" "${MIGRATE[@]//@RELEASE@/$dir}" &
    mig_pid=$!
  fi
  if [ ${#STATIC[@]} -eq 0 ]; then
    :
  elif [ -n "$static" ] && [ "$from" != none ] && [ "$(json_field "$RELEASES/$from/.ayna-release.json" static)" = "$static" ] &&
    [ -d "$RELEASES/$from/staticfiles" ]; then
    say "static inputs unchanged since $from: its static files copied, the build not run"
    cp -a "$RELEASES/$from/staticfiles/." "$dir/staticfiles/"
  else
    app_step static "$dir" "${STATIC[@]//@RELEASE@/$dir}" &
    static_pid=$!
  fi
  if [ -n "$mig_pid" ] && ! wait "$mig_pid"; then
    if [ -n "$static_pid" ]; then wait "$static_pid" || true; fi
    rm -rf "$dir"
    audit failed "$from" "$to" "$sha" "migrations failed"
    die "deploy: migrations failed; $(serving "$from")" 4
  fi
  if [ -n "$static_pid" ] && ! wait "$static_pid"; then
    rm -rf "$dir"
    audit failed "$from" "$to" "$sha" "static build failed"
    die "deploy: the static files build (${STATIC[*]:0:4}) failed; $(serving "$from")" 4
  fi
  # Static files are public: readable by all (Caddy), whoever built or copied them.
  [ ${#STATIC[@]} -eq 0 ] || chmod -R o+rX "$dir/staticfiles"
}

# While a switch is unconfirmed (from the bundle's install until the gate's
# verdict), .in-flight names both releases: a tool killed in between (a
# reboot, a kill) leaves it, and the next deploy knows `current` was never
# checked and what served before it.
IN_FLIGHT=$ROOT/.in-flight

interrupted_from() { # current: the release that served before an interrupted switch to it, else current
  local f t
  if [ ! -f "$IN_FLIGHT" ]; then echo "$1"; return 0; fi
  f=$(sed -n 's/^from=//p' "$IN_FLIGHT")
  t=$(sed -n 's/^to=//p' "$IN_FLIGHT")
  rm -f "$IN_FLIGHT"
  if [ "$t" = "$1" ] && [ "$f" != "$t" ] && [ -n "$f" ] && [ "$f" != none ] && [ -f "$RELEASES/$f/.ayna-release.json" ]; then
    say "the switch from $f to $t was interrupted before its health gate passed: $t is checked now, and $f comes back if it fails"
    echo "$f"
  else
    echo "$1"
  fi
}

bundle_digest() { # one hash over the env file and unit files installed now
  local name
  {
    sha256sum <"$ENV_FILE" 2>/dev/null || true
    for name in $(installed_units); do printf '%s ' "$name" && sha256sum <"$UNIT_DIR/$name"; done
  } | sha256sum | cut -d' ' -f1
}

# A release that stayed up through a full watch window is proven: what it ran
# with is kept beside it (.ayna-proven). Switching back to it under the same
# env file and units (a rollback) needs no window of its own: its services are
# still checked once and its HTTP services still pass the health gate.
proven_under() { # release digest: the seconds it was watched under this digest, when at least WATCH
  local f=$RELEASES/$1/.ayna-proven secs
  [ -f "$f" ] && [ "$(sed -n 's/^bundle=//p' "$f")" = "$2" ] || return 1
  secs=$(sed -n 's/^seconds=//p' "$f")
  [[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -ge "$WATCH" ] || return 1
  echo "$secs"
}

activate() { # from to sha action: env file and units, (6) switch, (7) reload, (8) health gate, (9) rollback
  local from=$1 to=$2 sha=$3 action=$4 changes digest proven='' WATCH=$WATCH
  changes=$(bundle_summary)
  if ! printf 'from=%s\nto=%s\n' "$from" "$to" >"$IN_FLIGHT"; then
    # A part-written record would tell the next deploy that a switch happened.
    rm -f "$IN_FLIGHT"
    die "deploy: the switch record $IN_FLIGHT could not be stored$(space_note); nothing was switched, $(serving "$from")" 4
  fi
  install_bundle
  digest=$(bundle_digest)
  if [ "$from" != none ] && [ "$from" != "$to" ] && [ "$WATCH" -gt 0 ] && proven=$(proven_under "$to" "$digest"); then
    say "watch: $to stayed up for ${proven}s under this env file and units when it served before; its services are checked once"
    WATCH=0 # local: the window of this switch only
  fi
  switch_to "$to"
  WORKERS_APPLIED=0
  apply_release "$from" "$to" http
  if http_gate "$to" && apply_release "$from" "$to" workers && watch_services "$to"; then
    rm -f "$RELEASES/$to/.ayna-failed"
    if [ -z "$proven" ] && [ "$WATCH" -gt 0 ]; then
      printf 'seconds=%s\nbundle=%s\nat=%s\n' "$WATCH" "$digest" "$(now)" >"$RELEASES/$to/.ayna-proven.tmp" &&
        mv -f "$RELEASES/$to/.ayna-proven.tmp" "$RELEASES/$to/.ayna-proven" ||
        say "warning: could not record that $to is proven; a switch back to it will watch it again"
    fi
    [ "$from" = none ] || [ "$from" = "$to" ] || echo "$from" >"$ROOT/.previous-release"
    record_bundle
    rm -f "$IN_FLIGHT"
    audit ok "$from" "$to" "$sha" "$action${changes:+ ($changes)}${STRETCHED:+; health budget stretched: $STRETCHED}"
    prune
    result "$to" "$(previous_release)"
    return 0
  fi
  [ "$from" = "$to" ] || touch "$RELEASES/$to/.ayna-failed"
  rm -f "$RELEASES/$to/.ayna-proven"
  if [ "$from" != none ] && [ -d "$RELEASES/$from" ]; then
    say "rolling back to $from${changes:+ with the previous env file and units}"
    restore_bundle
    switch_to "$from"
    # Workers not yet restarted for the failed release still run the old one.
    if [ "$WORKERS_APPLIED" = 1 ]; then apply_release "$to" "$from"; else apply_release "$to" "$from" http; fi
    handovers_drained
    http_gate "$from" || say "warning: $from is not healthy after the rollback either"
    rm -f "$IN_FLIGHT"
    audit rolled-back "$from" "$to" "$sha" "health check failed${changes:+ ($changes)}"
    if [ "$from" = "$to" ] && [ -n "$changes" ]; then
      die "$to with the new ${changes} failed its health check; the previous env file and units are back and $from is serving" 3
    elif [ "$from" = "$to" ]; then
      die "$to, restarted as deployed, failed its health check; see the log lines above" 3
    fi
    die "release $to failed its health check and was rolled back; $from is serving" 3
  fi
  restore_bundle
  rm -f "$IN_FLIGHT"
  audit failed "$from" "$to" "$sha" "health check failed, nothing to roll back to"
  die "release $to failed its health check (first release: nothing to roll back to)" 3
}

services_running() { # every enabled unit of the project active, none waiting for a daemon-reload, no handover left
  local entry role port mode unit
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port mode _ <<<"$entry"
    unit=$(unit_of "$role")
    if [ "$mode" = handover ] && systemctl is-active --quiet "$(handover_unit "$role")"; then return 1; fi
    enabled "$unit" || continue
    systemctl is-active --quiet "$unit" || return 1
    [ "$(systemctl show -P NeedDaemonReload "$unit")" != yes ] || return 1
  done
}

# The serving release again with another env file or other units, or repaired
# after drift (a service stopped, a unit edited by hand): the same gate as a
# new release. New content runs as candidates first.
rerelease_current() { # release sha
  local rel=$1 sha=$2 changes
  changes=$(bundle_summary)
  if [ -z "$changes" ] && services_running; then
    say "release $rel is already current"
    record_bundle
    result "$rel" "$(previous_release)"
    return 0
  fi
  if [ "$ENV_CHANGED" = 1 ] || [ ${#UNITS_CHANGED[@]} -gt 0 ]; then
    say "release $rel with a new ${changes}: checking candidates first"
    if ! candidate_check "$RELEASES/$rel" "$rel"; then
      audit failed "$rel" "$rel" "$sha" "candidate health check failed ($changes)"
      die "$rel with the new ${changes} failed its health check before the switch; nothing was changed and $rel is still serving" 3
    fi
    activate "$rel" "$rel" "$sha" "config"
  else
    say "repairing release $rel${changes:+ ($changes)}: services not running as deployed"
    activate "$rel" "$rel" "$sha" "repair"
  fi
}

# --- subcommands ---

cmd_deploy() { # --sha S --checksum C --venv H [--reason R] [--bundle]; [bundle lines,] tar.gz on stdin
  local sha="" checksum="" venv="" reason="deploy" bundle=""
  while [ $# -gt 0 ]; do case $1 in --sha) sha=$2; shift 2 ;; --checksum) checksum=$2; shift 2 ;; --venv) venv=$2; shift 2 ;; --reason) reason=$2; shift 2 ;; --bundle) bundle=1; shift ;; *) die "deploy: unknown flag $1" ;; esac; done
  [[ "$checksum" =~ ^[0-9a-f]{64}$ ]] || die "deploy: --checksum must be a sha256"
  [ -f "$VENVS/$venv/.ayna-complete" ] || die "deploy: environment $venv is not built"
  acquire_lock "$reason"
  prepare_runtime
  [ -z "$bundle" ] || read_bundle
  bundle_changes
  local from to
  from=$(interrupted_from "$(current_release)")
  # An archive already released (a rollback by re-applying old inputs) switches
  # back to that release instead of building it again.
  to=$(existing_release "$checksum" "$venv")
  if [ -n "$to" ]; then
    cat >/dev/null
    if [ "$to" = "$from" ]; then rerelease_current "$to" "$sha"; return; fi
    if [ -f "$RELEASES/$to/.ayna-failed" ]; then
      # A release that failed its gate is never served on the strength of an
      # earlier attempt: its candidates must pass again first.
      say "archive matches release $to, which failed its health check before: checking its candidates again"
      if ! candidate_check "$RELEASES/$to" "$to"; then
        audit failed "$from" "$to" "$sha" "candidate health check failed again"
        die "release $to failed its health check again before the switch; $(serving "$from")" 3
      fi
      rm -f "$RELEASES/$to/.ayna-failed"
      activate "$from" "$to" "$sha" "deploy"
      return
    fi
    say "archive matches existing release $to: switching back to it"
    activate "$from" "$to" "$sha" "switch"
    return
  fi
  to=$(next_release)
  unpack_release "$to" "$sha" "$checksum" "$venv"
  prepare_release "$from" "$to" "$sha" "$venv"
  mv "$RELEASES/$to/.ayna-release.json.part" "$RELEASES/$to/.ayna-release.json"
  if ! candidate_check "$RELEASES/$to" "$to"; then
    touch "$RELEASES/$to/.ayna-failed"
    audit failed "$from" "$to" "$sha" "candidate health check failed"
    die "release $to failed its health check before the switch; $(serving "$from")" 3
  fi
  activate "$from" "$to" "$sha" "deploy"
}

cmd_rollback() { # [--to vN] [--bundle]; [bundle lines on stdin]
  local to="" bundle=""
  while [ $# -gt 0 ]; do case $1 in --to) to=$2; shift 2 ;; --bundle) bundle=1; shift ;; *) die "rollback: unknown flag $1" ;; esac; done
  acquire_lock "rollback to ${to:-previous}"
  prepare_runtime
  [ -z "$bundle" ] || read_bundle
  bundle_changes
  local from
  from=$(current_release)
  [ -n "$to" ] || to=$(previous_release)
  [ -n "$to" ] || die "rollback: no previous release recorded"
  if [ "$to" = "$from" ]; then rerelease_current "$to" "$(json_field "$RELEASES/$to/.ayna-release.json" sha)"; return; fi
  [ -f "$RELEASES/$to/.ayna-release.json" ] ||
    die "rollback: release $to does not exist on $(hostname) (pruned or never deployed); available: $(available_releases)"
  [ ! -f "$RELEASES/$to/.ayna-failed" ] || die "rollback: release $to failed its health check when it was deployed; pick another (available: $(available_releases))"
  activate "$from" "$to" "$(json_field "$RELEASES/$to/.ayna-release.json" sha)" "rollback"
}

cmd_status() {
  printf 'current=%s\nprevious=%s\nreleases=%s\n' "$(current_release)" "$(previous_release)" "$(available_releases)"
  if [ -d "$LOCK" ]; then printf 'lock: %s\n' "$(lock_info | tr '\n' ' ')"; fi
}

cmd_verify() { # for refresh: does the host still run what the last release installed?
  local bad=0 kind name sum entry role unit
  if [ ! -f "$ROOT/.bundle" ]; then say "drift: no env file and units recorded by a release yet"; return 1; fi
  while read -r kind name sum; do
    case $kind in
      env)
        [ "$(sha256sum <"$ENV_FILE" 2>/dev/null | cut -d' ' -f1)" = "$name" ] || { say "drift: $ENV_FILE differs from what the last release installed"; bad=1; }
        env_owner_ok || { say "drift: $ENV_FILE is not mode 0600 owned by $SERVICE_USER:$SERVICE_GROUP"; bad=1; } ;;
      unit)
        [ "$(sha256sum <"$UNIT_DIR/$name" 2>/dev/null | cut -d' ' -f1)" = "$sum" ] || { say "drift: $UNIT_DIR/$name was changed or removed"; bad=1; }
        [ "$(systemctl show -P NeedDaemonReload "$name")" != yes ] || { say "drift: $name changed on disk without a daemon-reload"; bad=1; } ;;
    esac
  done <"$ROOT/.bundle"
  if [ -e "$RELEASES/current" ]; then
    for entry in "${SERVICES[@]}"; do
      IFS=: read -r role _ <<<"$entry"
      unit=$(unit_of "$role")
      if enabled "$unit" && ! unit_alive "$unit"; then say "drift: $unit is not running"; bad=1; fi
    done
  fi
  return "$bad"
}

cmd_unlock() {
  [ -d "$LOCK" ] || { say "no deploy lock held"; return 0; }
  say "breaking deploy lock: $(lock_info | tr '\n' ' ')"
  rm -rf "$LOCK"
}

main() {
  # The tool runs as a transient systemd unit, so a client that disconnects
  # does not stop a deploy half way; writes to the gone client must not stop it
  # either.
  trap '' PIPE
  # Only the lock's holder owns the candidates and the staging directory: a
  # deploy that gave up waiting, or a verify, must not touch them.
  trap 'stop_polls; if [ -n "$OWN_LOCK" ]; then stop_candidates; stop_handovers; rm -rf "$STAGING"; fi; release_lock' EXIT
  [ "$(id -u)" = 0 ] || die "must run as root (through sudo)"
  mkdir -p "$RELEASES" "$VENVS" "$ROOT/logs"
  local sub=${1:-}
  [ $# -gt 0 ] && shift
  case $sub in
    deploy) cmd_deploy "$@" ;;
    rollback) cmd_rollback "$@" ;;
    status) cmd_status ;;
    verify) cmd_verify ;;
    unlock) cmd_unlock ;;
    *) die "usage: ayna-release deploy|rollback|status|verify|unlock" ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
