#!/usr/bin/env bash
# The main job on its embedded default: build the toolchain, boot a local test
# host, and `pulumi preview --diff` + `pulumi up` the program against it with a
# local file state backend. `scripts/demo.sh down` destroys and stops it all.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root" || exit 1

demo_dir=$cache_dir/demo
stack=demo
host_name=demo
export PULUMI_HOME=$demo_dir/home
export PULUMI_BACKEND_URL=file://$demo_dir/state
# Demo only: a real stack uses a passphrase (or KMS key) of its own.
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-ayna-demo-passphrase}
config_file=$demo_dir/Pulumi.$stack.yaml

pulumi_() { pulumi "$@" --stack "$stack" --non-interactive; }

if [ "${1:-}" = "down" ]; then
  use_toolchain
  if [ -d "$demo_dir/state" ]; then
    pulumi_ destroy --yes --config-file "$config_file" || true
    pulumi_ stack rm --yes --force || true
  fi
  bash scripts/testhost.sh down "$host_name"
  rm -rf "$demo_dir"
  exit 0
fi

bash scripts/toolchain.sh
use_toolchain
bash scripts/testhost.sh deps
mkdir -p "$demo_dir/state" "$PULUMI_HOME"

host_json=$(bash scripts/testhost.sh list | node -e '
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
  const h = lines.map((l) => JSON.parse(l)).find((x) => x.name === process.argv[1]);
  if (h) process.stdout.write(JSON.stringify(h));
' "$host_name")
if [ -z "$host_json" ]; then
  log "booting test host '$host_name'"
  host_json=$(bash scripts/testhost.sh up "$host_name")
  # A fresh host has nothing on it: start the demo stack afresh too.
  pulumi_ stack rm --yes --force >/dev/null 2>&1 || true
  rm -f "$config_file"
fi
field() { node -e 'process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]]))' "$host_json" "$1"; }

pulumi_ stack select >/dev/null 2>&1 || pulumi stack init "$stack" --non-interactive >/dev/null
cfg() { pulumi_ config set --config-file "$config_file" "$@"; }
cfg project demoapp
cfg stage staging
cfg --path 'hosts[0].name' web1
cfg --path 'hosts[0].address' "$(field address)"
cfg --path 'hosts[0].port' "$(field port)"
cfg --path 'hosts[0].user' "$(field user)"
cfg --path 'hosts[0].hostKey' "$(field hostKey)"
cfg --secret sshPrivateKey <"$(field privateKeyPath)"
# The sample app: a declared port range (demoapp is not in the standard's
# registry), Django settings, and SQLite in shared/ as its database.
cfg --path ports.base 8150
cfg --path env.DJANGO_SETTINGS_MODULE config.settings
printf '%s' 'sqlite:////opt/ayna/demoapp/shared/db.sqlite3' | cfg --secret --path secretEnv.DATABASE_URL

log "pulumi preview --diff"
pulumi_ preview --diff --config-file "$config_file"
log "pulumi up"
pulumi_ up --yes --skip-preview --config-file "$config_file"

ssh_=(ssh -i "$(field privateKeyPath)" -o UserKnownHostsFile="$(field knownHostsPath)" -o BatchMode=yes "$(field user)@$(field address)")
log "on the host:"
"${ssh_[@]}" 'systemctl is-active demoapp-web demoapp-api demoapp-celery demoapp-beat | paste -sd" "; curl -s 127.0.0.1:8150/health; echo; curl -s 127.0.0.1:8151/health; echo' >&2

cat >&2 <<INFO

Deployed the sample app to test host '$host_name' at $(field address) (state: $demo_dir/state).
  ssh in:     ssh -i $(field privateKeyPath) -o UserKnownHostsFile=$(field knownHostsPath) $(field user)@$(field address)
  run again:  bash scripts/demo.sh    (a second run changes nothing)
  tear down:  bash scripts/demo.sh down
INFO
