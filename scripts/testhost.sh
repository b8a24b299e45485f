#!/usr/bin/env bash
# testhost.sh — real Debian test hosts (systemd as PID 1, sshd, python3) booted
# with systemd-nspawn on this machine, for end-to-end tests.
#
#   testhost.sh deps                         install the tools this script needs
#   testhost.sh image [--suite S] [--force]  build (once) and cache the host image
#   testhost.sh base-image [--suite S]       build (once) and cache a gzip'd root file system
#                                            for `docker import` (minbase, python3, the image's
#                                            apt sources and CAs; no systemd, no sshd);
#                                            prints the tarball's path
#   testhost.sh up NAME [--suite S] [--owner-pid PID] [--address A] [--disk-mb N] [--docker]
#                                            boot a fresh host; prints one JSON object;
#                                            --address takes an address kept by
#                                            `down --keep-address` (a host rebuilt in place);
#                                            --disk-mb: its writable layer is a tmpfs of N MiB
#                                            (its / is N MiB; full gives ENOSPC inside);
#                                            --docker: booted so that a Docker engine installed
#                                            inside runs containers (overlay2, cgroup limits)
#   testhost.sh reboot NAME [--hard]         reboot a running host in place (files, address,
#                                            keys, machine-id kept): clean poweroff, or with
#                                            --hard SIGKILL to all its processes; then boots
#                                            and waits as `up` does; prints the JSON of `up`
#   testhost.sh down NAME...                 stop hosts and remove everything they used
#   testhost.sh down NAME --keep-address     the same, but keep its address for one `up --address`
#   testhost.sh alias NAME                   give a running host a second address; prints it
#   testhost.sh down-all                     stop every host (and leftovers)
#   testhost.sh gc [--stale]                 like down-all; --stale: only hosts whose
#                                            owner process or nspawn is gone
#   testhost.sh list                         JSON lines of running hosts
#   testhost.sh check-clean [NAME...]        non-zero (and a list) if anything is left;
#                                            with names: only those hosts (and the bridge
#                                            and NAT rules once no host at all is left)
#
# Only the JSON of `up` and `list` go to stdout; everything else goes to stderr.
#
# Environment:
#   AYNA_CACHE_DIR               cache root (default /var/cache/ayna-deploy);
#                                images live in $AYNA_CACHE_DIR/testhost/images/,
#                                base-image tarballs in $AYNA_CACHE_DIR/testhost/base-images/
#   AYNA_TESTHOST_STATE          runtime state (default /run/ayna-testhost)
#   AYNA_TESTHOST_BRIDGE         bridge name (default aynabr0)
#   AYNA_TESTHOST_NET            first three octets of the /24 (default 10.99.0)
#   AYNA_TESTHOST_MIRROR         Debian mirror (default: the machine's own)
#   AYNA_TESTHOST_BOOT_TIMEOUT   seconds `up` waits for ssh + boot (default 300: the suite boots hosts while other tests hold both cores under load)
#   AYNA_TESTHOST_SSH_RETRY      seconds after its start a boot with no ssh login yet is stopped
#                                and started again, once (default 90; a warm boot logs in after 1 s)
#   AYNA_TESTHOST_STOP_TIMEOUT   seconds `down` waits for a clean poweroff (default 10;
#                                at least 30 for a --docker host: dockerd stops its containers)
set -euo pipefail

CACHE_DIR="${AYNA_CACHE_DIR:-/var/cache/ayna-deploy}/testhost"
STATE="${AYNA_TESTHOST_STATE:-/run/ayna-testhost}"
BRIDGE="${AYNA_TESTHOST_BRIDGE:-aynabr0}"
NET="${AYNA_TESTHOST_NET:-10.99.0}"
BOOT_TIMEOUT="${AYNA_TESTHOST_BOOT_TIMEOUT:-300}"
SSH_RETRY="${AYNA_TESTHOST_SSH_RETRY:-90}"
STOP_TIMEOUT="${AYNA_TESTHOST_STOP_TIMEOUT:-10}"
DEFAULT_SUITE=trixie
TAG=ayna-testhost # comment on every iptables rule we add (one tag per bridge)
[[ $BRIDGE == aynabr0 ]] || TAG+="-$BRIDGE"
# Bump IMAGE_FORMAT (or change PACKAGES / configure_rootfs) to force a rebuild.
IMAGE_FORMAT=1
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,curl,ca-certificates,sudo,iproute2
HOSTS="$STATE/hosts"
GONE="$STATE/gone" # host dirs of `down`, out of $HOSTS, while they are removed
RESERVED="$STATE/reserved"
UP_NAME=""
UP_CREATED=0

log() { printf '[testhost] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Milliseconds since the epoch (EPOCHREALTIME's separator depends on the locale).
now_ms() {
  local t=${EPOCHREALTIME//[!0-9]/}
  echo $((t / 1000))
}
secs_since() { # START_MS -> "1.234"
  local d=$(($(now_ms) - $1))
  printf '%d.%03d' $((d / 1000)) $((d % 1000))
}

json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

valid_name() { [[ $1 =~ ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$ ]]; }

valid_suite() {
  case $1 in
    trixie | bookworm) return 0 ;;
    *) die "unsupported suite '$1' (trixie or bookworm)" ;;
  esac
}

# ---------------------------------------------------------------- deps

