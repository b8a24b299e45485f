set -eu
pw=$(cat)
[ -n "$pw" ] || { echo 'database: no password on stdin' >&2; exit 2; }
i=0
until runuser -u postgres -- pg_isready -q; do i=$((i + 1)); if [ "$i" -ge 60 ]; then echo 'database: PostgreSQL is not accepting connections after 60 s; see systemctl status postgresql and journalctl -u postgresql@*' >&2; exit 3; fi; sleep 1; done
esc=$(printf '%s' "$pw" | sed "s/'/''/g")
{ printf '%s\n' 'SELECT '\''CREATE ROLE "demoapp" LOGIN'\'' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '\''demoapp'\'')\gexec'; printf 'ALTER ROLE "demoapp" WITH LOGIN PASSWORD '\''%s'\'';\n' "$esc"; printf '%s\n' 'SELECT '\''CREATE DATABASE "demoapp" OWNER "demoapp"'\'' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '\''demoapp'\'')\gexec'; } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres
echo 'database demoapp and its role ready on 127.0.0.1:5432'