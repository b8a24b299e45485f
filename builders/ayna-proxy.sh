#!/bin/bash
# ayna-proxy: one project's Caddy site on this host, put in place only after
# Caddy validated the whole new configuration, and kept only when every
# domain answers through Caddy after the graceful reload; otherwise the
# previous site comes back. The program runs it over SSH (bash -c, with the
# arguments below); the site's Caddyfile text comes on stdin.
#
#   ayna-proxy [--container BASE_IMAGE] apply PROJECT CHECK...
#       CHECK is DOMAIN|PATH|internal or DOMAIN|PATH|auto
#   ayna-proxy [--container BASE_IMAGE] remove PROJECT
#   ayna-proxy [--container BASE_IMAGE] verify PROJECT SHA256
#       (refresh: the site is the one written, Caddy serves)
#
# Without --container Caddy is Debian's, under systemd (venv mode). With it
# (Docker mode) Caddy is the host's one publishing container, ayna-proxy: an
# image built FROM BASE_IMAGE with Debian's caddy, run as the host's caddy
# user with the Docker standard's hardening; it reads the same /etc/caddy
# and reaches the projects' sockets under /opt/ayna (mounted read-only).
set -euo pipefail

CADDY_DIR=${AYNA_CADDY_DIR:-/etc/caddy}
SITES=$CADDY_DIR/sites
# How long a domain may take to answer after the reload (a first internal
# certificate is issued on the first request).
ANSWER_SECONDS=${AYNA_PROXY_ANSWER_SECONDS:-30}

BASE_IMAGE=""
if [ "${1:-}" = --container ]; then
  BASE_IMAGE=${2:?--container needs the base image}
  shift 2
fi
PROXY=${AYNA_PROXY_CONTAINER:-ayna-proxy}
PROXY_USER=caddy
PROXY_IMAGE=""