cmd_deps() {
  need_root
  local -A want=(
    [debootstrap]=debootstrap
    [systemd-nspawn]=systemd-container
    [iptables]=iptables
    [ip]=iproute2
    [ssh]=openssh-client
    [ssh-keygen]=openssh-client
    [flock]=util-linux
    [setsid]=util-linux
    [mountpoint]=util-linux
    [timeout]=coreutils
    [sha256sum]=coreutils
    [tar]=tar
  )
  local c pkgs=()
  for c in "${!want[@]}"; do
    command -v "$c" >/dev/null 2>&1 || pkgs+=("${want[$c]}")
  done
  [[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] || pkgs+=(debian-archive-keyring)
  ((${#pkgs[@]})) || return 0
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  log "installing: ${pkgs[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
}

# ---------------------------------------------------------------- image

# The machine's own Debian mirror (deb822 .sources or one-line sources.list).
host_mirror() { # KIND: debian | security
  local kind=$1 f uri
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    if [[ $f == *.sources ]]; then
      uri=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) print $i }' "$f")
    else
      uri=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f")
    fi
    while read -r u; do
      [[ -n $u ]] || continue
      u=${u%/}
      if [[ $kind == security && $u == */debian-security ]]; then
        echo "$u"
        return 0
      elif [[ $kind == debian && $u == */debian ]]; then
        echo "$u"
        return 0
      fi
    done <<<"$uri"
  done
  return 1
}

mirror_url() {
  if [[ -n ${AYNA_TESTHOST_MIRROR:-} ]]; then
    echo "${AYNA_TESTHOST_MIRROR%/}"
  else
    host_mirror debian || echo "http://deb.debian.org/debian"
  fi
}

security_url() {
  host_mirror security || echo "$(dirname "$(mirror_url)")/debian-security"
}

# apt sources of a debootstrapped root: the machine's mirror, with updates
# and security. Shared by the host image and the Docker base image (its text
# is part of both stamps).
write_apt_sources() { # ROOT SUITE MIRROR SECURITY
  local root=$1 suite=$2 mirror=$3 security=$4
  rm -f "$root/etc/apt/sources.list"
  mkdir -p "$root/etc/apt/sources.list.d"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# The machine's extra CAs (HTTPS to registries passes an intercepting proxy)
# into ROOT's system store (needs ca-certificates in ROOT).
install_extra_cas() { # ROOT
  local root=$1 crt
  mkdir -p "$root/usr/local/share/ca-certificates"
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [[ -e $crt ]] || continue
    install -m 0644 "$crt" "$root/usr/local/share/ca-certificates/"
  done
  chroot "$root" update-ca-certificates --fresh >/dev/null 2>&1
}

# Hashes of the machine's extra CAs (part of the image stamps).
extra_cas_stamp() {
  local crt
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [[ -e $crt ]] && sha256sum "$crt"
  done
  return 0
}

# Everything baked into the image after debootstrap. Its text is part of the
# version stamp, so editing it rebuilds the image.
configure_rootfs() {
  local root=$1 suite=$2 mirror=$3 security=$4
  local bundle=/etc/ssl/certs/ca-certificates.crt
  local -a env_vars=("SSL_CERT_FILE=$bundle" "REQUESTS_CA_BUNDLE=$bundle" "PIP_CERT=$bundle")

  write_apt_sources "$root" "$suite" "$mirror" "$security"
  install_extra_cas "$root"
  # Tools that ignore the system store (uv, requests, pip) are pointed at it.
  printf '%s\n' "${env_vars[@]}" >>"$root/etc/environment"
  mkdir -p "$root/etc/systemd/system.conf.d"
  printf '[Manager]\nDefaultEnvironment=%s\n' "${env_vars[*]}" >"$root/etc/systemd/system.conf.d/50-ayna-ca.conf"

  # Network: systemd-networkd, static address per host (drop-in written by `up`).
  mkdir -p "$root/etc/systemd/network/10-host0.network.d"
  cat >"$root/etc/systemd/network/10-host0.network" <<'EOF'
[Match]
Name=host0

[Network]
DHCP=no
IPv6AcceptRA=no
LinkLocalAddressing=no
EOF
  chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
  rm -f "$root/etc/resolv.conf"

  # sshd: keys per host (none in the image), no passwords.
  rm -f "$root"/etc/ssh/ssh_host_*
  cat >"$root/etc/ssh/sshd_config.d/10-ayna-testhost.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF
  chroot "$root" systemctl enable ssh.service >/dev/null 2>&1

  # deploy user with passwordless sudo ('*': no password, but not locked).
  chroot "$root" useradd --create-home --shell /bin/bash --user-group deploy
  chroot "$root" usermod -p '*' deploy
  printf 'deploy ALL=(ALL:ALL) NOPASSWD:ALL\n' >"$root/etc/sudoers.d/deploy"
  chmod 0440 "$root/etc/sudoers.d/deploy"
  install -d -m 0700 "$root/root/.ssh"
  install -d -m 0700 "$root/home/deploy/.ssh"
  chroot "$root" chown deploy:deploy /home/deploy/.ssh

  # Per-host identity is written by `up`.
  : >"$root/etc/machine-id"
  echo testhost >"$root/etc/hostname"

  # Smaller image: no downloaded .debs, no package lists (apt-get update inside).
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  mkdir -p "$root/var/lib/apt/lists/partial"
  rm -rf "$root"/tmp/* "$root"/var/tmp/* "$root"/var/log/*.log
}

recipe_stamp() { # HEADER FUNCTION...: a short hash of what a cached image is built from
  local header=$1
  shift
  {
    echo "$header"
    echo "mirror=$(mirror_url) security=$(security_url)"
    declare -f "$@" write_apt_sources install_extra_cas
    extra_cas_stamp
  } | sha256sum | cut -c1-12
}

image_stamp() { recipe_stamp "format=$IMAGE_FORMAT suite=$1 packages=$PACKAGES" configure_rootfs; }

image_dir() { echo "$CACHE_DIR/images/$1-$(image_stamp "$1")"; }

# Unmount everything at or below PATH, deepest first.
umount_under() {
  local path=$1 mp
  [[ -n $path && $path == /* ]] || return 0
  mapfile -t mps < <(awk -v p="$path" '{ mp = $5; gsub(/\\040/, " ", mp); if (mp == p || index(mp, p "/") == 1) print mp }' /proc/self/mountinfo | sort -r)
  for mp in "${mps[@]}"; do
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || ! mountpoint -q "$mp" ||
      log "warning: cannot unmount $mp"
  done
}

rm_tree() { # remove a directory tree, never crossing into a mount
  local path=$1
  [[ -e $path ]] || return 0
  umount_under "$path"
  # (tolerates a concurrent removal, e.g. `down` racing a failing `up`)
  rm -rf --one-file-system "$path" 2>/dev/null || [[ ! -e $path ]] || rm -rf --one-file-system "$path"
}

# Remove interrupted builds, and images of other stamps (older package lists
# or scripts) that no running host uses. Caller holds the image lock.
prune_images() {
  local d base suite
  for d in "$CACHE_DIR"/images/.build-*; do
    [[ -e $d ]] || continue
    log "removing interrupted build $d"
    rm_tree "$d"
  done
  for d in "$CACHE_DIR"/images/*-*; do
    [[ -d $d ]] || continue
    base=${d##*/}
    suite=${base%-*}
    case $suite in trixie | bookworm) ;; *) continue ;; esac
    [[ $d != "$(image_dir "$suite")" ]] || continue
    if grep -qF "lowerdir=$d/rootfs" /proc/self/mountinfo; then
      continue # still the lower dir of a running host
    fi
    log "removing outdated image $d"
    rm_tree "$d"
  done
}

# debootstrap --variant=minbase of SUITE with PACKAGES into TMP/rootfs (its
# log in TMP/debootstrap.log); no mount of it is left.
run_debootstrap() { # SUITE PACKAGES TMP MIRROR
  local suite=$1 packages=$2 tmp=$3 mirror=$4
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2 || true
    if [[ -r $tmp/rootfs/debootstrap/debootstrap.log ]]; then
      tail -n 30 "$tmp/rootfs/debootstrap/debootstrap.log" >&2 || true
    fi
    die "debootstrap $suite failed"
  fi
  umount_under "$tmp/rootfs"
}

build_image() { # SUITE DIR
  local suite=$1 dir=$2 t0 mirror security tmp
  t0=$(now_ms)
  mirror=$(mirror_url)
  security=$(security_url)
  mkdir -p "$CACHE_DIR/images"
  tmp=$(mktemp -d "$CACHE_DIR/images/.build-XXXXXX")
  chmod 0755 "$tmp"
  # An interrupted build leaves no half image (and no mounts: debootstrap mounts /proc).
  # shellcheck disable=SC2064
  trap "rm_tree '$tmp'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "building $suite image from $mirror (about a minute) ..."
  run_debootstrap "$suite" "$PACKAGES" "$tmp" "$mirror"
  configure_rootfs "$tmp/rootfs" "$suite" "$mirror" "$security"
  tar -C "$tmp/rootfs" --numeric-owner --xattrs --xattrs-include='*' -cf "$tmp/rootfs.tar" .
  local py
  py=$(chroot "$tmp/rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  local secs
  secs=$(secs_since "$t0")
  cat >"$tmp/image.json" <<EOF
{"suite":$(json_str "$suite"),"stamp":$(json_str "${dir##*-}"),"format":$IMAGE_FORMAT,"packages":$(json_str "$PACKAGES"),"mirror":$(json_str "$mirror"),"python":$(json_str "$py"),"built":$(json_str "$(date -u +%FT%TZ)"),"buildSeconds":$secs}
EOF
  rm -f "$tmp/debootstrap.log"
  touch "$tmp/ready"
  rm_tree "$dir" # a stale, incomplete dir of the same stamp
  mv -T "$tmp" "$dir"
  trap - EXIT INT TERM
  log "image $suite ready in ${secs}s: $dir (python $py, $(du -sh "$dir/rootfs" | cut -f1))"
}

# Make sure the image for SUITE exists; prints its directory.
ensure_image() {
  local suite=$1 force=${2:-0} dir
  dir=$(image_dir "$suite")
  if ((!force)) && [[ -f $dir/ready && -d $dir/rootfs ]]; then
    echo "$dir"
    return 0
  fi
  mkdir -p "$CACHE_DIR/images"
  exec 8>"$CACHE_DIR/images/.lock"
  flock -w 1800 8 || die "timed out waiting for the image lock"
  if ((force)) || [[ ! -f $dir/ready || ! -d $dir/rootfs ]]; then
    if grep -qF "lowerdir=$dir/rootfs" /proc/self/mountinfo; then
      die "image $dir is in use by running hosts; take them down first"
    fi
    prune_images
    if ((!force)) && [[ -f $dir/ready && -f $dir/rootfs.tar ]]; then
      # The tarball survived but the tree did not: unpack instead of debootstrap.
      log "unpacking $dir/rootfs.tar"
      rm_tree "$dir/rootfs.new"
      mkdir "$dir/rootfs.new"
      tar -C "$dir/rootfs.new" --numeric-owner --xattrs --xattrs-include='*' -xpf "$dir/rootfs.tar"
      mv -T "$dir/rootfs.new" "$dir/rootfs"
    else
      (build_image "$suite" "$dir") >&2
    fi
    prune_images
  fi
  exec 8>&-
  echo "$dir"
}

client_key() {
  local key="$CACHE_DIR/id_ed25519"
  if [[ ! -f $key ]]; then
    mkdir -p "$CACHE_DIR"
    exec 7>"$CACHE_DIR/.key.lock"
    flock -w 60 7
    if [[ ! -f $key ]]; then
      ssh-keygen -q -t ed25519 -N '' -C "ayna-testhost-client" -f "$key.tmp" >/dev/null
      mv "$key.tmp.pub" "$key.pub"
      mv "$key.tmp" "$key"
    fi
    exec 7>&-
  fi
  chmod 0600 "$key"
  echo "$key"
}

cmd_image() {
  need_root
  local suite=$DEFAULT_SUITE force=0
  while (($#)); do
    case $1 in
      --suite) suite=${2:?--suite needs a value}; shift 2 ;;
      --suite=*) suite=${1#*=}; shift ;;
      --force) force=1; shift ;;
      *) die "image: unknown argument '$1'" ;;
    esac
  done
  valid_suite "$suite"
  cmd_deps
  local t0 dir
  t0=$(now_ms)
  dir=$(ensure_image "$suite" "$force")
  client_key >/dev/null
  exec 8>"$CACHE_DIR/images/.lock"
  if flock -n 8; then prune_images; fi
  exec 8>&-
  log "image $suite: $dir ($(secs_since "$t0")s)"
}

