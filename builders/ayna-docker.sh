# ayna-release, Docker mode (runtime: docker): appended to ayna-release.sh,
# whose steps it keeps (the lock, releases/vN, the bundle's env file, the
# candidates before the switch, the health gate, the watch window, the
# automatic rollback, the audit log, pruning) while redefining how a release
# runs: as the image `{project}:sha-<SHA>` built from the release, and
# hardened containers `{project}-<role>` instead of systemd units. Blue-green
# per the Docker standard: the new web and api start beside the serving ones
# (`-next`), each on a unix socket of its own in SOCKETS, and must pass their
# health check; the switch renames the role's symlink (`web.sock`, what Caddy
# proxies to) onto the new socket, atomically and with no reload of Caddy
# (a reload can reset connections); only then do the old ones stop. They are
# kept, stopped (`-old`), so a switch back starts them instead of new ones.
# shellcheck shell=bash disable=SC2154,SC2034 # settings above, and ayna-release.sh's state it shares

NET=$PROJECT-net
STATE_VOLUME=$PROJECT-state
SOCKETS=$ROOT/sockets
export DOCKER_BUILDKIT=0 # the classic builder: Debian's docker.io may come without buildx

container() { printf '%s-%s' "$PROJECT" "$1"; }
next_container() { printf '%s-%s-next' "$PROJECT" "$1"; }
old_container() { printf '%s-%s-old' "$PROJECT" "$1"; }

exists() { docker container inspect "$1" >/dev/null 2>&1; }
label_of() { docker container inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; } # container label

