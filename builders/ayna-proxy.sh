#!/bin/bash
# ayna-proxy: one project's Caddy site on this host, put in place only after
# Caddy validated the whole new configuration, and kept only when every
# domain answers through Caddy after the graceful reload; otherwise the
# previous site comes back. The program runs it over SSH (bash -c, with the
# arguments below); the site's Caddyfile text comes on stdin.
#
#   ayna-proxy apply PROJECT CHECK...   CHECK is DOMAIN|PATH|internal or DOMAIN|PATH|auto
#   ayna-proxy remove PROJECT
#   ayna-proxy verify PROJECT SHA256    (refresh: the site is the one written, Caddy serves)
set -euo pipefail

CADDY_DIR=${AYNA_CADDY_DIR:-/etc/caddy}
SITES=$CADDY_DIR/sites
# How long a domain may take to answer after the reload (a first internal
# certificate is issued on the first request).
ANSWER_SECONDS=${AYNA_PROXY_ANSWER_SECONDS:-30}

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
  HOME=$1/.home XDG_DATA_HOME=$1/.data XDG_CONFIG_HOME=$1/.config \
    caddy validate --adapter caddyfile --config "$1/Caddyfile" >"$1/.validate.log" 2>&1
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

apply() { # project check...
  local project=$1 work target old=""
  shift
  command -v caddy >/dev/null || die "caddy is not installed (the host's bootstrap installs it with proxy.enabled)"
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '$work'" EXIT
  cat >"$work/site"
  target=$SITES/$project.caddy
  staged "$work" "$project" "$work/site" || exit 1
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
  journalctl -u caddy -n 5 --no-pager -q >&2 || true
  die "the new site of $project was not kept; the previous one is back"
}

remove() { # project
  local project=$1 work
  [ -f "$SITES/$project.caddy" ] || return 0
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '$work'" EXIT
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
  systemctl is-active --quiet caddy || die "caddy is not running"
}

case "${1:-}" in
  apply)
    shift
    apply "$@"
    ;;
  remove) remove "$2" ;;
  verify) verify "$2" "$3" ;;
  *) die "usage: ayna-proxy apply|remove|verify PROJECT ..." ;;
esac