# ---------------------------------------------------------------- base image

# A root file system tarball for `docker import` on a --docker host (no image
# registry is reachable from here): minbase with python3, the host image's
# apt sources and CAs (so `apt-get install` works in a `docker build
# --network host`); no init, no sshd. Cached in $BASE_DIR/SUITE-STAMP/.
# Bump BASE_FORMAT (or change BASE_PACKAGES / configure_base_rootfs) to force
# a rebuild.
BASE_FORMAT=1
BASE_PACKAGES=python3,ca-certificates
BASE_DIR="$CACHE_DIR/base-images"

# Everything done to the base image after debootstrap (part of its stamp).
configure_base_rootfs() {
  local root=$1 suite=$2 mirror=$3 security=$4
  write_apt_sources "$root" "$suite" "$mirror" "$security"
  install_extra_cas "$root"
  # As in Debian's own container images: package scripts start no services
  # (no init runs in a container), apt keeps no .debs and fetches no translations.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  # As Debian's slim images: no docs (but copyright), manuals or translations,
  # now or from packages installed later.
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/usr/share/lintian/*
  # Docker gives each container these (debootstrap copied this machine's).
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
  # Smaller: no package lists (apt-get update first), .debs or logs.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
  mkdir -p "$root/var/lib/apt/lists/partial"
  find "$root/var/log" -type f -delete
  rm -rf "$root"/tmp/* "$root"/var/tmp/*
}

base_stamp() { recipe_stamp "base-format=$BASE_FORMAT suite=$1 packages=$BASE_PACKAGES" configure_base_rootfs; }

base_dir() { echo "$BASE_DIR/$1-$(base_stamp "$1")"; }

# Remove interrupted builds and tarballs of other stamps. Caller holds the
# base image lock.
prune_base_images() {
  local d base suite
  for d in "$BASE_DIR"/.build-*; do
    [[ -e $d ]] || continue
    log "removing interrupted base image build $d"
    rm_tree "$d"
  done
  for d in "$BASE_DIR"/*-*; do
    [[ -d $d ]] || continue
    base=${d##*/}
    suite=${base%-*}
    case $suite in trixie | bookworm) ;; *) continue ;; esac
    [[ $d != "$(base_dir "$suite")" ]] || continue
    log "removing outdated base image $d"
    rm_tree "$d"
  done
}

build_base_image() { # SUITE DIR
  local suite=$1 dir=$2 t0 mirror security tmp py secs f
  t0=$(now_ms)
  mirror=$(mirror_url)
  security=$(security_url)
  mkdir -p "$BASE_DIR"
  tmp=$(mktemp -d "$BASE_DIR/.build-XXXXXX")
  chmod 0755 "$tmp"
  # shellcheck disable=SC2064
  trap "rm_tree '$tmp'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "building the $suite Docker base image from $mirror (about a minute) ..."
  run_debootstrap "$suite" "$BASE_PACKAGES" "$tmp" "$mirror"
  configure_base_rootfs "$tmp/rootfs" "$suite" "$mirror" "$security"
  for f in usr/lib/systemd/systemd usr/sbin/sshd usr/sbin/init; do
    [[ ! -e $tmp/rootfs/$f && ! -L $tmp/rootfs/$f ]] || die "base image: /$f should not be in it"
  done
  py=$(chroot "$tmp/rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  tar -C "$tmp/rootfs" --numeric-owner --xattrs --xattrs-include='*' -cf - . | gzip -6 -n >"$tmp/rootfs.tar.gz"
  rm_tree "$tmp/rootfs"
  secs=$(secs_since "$t0")
  cat >"$tmp/image.json" <<EOF
{"suite":$(json_str "$suite"),"stamp":$(json_str "${dir##*-}"),"format":$BASE_FORMAT,"packages":$(json_str "$BASE_PACKAGES"),"mirror":$(json_str "$mirror"),"python":$(json_str "$py"),"bytes":$(stat -c %s "$tmp/rootfs.tar.gz"),"built":$(json_str "$(date -u +%FT%TZ)"),"buildSeconds":$secs}
EOF
  rm -f "$tmp/debootstrap.log"
  touch "$tmp/ready"
  rm_tree "$dir" # a stale, incomplete dir of the same stamp
  mv -T "$tmp" "$dir"
  trap - EXIT INT TERM
  log "base image $suite ready in ${secs}s: $dir/rootfs.tar.gz (python $py, $(du -h "$dir/rootfs.tar.gz" | cut -f1))"
}

# Make sure the base image tarball for SUITE exists; prints its directory.
ensure_base_image() {
  local suite=$1 dir
  dir=$(base_dir "$suite")
  if [[ -f $dir/ready && -f $dir/rootfs.tar.gz ]]; then
    echo "$dir"
    return 0
  fi
  mkdir -p "$BASE_DIR"
  exec 8>"$BASE_DIR/.lock"
  flock -w 1800 8 || die "timed out waiting for the base image lock"
  if [[ ! -f $dir/ready || ! -f $dir/rootfs.tar.gz ]]; then
    prune_base_images
    (build_base_image "$suite" "$dir") >&2
  fi
  exec 8>&-
  echo "$dir"
}

cmd_base_image() {
  need_root
  local suite=$DEFAULT_SUITE
  while (($#)); do
    case $1 in
      --suite) suite=${2:?--suite needs a value}; shift 2 ;;
      --suite=*) suite=${1#*=}; shift ;;
      *) die "base-image: unknown argument '$1'" ;;
    esac
  done
  valid_suite "$suite"
  cmd_deps
  local t0 dir
  t0=$(now_ms)
  dir=$(ensure_base_image "$suite")
  log "base image $suite: $dir/rootfs.tar.gz ($(du -h "$dir/rootfs.tar.gz" | cut -f1), $(secs_since "$t0")s)"
  echo "$dir/rootfs.tar.gz"
}

# ---------------------------------------------------------------- network

lock_state() {
  mkdir -p "$HOSTS"
  exec 9>"$STATE/lock"
  flock -w 120 9 || die "timed out waiting for $STATE/lock"
}
unlock_state() { exec 9>&-; }

ipt_ensure() { # TABLE CHAIN RULE... (inserted at the top, tagged)
  local table=$1 chain=$2
  shift 2
  iptables -w -t "$table" -C "$chain" "$@" -m comment --comment "$TAG" 2>/dev/null ||
    iptables -w -t "$table" -I "$chain" 1 "$@" -m comment --comment "$TAG"
}

ipt_ours() { # TABLE -> our rules as `iptables -S` lines
  iptables -w -t "$1" -S 2>/dev/null | grep -E -- "--comment \"?$TAG\"?( |$)" || true
}

ipt_remove_ours() {
  local table line
  for table in nat filter; do
    while IFS= read -r line; do
      [[ -n $line ]] || continue
      local -a words
      read -ra words <<<"${line//\"/}"
      words[0]=-D
      iptables -w -t "$table" "${words[@]}" || true
    done < <(ipt_ours "$table")
  done
}

# Caller holds the state lock.
ensure_network() {
  if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    log "created bridge $BRIDGE ($NET.1/24)"
  fi
  ip addr replace "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  if [[ ! -f $STATE/ip_forward.prev ]]; then
    cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward.prev"
  fi
  echo 1 >/proc/sys/net/ipv4/ip_forward
  ipt_ensure nat POSTROUTING -s "$NET.0/24" ! -o "$BRIDGE" -j MASQUERADE
  ipt_ensure filter FORWARD -o "$BRIDGE" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  ipt_ensure filter FORWARD -i "$BRIDGE" -j ACCEPT
}

# Caller holds the state lock.
teardown_network() {
  if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE" || true
    log "removed bridge $BRIDGE"
  fi
  ipt_remove_ours
  if [[ -f $STATE/ip_forward.prev ]]; then
    cat "$STATE/ip_forward.prev" >/proc/sys/net/ipv4/ip_forward || true
    rm -f "$STATE/ip_forward.prev"
  fi
}

# Caller holds the state lock. Prints a free address.
alloc_address() {
  local -A used=()
  local f i
  for f in "$HOSTS"/*/address "$HOSTS"/*/aliases; do
    [[ -f $f ]] || continue
    while read -r a; do [[ -n $a ]] && used[$a]=1; done <"$f"
  done
  for f in "$RESERVED"/*; do
    [[ -f $f ]] && used[${f##*/}]=1
  done
  for ((i = 2; i < 255; i++)); do
    if [[ -z ${used[$NET.$i]:-} ]]; then
      echo "$NET.$i"
      return 0
    fi
  done
  return 1
}