say() { printf 'ayna-proxy: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

main_caddyfile() {
  cat <<'EOF'
# Written by ayna-deploy: each project's site is in sites/<project>.caddy,
# rendered from its stack config (change it there, not here).
{
	# tls internal: the local CA is not added to this host's trust store.
	skip_install_trust
}

import sites/*.caddy
EOF
}

# caddy validate of the configuration in dir (a copy of /etc/caddy), with
# Caddy's storage in the copy too, so validating changes nothing here.
validate() { # dir
  if [ -n "$BASE_IMAGE" ]; then
    # In the proxy's own image, with nothing of the running proxy's state.
    docker run --rm --network none --read-only --tmpfs /tmp --user "$(proxy_ids)" \
      --env HOME=/tmp --env XDG_DATA_HOME=/tmp --env XDG_CONFIG_HOME=/tmp \
      --mount "type=bind,src=$1,dst=/etc/caddy,readonly" "$PROXY_IMAGE" \
      caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile >"$1/.validate.log" 2>&1
    return
  fi
  HOME=$1/.home XDG_DATA_HOME=$1/.data XDG_CONFIG_HOME=$1/.config \
    caddy validate --adapter caddyfile --config "$1/Caddyfile" >"$1/.validate.log" 2>&1
}

# ---- Docker mode: the proxy container

proxy_ids() { # uid:gid of the host's caddy user (the host's bootstrap makes it)
  printf '%s:%s' "$(id -u "$PROXY_USER")" "$(id -g "$PROXY_USER")"
}

proxy_dockerfile() { # uid gid
  cat <<DOCKERFILE
# ayna-proxy: Debian's caddy, run as the host's caddy user ($1:$2).
FROM $BASE_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy >/dev/null \\
 && rm -rf /var/lib/apt/lists/* && install -d -o $1 -g $2 -m 0700 /data /config
ENV HOME=/data XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config
USER $1:$2
EXPOSE 80 443 443/udp
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
DOCKERFILE
}

# The image, built once per Dockerfile (its tag is the Dockerfile's hash).
proxy_image() {
  local ids dockerfile
  id -u "$PROXY_USER" >/dev/null 2>&1 ||
    die "the host has no $PROXY_USER user (the host's bootstrap makes it in Docker mode; run up again)"
  ids=$(proxy_ids)
  dockerfile=$(proxy_dockerfile "${ids%:*}" "${ids#*:}")
  PROXY_IMAGE=ayna-proxy:caddy-$(printf '%s\n' "$dockerfile" | sha256sum | cut -c1-12)
  docker image inspect "$PROXY_IMAGE" >/dev/null 2>&1 && return 0
  say "building the proxy image $PROXY_IMAGE from $BASE_IMAGE"
  printf '%s\n' "$dockerfile" | docker build --network host -q -t "$PROXY_IMAGE" - >/dev/null ||
    die "docker: the proxy image did not build (apt-get inside it needs the host's Debian mirror)"
}

# How the proxy container runs: the Docker standard's hardening, and the
# host's only published ports. A user with no capabilities may bind 80 and
# 443 because the sysctl holds in the container's network namespace only.
proxy_args() {
  PROXY_ARGS=(
    --restart unless-stopped --read-only --tmpfs "/tmp:rw,nosuid,nodev,size=16m"
    --security-opt no-new-privileges --cap-drop ALL --sysctl net.ipv4.ip_unprivileged_port_start=80
    --memory 256m --cpus 1 --pids-limit 256 --log-driver json-file
    --publish 80:80 --publish 443:443 --publish 443:443/udp
    --mount "type=bind,src=$CADDY_DIR,dst=/etc/caddy,readonly"
    --mount "type=bind,src=/opt/ayna,dst=/opt/ayna,readonly"
    --mount "type=volume,src=ayna-proxy-data,dst=/data"
    --mount "type=volume,src=ayna-proxy-config,dst=/config"
    --health-cmd "python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:2019/config/\", timeout=2)'"
    --health-interval 10s --health-timeout 3s --health-retries 3
  )
}

proxy_spec() { # what the running container must match: its image and options (after proxy_args)
  printf '%s\n' "$PROXY_IMAGE" "${PROXY_ARGS[@]}" | sha256sum | cut -c1-12
}

proxy_running() {
  [ "$(docker container inspect -f '{{.State.Running}}' "$PROXY" 2>/dev/null)" = true ]
}

# Reloads the running proxy gracefully; (re)creates it only when it is
# missing, stopped, or runs another image or other options.
reload_container() {
  local spec
  proxy_args
  spec=$(proxy_spec)
  if proxy_running && [ "$(docker container inspect -f '{{index .Config.Labels "ayna.spec"}}' "$PROXY")" = "$spec" ]; then
    docker exec "$PROXY" caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1
    return
  fi
  # A host that ran venv mode's Caddy hands ports 80 and 443 over.
  if systemctl is-active --quiet caddy 2>/dev/null; then
    say "stopping Debian's caddy service: the proxy container takes ports 80 and 443"
    systemctl disable --now --quiet caddy
  fi
  docker rm -f "$PROXY" >/dev/null 2>&1 || true
  docker run -d --name "$PROXY" --label ayna.role=proxy --label "ayna.spec=$spec" --user "$(proxy_ids)" \
    "${PROXY_ARGS[@]}" "$PROXY_IMAGE" >/dev/null
}

proxy_logs() {
  if [ -n "$BASE_IMAGE" ]; then
    docker logs --tail 5 "$PROXY" 2>&1 | cut -c1-400 >&2 || true
  else
    journalctl -u caddy -n 5 --no-pager -q >&2 || true
  fi
}

# The whole configuration as it would be with this project's site replaced
# (or removed, with no site file), checked by Caddy before anything moves.
staged() { # work project site-file|""
  local work=$1 project=$2 site=$3
  mkdir -p "$work/etc"
  cp -a "$CADDY_DIR/." "$work/etc/"
  main_caddyfile >"$work/etc/Caddyfile"
  mkdir -p "$work/etc/sites"
  rm -f "$work/etc/sites/$project.caddy"
  [ -z "$site" ] || cp "$site" "$work/etc/sites/$project.caddy"
  if ! validate "$work/etc"; then
    say "Caddy refused the new configuration; nothing changed:"
    grep -v '^{"level":"info"' "$work/etc/.validate.log" | tail -n 6 >&2
    return 1
  fi
}

put() { # source target: the target replaced in one rename, mode 0644, root's
  install -m 0644 -o root -g root "$1" "$(dirname "$2")/.$(basename "$2").tmp"
  mv -f "$(dirname "$2")/.$(basename "$2").tmp" "$2"
}

reload_caddy() {
  if [ -n "$BASE_IMAGE" ]; then
    reload_container
    return
  fi
  if systemctl is-active --quiet caddy; then
    systemctl reload caddy
  else
    systemctl enable --quiet caddy
    systemctl start caddy
  fi
}

# One request through Caddy as a client would send it: by name to port 443
# of this host (the local CA's certificate is not checked); with automatic
# certificates, which need the public name, a request on port 80 shows Caddy
# serves the site (its redirect to HTTPS).
answer() { # domain path tls
  if [ "$3" = internal ]; then
    curl -sk -o /dev/null -w '%{http_code}' --max-time 5 --resolve "$1:443:127.0.0.1" "https://$1$2" || true
  else
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $1" "http://127.0.0.1$2" || true
  fi
}

answers() { # check...: every domain answers within ANSWER_SECONDS
  local check domain path tls code deadline
  deadline=$(($(date +%s) + ANSWER_SECONDS))
  for check in "$@"; do
    IFS='|' read -r domain path tls <<<"$check"
    while :; do
      code=$(answer "$domain" "$path" "$tls")
      if [ "$tls" = internal ] && [ "$code" = 200 ]; then break; fi
      if [ "$tls" != internal ] && [ "$code" != 000 ]; then break; fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        say "$domain did not answer $path through Caddy within ${ANSWER_SECONDS}s (last: HTTP $code)"
        return 1
      fi
      sleep 0.5
    done
  done
}

# Which Caddy a site needs, from where it sends requests: a Docker-mode site
# to its project's unix sockets (the proxy container), a venv-mode site to
# ports on the host's loopback (Debian's caddy; a container's 127.0.0.1 is
# its own).
site_mode() { # site-file
  if grep -Eq '^[[:space:]]*reverse_proxy unix/' "$1"; then
    echo docker
  elif grep -Eq '^[[:space:]]*reverse_proxy 127\.0\.0\.1:' "$1"; then
    echo venv
  fi
}

other_sites() { # mode project: the other projects whose site needs that Caddy
  local f
  for f in "$SITES"/*.caddy; do
    [ -f "$f" ] && [ "$(basename "$f" .caddy)" != "$2" ] || continue
    if [ "$(site_mode "$f")" = "$1" ]; then basename "$f" .caddy; fi
  done | paste -sd ' ' -
}

# One Caddy holds a host's ports 80 and 443: the proxy container (Docker
# mode) or Debian's caddy (venv mode). A site that needs the other one is
# refused before anything changes, since taking the ports over would cut the
# other projects' sites off.
one_kind_of_proxy() { # project
  local others
  if [ -n "$BASE_IMAGE" ]; then
    others=$(other_sites venv "$1")
    [ -z "$others" ] || die "ports 80 and 443 of this host are Debian's caddy's, serving the venv-mode site(s) of: $others. The proxy container for $1 (runtime: docker) would take them and cut those sites off, since a container cannot reach their ports on the host's loopback. Nothing changed: deploy $1 to another host, or run one of them without proxy.enabled"
  else
    others=$(other_sites docker "$1")
    [ -z "$others" ] || die "ports 80 and 443 of this host are the proxy container's ($PROXY), serving the Docker-mode site(s) of: $others. Debian's caddy for $1 (runtime: venv) cannot take them without cutting those sites off. Nothing changed: deploy $1 to another host, or run one of them without proxy.enabled"
  fi
}

# A project moved from Docker mode back to venv mode (its site was a
# Docker-mode one) on a host no other Docker-mode site uses: the proxy
# container gives ports 80 and 443 back.
container_gone() {
  command -v docker >/dev/null || return 0
  docker container inspect "$PROXY" >/dev/null 2>&1 || return 0
  say "the proxy container $PROXY serves no other project: removing it, so that Debian's caddy takes ports 80 and 443"
  docker rm -f "$PROXY" >/dev/null
}

apply() { # project check...
  local project=$1 work target old=""
  shift
  one_kind_of_proxy "$project"
  if [ -n "$BASE_IMAGE" ]; then
    proxy_image
  else
    command -v caddy >/dev/null || die "caddy is not installed (the host's bootstrap installs it with proxy.enabled)"
  fi
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '$work'" EXIT
  cat >"$work/site"
  target=$SITES/$project.caddy
  staged "$work" "$project" "$work/site" || exit 1
  if [ -z "$BASE_IMAGE" ] && [ -f "$target" ] && [ "$(site_mode "$target")" = docker ]; then container_gone; fi
  install -d -m 0755 "$SITES"
  if [ -f "$target" ]; then
    cp -p "$target" "$work/site.old"
    old=$work/site.old
  fi
  [ ! -f "$CADDY_DIR/Caddyfile" ] || cp -p "$CADDY_DIR/Caddyfile" "$work/Caddyfile.old"
  main_caddyfile >"$work/Caddyfile"
  put "$work/Caddyfile" "$CADDY_DIR/Caddyfile"
  put "$work/site" "$target"
  if reload_caddy && answers "$@"; then
    say "site $project: serving $(printf '%s ' "$@" | sed 's/|[^ ]*//g')"
    return 0
  fi
  # Back to what served before; the next up tries again.
  if [ -n "$old" ]; then put "$old" "$target"; else rm -f "$target"; fi
  [ ! -f "$work/Caddyfile.old" ] || put "$work/Caddyfile.old" "$CADDY_DIR/Caddyfile"
  reload_caddy || say "warning: Caddy did not reload the previous configuration"
  proxy_logs
  die "the new site of $project was not kept; the previous one is back"
}

remove() { # project
  local project=$1 work
  [ -f "$SITES/$project.caddy" ] || return 0
  if [ -n "$BASE_IMAGE" ] && [ -z "$(find "$SITES" -maxdepth 1 -name '*.caddy' ! -name "$project.caddy" -print -quit)" ]; then
    # The last site: nothing is published any more, so there is no
    # configuration left to validate, nor an image to build for it. Its
    # certificates stay in the volumes.
    rm -f "$SITES/$project.caddy"
    docker rm -f "$PROXY" >/dev/null 2>&1 || true
    say "site $project removed; no site is left on this host, so the proxy container $PROXY is removed too (its volumes stay)"
    return 0
  fi
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '$work'" EXIT
  [ -z "$BASE_IMAGE" ] || proxy_image
  staged "$work" "$project" "" || exit 1
  rm -f "$SITES/$project.caddy"
  reload_caddy
  say "site $project removed"
}

verify() { # project sha256
  local target=$SITES/$1.caddy
  [ -f "$target" ] || die "$target is missing"
  [ "$(sha256sum <"$target" | cut -d' ' -f1)" = "$2" ] || die "$target was changed on the host"
  [ "$(stat -c '%a %U' "$target")" = "644 root" ] || die "$target: mode or owner changed"
  if [ -n "$BASE_IMAGE" ]; then
    proxy_running || die "the proxy container $PROXY is not running"
  else
    systemctl is-active --quiet caddy || die "caddy is not running"
  fi
}

case "${1:-}" in
  apply)
    shift
    apply "$@"
    ;;
  remove) remove "$2" ;;
  verify) verify "$2" "$3" ;;
  *) die "usage: ayna-proxy [--container BASE_IMAGE] apply|remove|verify PROJECT ..." ;;
esac
