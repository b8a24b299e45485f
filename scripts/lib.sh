# shellcheck shell=bash
# Shared by the project's scripts: where things live. Source it; it sets no
# shell options of its own.
repo_root=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cache_dir=${AYNA_CACHE_DIR:-/var/cache/ayna-deploy}
pulumi_version=$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2 }' "$repo_root/toolchain/go.mod")
pulumi_bin_dir=$cache_dir/toolchain/pulumi-$pulumi_version
node_version=v20.20.2
node_dir=$cache_dir/node-$node_version
# uv and the interpreter it locks apps with (scripts/toolchain.sh).
tool_bin=$cache_dir/toolchain/bin

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Puts the cached toolchain first on PATH and keeps Pulumi off the network.
use_toolchain() {
  if [ -x "$node_dir/bin/node" ]; then PATH=$node_dir/bin:$PATH; fi
  PATH=$pulumi_bin_dir:$tool_bin:$PATH
  export PATH
  export PULUMI_SKIP_UPDATE_CHECK=true
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
}