# ---------------------------------------------------------------- processes

proc_cmdline() { # PID -> its command line, arguments joined by spaces
  local -a args=()
  mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || true
  printf '%s' "${args[*]}"
}

# The nspawn process of host dir HD, if alive.
nspawn_pid() {
  local hd=$1 pid
  [[ -f $hd/nspawn.pid ]] || return 1
  pid=$(<"$hd/nspawn.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ " $(proc_cmdline "$pid") " == *systemd-nspawn*" $hd/root "* ]] || return 1
  echo "$pid"
}

# Our processes under PREFIX, as "nspawn PID" / "init PID" lines: nspawn
# processes whose root dir is there, and container inits whose root is an
# overlay with its upper dir there (they outlive a SIGKILLed nspawn).
# Builtins only: this walks every process.
our_pids() {
  local prefix=$1 p line ns
  local -a args
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    args=()
    mapfile -d '' -t args 2>/dev/null <"/proc/$p/cmdline" || continue
    if [[ " ${args[*]} " == *systemd-nspawn*" $prefix"* ]]; then
      echo "nspawn $p"
      continue
    fi
    ns=""
    while read -r line; do
      if [[ $line == NSpid:* ]]; then
        ns=$line
        break
      fi
    done 2>/dev/null <"/proc/$p/status" || true
    # The init of a child PID namespace: "NSpid: <pid> 1".
    [[ $ns =~ ^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$ ]] || continue
    if grep -qF "upperdir=$prefix" "/proc/$p/mountinfo" 2>/dev/null; then
      echo "init $p"
    fi
  done
}

wait_gone() { # TIMEOUT_S PID...
  local deadline=$(($(now_ms) + $1 * 1000)) p alive
  shift
  while :; do
    alive=0
    for p in "$@"; do
      [[ -d /proc/$p ]] && [[ $(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null) != Z ]] && alive=1
    done
    ((alive)) || return 0
    (($(now_ms) < deadline)) || return 1
    sleep 0.05
  done
}

# Waits until no process of host dir HD is left; non-zero after TIMEOUT_S.
wait_host_gone() {
  local hd=$1 deadline=$(($(now_ms) + $2 * 1000))
  while [[ -n $(our_pids "$hd/") ]]; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}

# Stops the processes of host dir HD. GRACEFUL (default 1): SIGTERM to nspawn,
# which powers the container off cleanly, for up to STOP_TIMEOUT seconds, then
# a second SIGTERM (nspawn's immediate termination). Then SIGKILL to whatever
# is left, rescanning: a container's init outlives a SIGKILLed nspawn, and one
# that is still starting may not exist at the first scan.
stop_processes() {
  local hd=$1 graceful=${2:-1} np="" kind pid i timeout=$STOP_TIMEOUT
  local -a pids
  [[ -n $(our_pids "$hd/") ]] || return 0
  # dockerd stops its containers first (up to 10 s each by default).
  [[ ! -f $hd/docker ]] || ((timeout >= DOCKER_STOP_TIMEOUT)) || timeout=$DOCKER_STOP_TIMEOUT
  np=$(nspawn_pid "$hd") || np=""
  if [[ -n $np ]] && ((graceful)); then
    kill -TERM "$np" 2>/dev/null || true
    wait_host_gone "$hd" "$timeout" && return 0
    log "${hd##*/}: no clean poweroff within ${timeout}s, terminating"
    kill -TERM "$np" 2>/dev/null || true
    wait_host_gone "$hd" 3 && return 0
  fi
  for ((i = 0; i < 100; i++)); do
    pids=()
    while read -r kind pid; do
      [[ -n $pid ]] && pids+=("$pid")
    done < <(our_pids "$hd/")
    ((${#pids[@]})) || return 0
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.1
  done
  log "warning: processes of ${hd##*/} still alive: ${pids[*]}"
}

# ---------------------------------------------------------------- up

write_file() { # PATH MODE CONTENT
  mkdir -p "$(dirname "$1")"
  printf '%s' "$3" >"$1"
  chmod "$2" "$1"
}

ssh_opts() { # KEY KNOWN_HOSTS
  printf '%s\n' -F /dev/null -i "$1" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$2" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=2 -o LogLevel=ERROR
}

# The host's overlay upper dir: on a tmpfs of its own with `up --disk-mb`.
upper_dir() { # HD
  if [[ -f $1/disk-mb ]]; then echo "$1/disk/upper"; else echo "$1/upper"; fi
}

# ---------------------------------------------------------------- docker

# `up --docker`: the host is booted so that a Docker engine installed inside
# (Debian's docker.io; the product under test installs it, the image has none)
# runs containers with the overlay2 storage driver and cgroup limits:
# - Docker's and containerd's data dirs are plain directories of the host's
#   writable layer dir (on its tmpfs with --disk-mb), bound over
#   /var/lib/docker and /var/lib/containerd (overlay2 refuses an overlayfs,
#   which the host's / is); they go with the host's state dir on `down`;
# - nspawn mounts the cgroup v1 controllers read-only (this machine has the
#   hybrid layout: v1 controllers, name=systemd and cgroup2 at
#   /sys/fs/cgroup/unified, the last two read-write); a oneshot unit remounts
#   every read-only cgroup hierarchy read-write before containerd and docker
#   start (Docker's cgroupfs driver makes its groups in each controller). On a
#   cgroup v2 machine nspawn's /sys/fs/cgroup is already writable and the
#   unit finds nothing to do;
# - nothing else: nspawn's default capabilities (CAP_SYS_ADMIN, CAP_NET_ADMIN,
#   CAP_MKNOD among them), its device policy and the keyctl syscalls every
#   host gets are enough for the engine, `docker build`, `-p`, `--memory`,
#   `--cpus` and `--pids-limit`. (CAP_SYS_RESOURCE, e.g. for a negative
#   --oom-score-adj, is not in this machine's own bounding set.)
# The file $HD/docker names the data dir; `reboot` boots the same way.
DOCKER_STOP_TIMEOUT=30
CGROUP_RW_UNIT=ayna-testhost-cgroup-rw.service

setup_docker_host() { # HD LAYER
  local hd=$1 layer=$2 r="$1/root" data="$2/docker-data"
  install -d -m 0710 "$data/docker"
  install -d -m 0711 "$data/containerd"
  echo "$data" >"$hd/docker"
  mkdir -p "$r/usr/local/sbin" "$r/etc/systemd/system/multi-user.target.wants"
  cat >"$r/usr/local/sbin/ayna-testhost-cgroup-rw" <<'EOF'
#!/bin/sh
# testhost.sh up --docker: systemd-nspawn mounts cgroup hierarchies read-only;
# the Docker engine creates its groups in each of them.
set -eu
awk '{
  split($0, half, " - "); split(half[1], l, " "); split(half[2], r, " ")
  if ((r[1] == "cgroup" || r[1] == "cgroup2") && (l[5] == "/sys/fs/cgroup" || index(l[5], "/sys/fs/cgroup/") == 1) && ("," l[6] ",") ~ /,ro,/)
    print l[5]
}' /proc/self/mountinfo | while read -r mp; do
  mount -o remount,bind,rw "$mp"
  echo "$mp: read-write"
done
EOF
  chmod 0755 "$r/usr/local/sbin/ayna-testhost-cgroup-rw"
  cat >"$r/etc/systemd/system/$CGROUP_RW_UNIT" <<'EOF'
[Unit]
Description=cgroup hierarchies read-write for Docker (test host)
DefaultDependencies=no
Before=containerd.service docker.service docker.socket sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ayna-testhost-cgroup-rw

[Install]
WantedBy=multi-user.target
EOF
  ln -sfn "../$CGROUP_RW_UNIT" "$r/etc/systemd/system/multi-user.target.wants/$CGROUP_RW_UNIT"
}

# nspawn options of host dir HD beyond every host's (one a line; none
# without --docker).
docker_nspawn_opts() { # HD
  local data
  [[ -f $1/docker ]] || return 0
  data=$(<"$1/docker")
  printf '%s\n' "--bind=$data/docker:/var/lib/docker" "--bind=$data/containerd:/var/lib/containerd"
}

# Boots host dir HD (overlay mounted on $HD/root, identity written) and waits
# until sshd lets us in with the recorded host key and systemd says running
# (or degraded); dies BOOT_TIMEOUT seconds after T_START (ms, also the clock
# of the log line). Writes info.json; its line is left in BOOT_JSON. WHAT
# names the event in the log line ("up", "rebooted (hard)").
BOOT_JSON=""

# What a host that did not come up looks like from inside (its init found
# under nspawn PID): addresses, units that failed or are still starting, and
# the end of its journal.
boot_diagnostics() { # NSPAWN_PID
  local init
  [[ -n $1 ]] || return 0
  init=$(pgrep -P "$1" | head -n 1) || return 0
  [[ -n $init ]] || return 0
  echo "--- ports of bridge $BRIDGE here ---"
  ip -br link show master "$BRIDGE" 2>&1
  echo "--- inside (init pid $init): addresses, jobs, failed units, journal ---"
  nsenter --target "$init" --mount --uts --ipc --net --pid -- sh -c \
    'ip -br addr; systemctl list-jobs --no-pager | head -n 20; systemctl --failed --no-pager --no-legend; journalctl -b --no-pager -n 40 -o short-monotonic' 2>&1 |
    cut -c1-240
}

# Starts the host's nspawn in the background. The pid is written by the
# process that becomes nspawn (exec); the old one goes first, so that
# nspawn.pid names the running nspawn or nothing. fds 7-9 are closed so that
# nspawn holds none of our locks.
launch_nspawn() { # HD
  local hd=$1 name=${1##*/}
  local -a extra
  rm -f "$hd/nspawn.pid"
  mapfile -t extra < <(docker_nspawn_opts "$hd")
  # shellcheck disable=SC2016
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$hd/nspawn.pid" \
    systemd-nspawn --quiet --boot --directory "$hd/root" --machine "$name" \
    --network-bridge="$BRIDGE" --register=no --keep-unit --console=passive \
    --link-journal=no --resolv-conf=off --timezone=off \
    --system-call-filter='add_key keyctl request_key' "${extra[@]}" \
    </dev/null >"$hd/nspawn.log" 2>&1 7>&- 8>&- 9>&- &
  disown "$!" # no job report from bash when it is killed later
}

# After host dir HD's processes are gone, before it boots again: what a
# SIGKILLed nspawn leaves behind goes, and its old bridge port VETH (if
# known) is waited out.
clear_stopped() { # HD VETH
  local hd=$1 name=${1##*/} veth=$2 lockfile
  lockfile=$(nspawn_lockfile "$hd")
  rm -f "$lockfile" "$hd/.#root.lck"
  rm_propagate_dir "$name"
  # The kernel removes the veth pair of a dead container a little later; a
  # new nspawn cannot create its own under the same name before.
  if [[ -n $veth ]]; then
    local deadline=$(($(now_ms) + 10000))
    while [[ -e /sys/class/net/$veth ]]; do
      (($(now_ms) < deadline)) || die "interface $veth of $name is still there"
      sleep 0.05
    done
  fi
}

boot_host() {
  local hd=$1 t_start=$2 what=$3 name=${1##*/} addr suite key hostkey
  addr=$(<"$hd/address")
  suite=$(<"$hd/suite")
  key=$(client_key)
  hostkey=$(cut -d' ' -f2,3 "$hd/known_hosts")

  local t_boot retried=0
  t_boot=$(now_ms)
  launch_nspawn "$hd"

  local deadline=$((t_start + BOOT_TIMEOUT * 1000)) pid="" t_ssh="" state="" out rc listening=0 veth
  local -a opts
  mapfile -t opts < <(ssh_opts "$key" "$hd/known_hosts")
  while :; do
    if (($(now_ms) > deadline)); then
      tail -n 20 "$hd/nspawn.log" "$hd/ssh-probe.log" >&2 2>/dev/null || true
      boot_diagnostics "$pid" >&2 || true
      die "host $name did not come up within ${BOOT_TIMEOUT}s (ssh: ${t_ssh:-no}, state: ${state:-unknown})"
    fi
    # A boot that gets stuck before its first login (CI once saw a host
    # never accept a connection on port 22 while its twin, booted beside it,
    # came up in seconds) is cut and started again on the same overlay, once.
    if [[ -z $t_ssh ]] && ((!retried && $(now_ms) - t_boot > SSH_RETRY * 1000)); then
      retried=1
      log "$name: no ssh login ${SSH_RETRY}s after its boot started (sshd listening: $( ((listening)) && echo yes || echo no)); what it looks like:"
      tail -n 5 "$hd/ssh-probe.log" >&2 2>/dev/null || true
      boot_diagnostics "$pid" >&2 || true
      veth=$(host_veth "$hd") || veth=""
      stop_processes "$hd" 0
      [[ -z $(our_pids "$hd/") ]] || die "processes of $name are still alive"
      clear_stopped "$hd" "$veth"
      log "$name: stopped; booting it again (once)"
      pid="" listening=0
      t_boot=$(now_ms)
      launch_nspawn "$hd"
      continue
    fi
    if [[ -z $pid ]]; then
      pid=$(nspawn_pid "$hd") || pid=""
    fi
    if [[ -n $pid ]] && ! proc_alive "$pid" || { [[ -z $pid ]] && (($(now_ms) - t_boot > 5000)); }; then
      tail -n 30 "$hd/nspawn.log" >&2 || true
      die "systemd-nspawn for $name exited"
    fi
    if [[ -z $t_ssh ]]; then
      # Cheap TCP probes until sshd listens (each one that sshd accepts is a
      # connection without a login to it), then real ssh logins with the
      # recorded host key.
      # shellcheck disable=SC2016
      if ((!listening)) && ! timeout 0.5 bash -c 'exec 3<>"/dev/tcp/$0/22"' "$addr" 2>/dev/null; then
        sleep 0.1
        continue
      fi
      listening=1
      if ! ssh "${opts[@]}" "deploy@$addr" true </dev/null 2>>"$hd/ssh-probe.log"; then
        sleep 0.2
        continue
      fi
      t_ssh=$(secs_since "$t_start")
    fi
    rc=0
    out=$(timeout $(((deadline - $(now_ms)) / 1000 + 1)) ssh "${opts[@]}" "deploy@$addr" \
      systemctl is-system-running --wait </dev/null 2>>"$hd/ssh-probe.log") || rc=$?
    state=$out
    case $state in
      running | degraded) break ;;
    esac
    if [[ $rc -ne 255 && -n $state ]]; then
      die "host $name: system state '$state'"
    fi
    sleep 0.2
  done
  local t_run
  t_run=$(secs_since "$t_start")
  if [[ $state == degraded ]]; then
    log "$name is degraded; failed units:"
    ssh "${opts[@]}" "deploy@$addr" systemctl --failed --no-legend --plain </dev/null >&2 || true
  fi

  local json
  json=$(printf '{"name":%s,"address":%s,"port":22,"user":"deploy","privateKeyPath":%s,"hostKey":%s,"knownHostsPath":%s,"suite":%s,"pid":%d,"upperDir":%s}' \
    "$(json_str "$name")" "$(json_str "$addr")" "$(json_str "$key")" "$(json_str "$hostkey")" \
    "$(json_str "$hd/known_hosts")" "$(json_str "$suite")" "$pid" "$(json_str "$(upper_dir "$hd")")")
  echo "$json" >"$hd/info.json"
  log "$name $what at $addr: ssh after ${t_ssh}s, system $state after ${t_run}s"
  BOOT_JSON=$json
}

cmd_up() {
  need_root
  local name="" suite=$DEFAULT_SUITE owner="" wanted_addr="" disk_mb="" docker=0
  while (($#)); do
    case $1 in
      --docker) docker=1; shift ;;
      --address) wanted_addr=${2:?--address needs a value}; shift 2 ;;
      --address=*) wanted_addr=${1#*=}; shift ;;
      --disk-mb) disk_mb=${2:?--disk-mb needs a value}; shift 2 ;;
      --disk-mb=*) disk_mb=${1#*=}; shift ;;
      --suite) suite=${2:?--suite needs a value}; shift 2 ;;
      --suite=*) suite=${1#*=}; shift ;;
      --owner-pid) owner=${2:?--owner-pid needs a value}; shift 2 ;;
      --owner-pid=*) owner=${1#*=}; shift ;;
      -*) die "up: unknown option '$1'" ;;
      *)
        [[ -z $name ]] || die "up: one NAME only"
        name=$1
        shift
        ;;
    esac
  done
  [[ -n $name ]] || die "usage: $0 up NAME [--suite trixie|bookworm] [--owner-pid PID] [--address A] [--disk-mb N] [--docker]"
  valid_name "$name" || die "bad host name '$name' (a-z, 0-9, '-', at most 32 characters)"
  valid_suite "$suite"
  # (a smaller writable layer does not hold what a first boot writes)
  if [[ -n $disk_mb ]] && ! { [[ $disk_mb =~ ^[1-9][0-9]{0,6}$ ]] && ((disk_mb >= 32)); }; then
    die "bad --disk-mb '$disk_mb' (MiB, at least 32)"
  fi
  # From here on, any exit but success undoes what this `up` did (traps are
  # set before the first side effect; SIGINT/SIGTERM run them too).
  UP_NAME=$name
  UP_CREATED=0
  trap up_failed EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cmd_deps
  local t_start img key hd="$HOSTS/$name" addr
  img=$(ensure_image "$suite")
  key=$(client_key)
  t_start=$(now_ms) # the clock for "up" starts once the image is there

  lock_state
  [[ ! -e $hd ]] || die "host $name already exists (run: $0 down $name)"
  ensure_network
  if [[ -n $wanted_addr ]]; then
    [[ -f $RESERVED/$wanted_addr ]] || die "address $wanted_addr is not reserved (stop its host with: $0 down NAME --keep-address)"
    rm -f "$RESERVED/$wanted_addr"
    addr=$wanted_addr
  else
    addr=$(alloc_address) || die "no free address on $NET.0/24"
  fi
  mkdir -p "$hd"
  UP_CREATED=1
  echo "$addr" >"$hd/address"
  unlock_state

  echo "$suite" >"$hd/suite"
  echo "$img" >"$hd/image"
  if [[ -n $owner ]]; then
    [[ $owner =~ ^[0-9]+$ ]] || die "bad --owner-pid '$owner'"
    local st
    st=$(proc_stat "$owner") || die "owner process $owner does not exist"
    echo "$owner ${st#* }" >"$hd/owner"
  fi

  # Fresh writable layer over the read-only image; with --disk-mb on a tmpfs
  # of its own, which the host's / then reports as its size (and fills).
  local layer=$hd
  if [[ -n $disk_mb ]]; then
    echo "$disk_mb" >"$hd/disk-mb"
    layer=$hd/disk
    mkdir -p "$layer"
    mount -t tmpfs -o "size=${disk_mb}m,mode=0755" "ayna-testhost-$name" "$layer"
  fi
  mkdir -p "$layer/upper" "$layer/work" "$hd/root"
  mount -t overlay overlay -o "lowerdir=$img/rootfs,upperdir=$layer/upper,workdir=$layer/work" "$hd/root"
  local r="$hd/root"

  # Identity: hostname, machine id, address, resolver, host key, authorized keys.
  write_file "$r/etc/hostname" 0644 "$name"$'\n'
  local mid
  mid=$(tr -d '-' </proc/sys/kernel/random/uuid)
  write_file "$r/etc/machine-id" 0444 "$mid"$'\n'
  local hosts
  hosts=$(printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$name")
  # The machine's non-loopback /etc/hosts lines (e.g. registry addresses).
  hosts+=$'\n'$(awk '$1 !~ /^(#|127\.|::1|fe00:|ff0[02]:)/ && NF >= 2' /etc/hosts || true)
  write_file "$r/etc/hosts" 0644 "$hosts"$'\n'
  rm -f "$r/etc/resolv.conf"
  local resolv=/etc/resolv.conf
  if ! awk '$1 == "nameserver" && $2 !~ /^127\./ && $2 != "::1" { f = 1 } END { exit !f }' "$resolv" &&
    [[ -r /run/systemd/resolve/resolv.conf ]]; then
    resolv=/run/systemd/resolve/resolv.conf # the machine's stub 127.0.0.53 is not reachable inside
  fi
  cp -L "$resolv" "$r/etc/resolv.conf"
  chmod 0644 "$r/etc/resolv.conf"
  write_file "$r/etc/systemd/network/10-host0.network.d/50-address.conf" 0644 \
    "$(printf '[Network]\nAddress=%s/24\nGateway=%s.1\n' "$addr" "$NET")"$'\n'
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$r/etc/ssh/ssh_host_ed25519_key" </dev/null >/dev/null
  # OpenSSH 10's per-source penalties (on by default) refuse an address that
  # made ~15 connections without logging in: the harness's boot probes and
  # the tests' deliberate failures all come from this machine's bridge
  # address, and CI once saw a booting host refuse it for 300 s. This machine
  # is exempt, as a fleet would exempt its deploying host.
  # (bookworm's sshd 9.2 has no penalties, and refuses the option.)
  if grep -aqi persourcepenaltyexemptlist "$r/usr/sbin/sshd"; then
    write_file "$r/etc/ssh/sshd_config.d/20-ayna-testhost-exempt.conf" 0644 \
      "PerSourcePenaltyExemptList $NET.1"$'\n'
  fi
  local hostkey
  hostkey=$(cut -d' ' -f1,2 "$r/etc/ssh/ssh_host_ed25519_key.pub")
  echo "$addr $hostkey" >"$hd/known_hosts"
  local pub uid gid
  pub=$(<"$key.pub")
  write_file "$r/root/.ssh/authorized_keys" 0600 "$pub"$'\n'
  uid=$(awk -F: '$1 == "deploy" { print $3 }' "$r/etc/passwd")
  gid=$(awk -F: '$1 == "deploy" { print $4 }' "$r/etc/passwd")
  write_file "$r/home/deploy/.ssh/authorized_keys" 0600 "$pub"$'\n'
  chown "$uid:$gid" "$r/home/deploy/.ssh/authorized_keys"
  ((!docker)) || setup_docker_host "$hd" "$layer"

  boot_host "$hd" "$t_start" up
  trap - EXIT INT TERM
  echo "$BOOT_JSON"
}

# ---------------------------------------------------------------- reboot

# The bridge port (host side of the veth pair) of host dir HD's running
# container, found through its init's network namespace.
host_veth() { # HD
  local kind pid idx="" line
  while read -r kind pid; do
    [[ $kind == init ]] || continue
    line=$(nsenter -t "$pid" -n ip -o link show dev host0 2>/dev/null) || continue
    [[ $line =~ ^[0-9]+:\ host0@if([0-9]+): ]] && idx=${BASH_REMATCH[1]}
  done < <(our_pids "$1/")
  [[ -n $idx ]] || return 1
  ip -o link show | awk -F': ' -v i="$idx" '$1 == i { sub(/@.*/, "", $2); print $2; f = 1 } END { exit !f }'
}

REBOOT_NAME=""

# EXIT trap of a failed `reboot`: no half-booted host is left running; its
# state stays for its owner's `down` (or `gc`).
reboot_failed() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM
  log "reboot $REBOOT_NAME failed; host stopped (remove it with: $0 down $REBOOT_NAME)"
  stop_processes "$HOSTS/$REBOOT_NAME" 0 || true
  exit "$rc"
}