unit_of() { container "$1"; }
enabled() { exists "$1"; }
unit_alive() { [ "$(docker container inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
main_pid() { docker container inspect -f '{{.State.Pid}}' "$1" 2>/dev/null || echo 0; } # container
unit_logs() { docker logs --tail "${2:-20}" "$1" 2>&1 | tail -n "${2:-20}" >&2 || true; }
# A health URL in Docker mode: unix:SOCKET:PATH (curl --unix-socket).
health_url() { socket_url "$(container "$1")" "$1"; } # role port: the serving container's socket
fetch_health() { # url
  local rest=${1#unix:}
  curl -fsS --max-time 2 --unix-socket "${rest%%:*}" "http://localhost${rest#*:}"
}
stop_handovers() { :; }

unit_states() { # container...: "name state pid restarts" lines, as the watch window reads them
  docker container inspect -f '{{.Name}} {{if .State.Running}}active{{else}}{{.State.Status}}{{end}} {{.State.Pid}} {{.RestartCount}}' "$@" 2>/dev/null | sed 's#^/##'
}

app_ids() { # "uid gid" of the service user, which the containers run as
  printf '%s %s' "$(id -u "$SERVICE_USER")" "$(getent group "$SERVICE_GROUP" | cut -d: -f3)"
}

image_of() { # release: its image id
  local f=$RELEASES/$1/.ayna-release.json
  [ -f "$f" ] || f=$f.part
  json_field "$f" image
}

# The env file reaches a container as the project's shared/ directory,
# mounted read-only, so no value is ever a `docker run` argument. Candidates
# of a new env file (not installed yet) get it as shared/.env.STAGE.next, a
# copy owned by the service user as the installed one is, which their
# launcher prefers while it exists (it goes once the switch is decided).
ENV_ARGS=()
env_args() {
  ENV_ARGS=(--mount "type=bind,src=$ROOT/shared,dst=/run/ayna/shared,readonly")
  [ "$RUN_ENV" != "$ENV_FILE" ] || return 0
  # Migrations and static files start side by side: each puts the copy in place by rename.
  install -m 0600 -o "$SERVICE_USER" -g "$SERVICE_GROUP" "$RUN_ENV" "$ENV_FILE.next.$BASHPID"
  mv -f "$ENV_FILE.next.$BASHPID" "$ENV_FILE.next"
  ENV_ARGS+=(--env AYNA_ENV_CANDIDATE=1)
}

# The project's network, its state volume and, when asked, its Redis: made
# once, kept across releases (they are not part of one).
prepare_runtime() {
  # Caddy's group may enter the socket directory; nobody else but the service user.
  local group=$SERVICE_GROUP
  getent group caddy >/dev/null && group=caddy
  install -d -m 0750 -o "$SERVICE_USER" -g "$group" "$SOCKETS"
  docker network inspect "$NET" >/dev/null 2>&1 || docker network create "$NET" >/dev/null
  if ! docker volume inspect "$STATE_VOLUME" >/dev/null 2>&1; then
    docker volume create "$STATE_VOLUME" >/dev/null
  fi
  [ -n "$REDIS_DOCKERFILE_B64" ] || return 0
  if ! docker image inspect "$PROJECT-redis:ayna" >/dev/null 2>&1; then
    say "building the Redis image $PROJECT-redis:ayna from $BASE_IMAGE"
    printf '%s' "$REDIS_DOCKERFILE_B64" | base64 -d | docker build --network host -q -t "$PROJECT-redis:ayna" - >/dev/null ||
      die "docker: the Redis image did not build (apt-get inside it needs the host's Debian mirror)"
  fi
  if [ "$(docker container inspect -f '{{.State.Running}}' "$PROJECT-redis" 2>/dev/null)" != true ]; then
    docker rm -f "$PROJECT-redis" >/dev/null 2>&1 || true
    docker run -d --name "$PROJECT-redis" --network "$NET" --label "ayna.project=$PROJECT" --label ayna.role=redis \
      "${DOCKER_OPTS[@]}" --memory 256m --mount "type=volume,src=$PROJECT-redis,dst=/data" \
      --health-cmd 'redis-cli ping | grep -q PONG' --health-interval 5s --health-timeout 3s --health-retries 3 \
      "$PROJECT-redis:ayna" >/dev/null || die "docker: the Redis container $PROJECT-redis did not start"
  fi
}

# A build that failed: the release goes (the serving one is untouched), with
# the build's last lines, an audit entry and the message.
build_failed() { # release sha from log reason message
  rm -rf "${RELEASES:?}/$1"
  printf '%s\n' "$4" | tail -n 25 >&2
  audit failed "$3" "$1" "$2" "$5"
  die "deploy: $6; $(serving "$3")" 4
}

# (2)-(3) in Docker mode: the release's image, built from the release's files,
# the environment uv built on this host for its lockfile and the launcher; the
# build context is hard links, so nothing is copied.
build_image() { # release sha venv from
  local rel=$1 sha=$2 venv=$3 from=$4 ctx tag id log uid gid base=$BASE_IMAGE
  tag="$PROJECT:sha-$sha"
  # The app's own Dockerfile first (its context: the release's files); the
  # release image is built FROM what it makes.
  if [ -n "$APP_DOCKERFILE" ]; then
    base="$PROJECT:app-sha-$sha"
    say "building $base of $rel from the app's $APP_DOCKERFILE"
    if ! log=$(docker build --network host --label "ayna.project=$PROJECT" -f "$RELEASES/$rel/$APP_DOCKERFILE" \
      -t "$base" "$RELEASES/$rel" 2>&1); then
      build_failed "$rel" "$sha" "$from" "$log" "the app's Dockerfile did not build" \
        "the app's $APP_DOCKERFILE did not build for $rel (see above); fix it, or set docker.dockerfile: none to build FROM $BASE_IMAGE"
    fi
  fi
  ctx=$ROOT/.build
  rm -rf "$ctx"
  mkdir -p "$ctx/app"
  cp -al "$VENVS/$venv" "$ctx/venv"
  if [ -d "$ROOT/lib" ]; then cp -al "$ROOT/lib" "$ctx/lib"; else mkdir "$ctx/lib"; fi
  find "$RELEASES/$rel" -mindepth 1 -maxdepth 1 ! -name .venv ! -name staticfiles ! -name '.ayna-*' -exec cp -al {} "$ctx/app/" \;
  # The app may read its release's name from its root, as in venv mode.
  cp "$RELEASES/$rel/.ayna-release.json.part" "$ctx/app/.ayna-release.json"
  printf '%s' "$LAUNCHER_B64" | base64 -d >"$ctx/ayna-env.py"
  read -r uid gid <<<"$(app_ids)"
  printf '%s' "$DOCKERFILE_B64" | base64 -d |
    sed -e "s|@FROM_IMAGE@|$base|g" -e "s|@VENV_PATH@|$VENVS/$venv|g" -e "s|@APP_UID@|$uid|g" -e "s|@APP_GID@|$gid|g" >"$ctx/Dockerfile"
  say "building image $tag of $rel"
  if ! log=$(docker build --label "ayna.project=$PROJECT" --label "ayna.venv=$venv" -t "$tag" "$ctx" 2>&1); then
    rm -rf "$ctx"
    build_failed "$rel" "$sha" "$from" "$log" "image build failed" "the image of $rel ($tag) did not build (see above)"
  fi
  rm -rf "$ctx"
  id=$(docker image inspect -f '{{.Id}}' "$tag")
  sed -i 's/}$/, "image": "'"$id"'"}/' "$RELEASES/$rel/.ayna-release.json.part"
}

eval "venv_$(declare -f prepare_release)"
prepare_release() { # from to sha venv
  build_image "$2" "$3" "$4" "$1"
  venv_prepare_release "$@"
}

run_as_app() { # [--unit NAME] dir command...: a one-shot container of the release's image (migrate, static files, the worker check)
  # A container is named below, by its job; the systemd unit name run_step passes has no use here.
  if [ "$1" = --unit ]; then shift 2; fi
  local dir=$1 app=/app rel ids
  shift
  local -a cmd=("$@")
  rel=$(basename "$dir")
  ids=$(app_ids)
  env_args
  # Named for what it does (the standard's one-shot migrate job), unique per run.
  local job=check
  if [ ${#MIGRATE[@]} -gt 0 ] && [ "${cmd[*]}" = "${MIGRATE[*]//@RELEASE@/$dir}" ]; then
    job=migrate
  elif [ ${#STATIC[@]} -gt 0 ] && [ "${cmd[*]}" = "${STATIC[*]//@RELEASE@/$dir}" ]; then
    job=static
  fi
  docker run --rm --name "$PROJECT-$job-$BASHPID" --label "ayna.project=$PROJECT" --label "ayna.role=$job" \
    --network "$NET" --user "${ids/ /:}" \
    "${DOCKER_OPTS[@]/unless-stopped/no}" "${ENV_ARGS[@]}" \
    --mount "type=bind,src=$dir/staticfiles,dst=/app/staticfiles" \
    --mount "type=volume,src=$STATE_VOLUME,dst=$STATE_DIR" \
    "$(image_of "$rel")" "${cmd[@]//"$dir"/$app}"
}

start_container() { # name role release: web and api on a socket of their own, named in the ayna.socket label
  local name=$1 role=$2 rel=$3 ref hc ids sock=""
  local -a cmd
  ref="CONTAINER_${role}[@]"
  cmd=("${!ref}")
  ref="HEALTHCMD_${role}"
  hc=${!ref}
  if [[ " ${cmd[*]} " == *@SOCKET@* ]]; then
    sock=$role-$rel-$(date +%s%N | tail -c 7)
    cmd=("${cmd[@]//@SOCKET@/$sock}")
    hc=${hc//@SOCKET@/$sock}
  fi
  ids=$(app_ids)
  docker rm -f "$name" >/dev/null 2>&1 || true
  env_args
  docker run -d --name "$name" --network "$NET" --user "${ids/ /:}" \
    --label "ayna.project=$PROJECT" --label "ayna.role=$role" --label "ayna.release=$rel" --label "ayna.socket=$sock" \
    "${DOCKER_OPTS[@]}" "${ENV_ARGS[@]}" \
    --mount "type=bind,src=$RELEASES/$rel/staticfiles,dst=/app/staticfiles,readonly" \
    --mount "type=volume,src=$STATE_VOLUME,dst=$STATE_DIR" \
    --mount "type=bind,src=$SOCKETS,dst=/run/ayna/sockets" \
    --health-cmd "$hc" --health-interval 5s --health-timeout 3s --health-retries 3 --health-start-period 60s \
    "$(image_of "$rel")" "${cmd[@]}" >/dev/null
}

socket_url() { # container role: its health URL on its own socket
  printf 'unix:%s/%s.sock:%s' "$SOCKETS" "$(label_of "$1" ayna.socket)" "$(health_path "$2")"
}

stop_candidates() {
  local entry role port
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port _ <<<"$entry"
    [ -n "$port" ] || continue
    docker rm -f "$(next_container "$role")" >/dev/null 2>&1 || true
  done
  rm -f "$ENV_FILE.next"
}

# The new web and api start beside the serving ones and must answer healthy,
# naming the release; unlike venv mode they stay up: they are what serves
# after the switch (no second start of the app).
candidate_check() { # dir release
  local dir=$1 rel=$2 entry role port url deadline
  stop_candidates
  deadline=$(($(date +%s) + HEALTH_TIMEOUT))
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port _ <<<"$entry"
    [ -n "$port" ] || continue
    start_container "$(next_container "$role")" "$role" "$rel" ||
      { say "health check failed: the $role container of $rel did not start"; stop_candidates; return 1; }
  done
  if ! workers_load "$dir" "$rel"; then
    stop_candidates
    return 1
  fi
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port _ <<<"$entry"
    [ -n "$port" ] || continue
    url=$(socket_url "$(next_container "$role")" "$role")
    if ! poll_health "$url" "$rel" "$deadline" "$(next_container "$role")"; then
      say "health check failed: $role of release $rel did not answer 200 on its socket ($url) within ${HEALTH_TIMEOUT}s$HEALTH_NOTE; last answer: ${HEALTH_ANSWER:0:300}"
      say "last log lines of the new container:"
      unit_logs "$(next_container "$role")" 25
      stop_candidates
      return 1
    fi
    say "candidate ok: $role of $rel is healthy on its socket"
  done
}

point_role() { # role container: the role's socket symlink, renamed onto the container's socket
  local link=$SOCKETS/$1.sock
  ln -sfn "$(label_of "$2" ayna.socket).sock" "$link.tmp"
  mv -Tf "$link.tmp" "$link"
}

# Makes `rel` serve `role`: its -next container (a candidate's, or the
# previous release's kept -old one, or a new one) must be healthy; the role's
# socket symlink moves to it (Caddy's next connection goes there, requests
# under way finish where they are); the serving one stops, kept as -old.
switch_container() { # role release
  local role=$1 rel=$2 cur next old
  cur=$(container "$role")
  next=$(next_container "$role")
  old=$(old_container "$role")
  if ! unit_alive "$next" || [ "$(label_of "$next" ayna.release)" != "$rel" ]; then
    docker rm -f "$next" >/dev/null 2>&1 || true
    if exists "$old" && [ "$(label_of "$old" ayna.release)" = "$rel" ]; then
      docker rename "$old" "$next"
      docker start "$next" >/dev/null || say "warning: $next did not start"
    else
      start_container "$next" "$role" "$rel" || say "warning: the $role container of $rel did not start"
    fi
    poll_health "$(socket_url "$next" "$role")" "$rel" "$(($(date +%s) + HEALTH_TIMEOUT))" "$next" ||
      say "warning: $role of $rel is not healthy on its socket; switching anyway, the gate decides"
  fi
  point_role "$role" "$next"
  if exists "$cur"; then
    docker rm -f "$old" >/dev/null 2>&1 || true
    # A connection Caddy opened a moment ago may still be reaching the old
    # socket; SIGTERM then lets gunicorn finish every request it accepted.
    sleep 0.5
    docker stop -t 30 "$cur" >/dev/null 2>&1 || true
    docker rename "$cur" "$old"
  fi
  docker rename "$next" "$cur"
}

apply_release() { # from to [all|http|workers]
  local which=${3:-all} to=$2 entry role port
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role port _ <<<"$entry"
    case $which in
      http) [ -n "$port" ] || continue ;;
      workers) [ -z "$port" ] || continue ;;
    esac
    if [ -n "$port" ]; then
      switch_container "$role" "$to"
    else
      docker rm -f "$(container "$role")" >/dev/null 2>&1 || true
      start_container "$(container "$role")" "$role" "$to" || say "warning: the $role container of $to did not start"
    fi
    RESTARTS[$role]=0
    STARTED[$role]=$(date +%s)
  done
  [ "$which" = http ] || WORKERS_APPLIED=1
  rm -f "$ENV_FILE.next"
}

services_running() { # every role's container runs, and no candidate is left
  local entry role
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r role _ <<<"$entry"
    unit_alive "$(container "$role")" || return 1
    ! exists "$(next_container "$role")" || return 1
  done
}

in_use_releases() {
  docker ps --filter "label=ayna.project=$PROJECT" --format '{{.Label "ayna.release"}}' | grep -v '^$' | sort -u
}

# After a release passed: the previous one's image is tagged :rollback, and
# images no kept release uses go with the releases pruned.
eval "venv_$(declare -f prune)"
prune() {
  local prev keep id rel
  venv_prune
  prev=$(previous_release)
  if [ -n "$prev" ] && id=$(image_of "$prev") && [ -n "$id" ]; then docker tag "$id" "$PROJECT:rollback" 2>/dev/null || true; fi
  keep=" "
  for rel in $(available_releases); do keep+="$(image_of "$rel") "; done
  for id in $(docker image ls --filter "label=ayna.project=$PROJECT" --format '{{.ID}}' --no-trunc | sort -u); do
    [[ $keep == *" $id "* ]] && continue
    docker image rm -f "$id" >/dev/null 2>&1 && say "pruned image ${id:7:12}" || true
  done
  # Sockets of containers that are gone (gunicorn leaves its socket when killed).
  keep=" $(docker ps -a --filter "label=ayna.project=$PROJECT" --format '{{.Label "ayna.socket"}}' | tr '\n' ' ') "
  for id in "$SOCKETS"/*-v*.sock; do
    [ -S "$id" ] || continue
    id=$(basename "$id" .sock)
    [[ $keep == *" $id "* ]] || rm -f "$SOCKETS/$id.sock"
  done
  return 0
}