# reboot NAME [--hard]: the same host boots again on the same overlay (and
# tmpfs, with --disk-mb), so its files, name, address, host keys, machine-id
# and owner stay. Graceful: a clean poweroff as `down` does; --hard: a power
# cut, SIGKILL to nspawn and the container's init at once.
cmd_reboot() {
  need_root
  local name="" hard=0
  while (($#)); do
    case $1 in
      --hard) hard=1; shift ;;
      -*) die "reboot: unknown option '$1'" ;;
      *)
        [[ -z $name ]] || die "reboot: one NAME only"
        name=$1
        shift
        ;;
    esac
  done
  [[ -n $name ]] || die "usage: $0 reboot NAME [--hard]"
  valid_name "$name" || die "bad host name '$name'"
  local hd=$HOSTS/$name how=graceful t0 veth
  ((hard)) && how=hard
  if ! { [[ -f $hd/info.json ]] && nspawn_pid "$hd" >/dev/null && mountpoint -q "$hd/root"; }; then
    die "host $name is not running"
  fi
  t0=$(now_ms)
  REBOOT_NAME=$name
  trap reboot_failed EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Without info.json, `gc --stale` takes it for a host being started and
  # leaves it to us while its nspawn is down; boot_host writes it again.
  rm -f "$hd/info.json"
  veth=$(host_veth "$hd") || veth=""
  stop_processes "$hd" $((!hard))
  [[ -z $(our_pids "$hd/") ]] || die "processes of $name are still alive"
  clear_stopped "$hd" "$veth"
  log "$name stopped ($how) in $(secs_since "$t0")s"
  boot_host "$hd" "$t0" "rebooted ($how)"
  trap - EXIT INT TERM
  echo "$BOOT_JSON"
}

# ---------------------------------------------------------------- down

# EXIT trap of a failed `up`: take the half-started host down again, and the
# network when no host is left.
up_failed() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM
  if ((UP_CREATED)); then
    log "up $UP_NAME failed; cleaning up"
    down_host "$UP_NAME" 0 || true
  fi
  lock_state
  teardown_network_if_idle
  unlock_state
  exit "$rc"
}

# Stop host NAME (GRACEFUL: see stop_processes) and remove its state; the
# network goes too if it was the last host.
down_host() {
  local name=$1 hd="$HOSTS/$1" lockfile gone="$GONE/$1.$BASHPID"
  stop_processes "$hd" "${2:-1}"
  lockfile=$(nspawn_lockfile "$hd")
  umount_under "$hd"
  # The host leaves $HOSTS and, if it was the last, the network goes with it
  # in one hold of the state lock: a check-clean of another run (which takes
  # the lock) never sees no host while the bridge is still up.
  lock_state
  mkdir -p "$GONE"
  if [[ -e $hd ]]; then mv "$hd" "$gone"; fi
  teardown_network_if_idle
  unlock_state
  rm_tree "$gone"
  # (the overlay's device number was ours alone while it was mounted)
  [[ -z $lockfile ]] || rm -f "$lockfile"
  rm_propagate_dir "$name"
}

# A SIGKILLed nspawn leaves its image lock and propagation dir in /run (and a
# lock file beside the root dir). The global image lock of host dir HD's root,
# keyed by the overlay's device and inode; nothing while it is not mounted.
nspawn_lockfile() { # HD
  if mountpoint -q "$1/root"; then
    echo "/run/systemd/nspawn/locks/inode-$(stat -c '%d:%i' "$1/root")"
  fi
}

rm_propagate_dir() { # NAME
  if [[ -d /run/systemd/nspawn/propagate/$1 ]] && ! nspawn_named "$1"; then
    rm -rf --one-file-system "/run/systemd/nspawn/propagate/$1"
  fi
}

# Is any systemd-nspawn process running a machine called NAME?
nspawn_named() {
  local p
  local -a args
  for p in /proc/[0-9]*; do
    args=()
    mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
    [[ ${args[0]:-} == *systemd-nspawn ]] || continue
    [[ " ${args[*]} " == *" --machine $1 "* || " ${args[*]} " == *" -M $1 "* ||
      " ${args[*]} " == *" --machine=$1 "* ]] && return 0
  done
  return 1
}

# Caller holds the state lock.
teardown_network_if_idle() {
  local d
  for d in "$HOSTS"/*; do
    [[ -e $d ]] && return 0
  done
  teardown_network
}

down_one() {
  local t0
  t0=$(now_ms)
  if [[ ! -e $HOSTS/$1 ]] && [[ -z $(our_pids "$HOSTS/$1/") ]]; then
    log "$1 is not running"
  else
    down_host "$1"
    log "$1 down in $(secs_since "$t0")s"
  fi
}

cmd_down() {
  need_root
  if [[ ${2:-} == --keep-address ]]; then
    (($# == 2)) || die "usage: $0 down NAME --keep-address"
    valid_name "$1" || die "bad host name '$1'"
    [[ -f $HOSTS/$1/address ]] || die "host $1 is not running"
    lock_state
    mkdir -p "$RESERVED"
    cp "$HOSTS/$1/address" "$RESERVED/$(<"$HOSTS/$1/address")"
    unlock_state
    down_one "$1"
    return 0
  fi
  (($#)) || die "usage: $0 down NAME..."
  local name
  for name in "$@"; do
    valid_name "$name" || die "bad host name '$name'"
  done
  mkdir -p "$HOSTS"
  if (($# == 1)); then
    down_one "$1"
  else
    # Several hosts power off in parallel.
    for name in "$@"; do
      down_one "$name" &
    done
    wait
  fi
  lock_state
  teardown_network_if_idle
  unlock_state
}

proc_stat() { # PID -> "STATE STARTTIME" (fields 3 and 22 of /proc/PID/stat)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) } # the command name may contain spaces and parentheses
  local -a f
  read -ra f <<<"$s"
  echo "${f[0]} ${f[19]}"
}

proc_alive() { # PID -> 0 if it runs (and is no zombie)
  local st
  st=$(proc_stat "$1") || return 1
  [[ ${st%% *} != [ZX] ]]
}

owner_alive() { # HD -> 0 if its owner process still runs (or it has none)
  local hd=$1 pid st state cur
  [[ -f $hd/owner ]] || return 0
  read -r pid st <"$hd/owner" || return 0
  read -r state cur < <(proc_stat "$pid") || return 1
  [[ $state != [ZX] ]] || return 1
  [[ -z $st || $cur == "$st" ]]
}

cmd_gc() {
  need_root
  local stale=0
  while (($#)); do
    case $1 in
      --stale) stale=1; shift ;;
      *) die "gc: unknown argument '$1'" ;;
    esac
  done
  local t0 hd name n=0
  t0=$(now_ms)
  mkdir -p "$HOSTS"
  for hd in "$HOSTS"/*; do
    [[ -d $hd ]] || continue
    name=${hd##*/}
    if ((stale)); then
      # Hosts being started have no info.json yet: leave those to their `up`.
      if owner_alive "$hd" && { nspawn_pid "$hd" >/dev/null || [[ ! -f $hd/info.json ]]; }; then
        continue
      fi
    fi
    down_host "$name" &
    n=$((n + 1))
  done
  wait
  if ((!stale)); then
    rm -rf "$RESERVED"
    for hd in "$GONE"/*; do
      rm_tree "$hd"
    done
    # Leftovers that no host dir accounts for.
    local kind pid pids=()
    while read -r kind pid; do
      [[ -n $pid ]] && pids+=("$pid")
    done < <(our_pids "$HOSTS/")
    if ((${#pids[@]})); then
      log "killing leftover processes: ${pids[*]}"
      kill -KILL "${pids[@]}" 2>/dev/null || true
      wait_gone 10 "${pids[@]}" || true
    fi
    umount_under "$HOSTS"
    # Interrupted image builds (only when no build is running).
    if [[ -d $CACHE_DIR/images ]]; then
      exec 8>"$CACHE_DIR/images/.lock"
      if flock -n 8; then prune_images; fi
      exec 8>&-
    fi
    if [[ -d $BASE_DIR ]]; then
      exec 8>"$BASE_DIR/.lock"
      if flock -n 8; then prune_base_images; fi
      exec 8>&-
    fi
  fi
  lock_state
  teardown_network_if_idle
  unlock_state
  log "gc: removed $n host(s) in $(secs_since "$t0")s"
}

cmd_alias() {
  need_root
  (($# == 1)) || die "usage: $0 alias NAME"
  local hd=$HOSTS/$1 addr key
  if ! { valid_name "$1" && [[ -f $hd/info.json ]]; }; then
    die "host $1 is not running"
  fi
  lock_state
  addr=$(alloc_address) || die "no free address on $NET.0/24"
  echo "$addr" >>"$hd/aliases"
  unlock_state
  key=$(client_key)
  local -a opts
  mapfile -t opts < <(ssh_opts "$key" "$hd/known_hosts")
  ssh "${opts[@]}" "root@$(<"$hd/address")" ip addr add "$addr/24" dev host0 </dev/null >&2 ||
    die "could not add $addr to $1"
  # The address may have been an earlier host's: this machine's neighbour entry
  # would still name that host's MAC until it goes stale (CI saw a first
  # connection to a fresh alias time out after 10 s). Forget it, then wait
  # until sshd answers there.
  ip neigh del "$addr" dev "$BRIDGE" 2>/dev/null || true
  local i
  for ((i = 0; i < 60; i++)); do
    timeout 0.5 bash -c 'exec 3<>"/dev/tcp/$0/22"' "$addr" 2>/dev/null && break
    sleep 0.5
  done
  ((i < 60)) || die "$addr was added to $1 but sshd does not answer there within 60 s"
  echo "$addr"
}

cmd_list() {
  local hd
  [[ -d $HOSTS ]] || return 0
  for hd in "$HOSTS"/*; do
    [[ -f $hd/info.json ]] || continue
    nspawn_pid "$hd" >/dev/null || continue
    cat "$hd/info.json"
  done
}

# check-clean [NAME...]: without names, everything of the harness; with
# names, only those hosts, plus the shared bridge and NAT rules once no host
# at all is left (so concurrent test runs do not fail each other's checks).
cmd_check_clean() {
  local problems=() kind pid hd line name any=0
  local -a prefixes=()
  for name in "$@"; do
    valid_name "$name" || die "bad host name '$name'"
    prefixes+=("$HOSTS/$name")
  done
  (($#)) || prefixes=("$HOSTS")
  # Hosts come and go with the network under this lock (see down_host).
  [[ ! -d $STATE ]] || lock_state
  if [[ -d $HOSTS ]]; then
    for hd in "$HOSTS"/*; do
      [[ -e $hd ]] && any=1
    done
  fi
  for hd in "${prefixes[@]}"; do
    while read -r kind pid; do
      [[ -n $pid ]] && problems+=("process: $kind $pid $(proc_cmdline "$pid" | cut -c1-120)")
    done < <(our_pids "$hd/")
    while IFS= read -r line; do
      [[ -n $line ]] && problems+=("mount: $line")
    done < <(awk -v p="$hd/" '{ if (index($5, p) == 1) print $5 }' /proc/self/mountinfo)
    if (($#)); then
      [[ -e $hd ]] && problems+=("state: $hd")
    elif ((any)); then
      for line in "$HOSTS"/*; do
        [[ -e $line ]] && problems+=("state: $line")
      done
    fi
  done
  if ((!$#)); then
    for line in "$RESERVED"/*; do
      [[ -e $line ]] && problems+=("reserved address: ${line##*/}")
    done
    for line in "$GONE"/*; do
      [[ -e $line ]] && problems+=("state of a stopped host: $line")
    done
  fi
  if ((!$# || !any)); then
    if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
      problems+=("bridge: $BRIDGE")
    fi
    for kind in nat filter; do
      while IFS= read -r line; do
        [[ -n $line ]] && problems+=("iptables -t $kind: $line")
      done < <(ipt_ours "$kind")
    done
  fi
  unlock_state
  # Interrupted image builds (unless a build is running right now).
  if ((!$#)) && [[ -d $CACHE_DIR/images ]]; then
    exec 8>"$CACHE_DIR/images/.lock"
    if flock -n 8; then
      for hd in "$CACHE_DIR"/images/.build-*; do
        [[ -e $hd ]] && problems+=("interrupted image build: $hd")
      done
      while IFS= read -r line; do
        [[ -n $line ]] && problems+=("mount: $line")
      done < <(awk -v p="$CACHE_DIR/images/.build-" '{ if (index($5, p) == 1) print $5 }' /proc/self/mountinfo)
    fi
    exec 8>&-
  fi
  if ((!$#)) && [[ -d $BASE_DIR ]]; then
    exec 8>"$BASE_DIR/.lock"
    if flock -n 8; then
      for hd in "$BASE_DIR"/.build-*; do
        [[ -e $hd ]] && problems+=("interrupted base image build: $hd")
      done
      while IFS= read -r line; do
        [[ -n $line ]] && problems+=("mount: $line")
      done < <(awk -v p="$BASE_DIR/.build-" '{ if (index($5, p) == 1) print $5 }' /proc/self/mountinfo)
    fi
    exec 8>&-
  fi
  if ((${#problems[@]})); then
    log "not clean:"
    printf '  %s\n' "${problems[@]}" >&2
    return 1
  fi
  log "clean${1:+ ($*)}"
}

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    deps) cmd_deps "$@" ;;
    image) cmd_image "$@" ;;
    base-image) cmd_base_image "$@" ;;
    up) cmd_up "$@" ;;
    reboot) cmd_reboot "$@" ;;
    down) cmd_down "$@" ;;
    down-all) cmd_gc "$@" ;;
    gc) cmd_gc "$@" ;;
    alias) cmd_alias "$@" ;;
    list) cmd_list "$@" ;;
    check-clean) cmd_check_clean "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
