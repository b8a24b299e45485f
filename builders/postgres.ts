// The project's database on the host's own PostgreSQL (Debian's package): the
// idempotent set-up of its role and database, the refresh check, the backup
// tool that lives in the project's bin/, and its systemd timer.
import { paths } from "../standard/paths";
import { argv, shell } from "./shell";

export interface DatabaseSpec {
  project: string;
  /** Database and role name (a lower-case PostgreSQL name, checked by the config). */
  name: string;
  /** Owner of the dumps: the service user and its group. */
  user: string;
  group: string;
  /** Dumps older than this many days are removed after each backup; 0 keeps every dump. */
  retentionDays: number;
}

/** A database (and role) name: lower-case PostgreSQL letters, digits and _, never quoted in use. */
export const databaseNamePattern = /^[a-z_][a-z0-9_]{0,62}$/;

/** The database and role of a project unless config names one: the project, with - as _. */
export function defaultDatabaseName(project: string): string {
  return project.replace(/-/g, "_");
}

const psql = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"];

/** A PostgreSQL string literal. */
export function sqlLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A PostgreSQL identifier, quoted. */
export function sqlIdentifier(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** postgresql://NAME:PASSWORD@127.0.0.1:5432/NAME: what the app's DATABASE_URL becomes. */
export function localDatabaseUrl(name: string, password: string): string {
  return `postgresql://${encodeURIComponent(name)}:${encodeURIComponent(password)}@127.0.0.1:5432/${encodeURIComponent(name)}`;
}

/**
 * Makes the role (LOGIN, with the password read from stdin) and the database
 * it owns, each only when missing; sets the password every run, so a new
 * generated password takes effect. The password reaches psql on its stdin,
 * through shell builtins only: never a command line, a file or the log.
 */
export function ensureDatabaseScript(s: DatabaseSpec): string {
  const role = sqlIdentifier(s.name);
  const createRole = `SELECT ${sqlLiteral(`CREATE ROLE ${role} LOGIN`)} WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${sqlLiteral(s.name)})\\gexec`;
  const createDb = `SELECT ${sqlLiteral(`CREATE DATABASE ${role} OWNER ${role}`)} WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = ${sqlLiteral(s.name)})\\gexec`;
  const lines = [
    "set -eu",
    "pw=$(cat)",
    `[ -n "$pw" ] || { echo 'database: no password on stdin' >&2; exit 2; }`,
    // A fresh install starts its cluster in the background.
    "i=0",
    `until runuser -u postgres -- pg_isready -q; do i=$((i + 1)); if [ "$i" -ge 60 ]; then echo 'database: PostgreSQL is not accepting connections after 60 s; see systemctl status postgresql and journalctl -u postgresql@*' >&2; exit 3; fi; sleep 1; done`,
    `esc=$(printf '%s' "$pw" | sed "s/'/''/g")`,
    `{ printf '%s\\n' ${argv(createRole)}; printf ${argv(`ALTER ROLE ${role} WITH LOGIN PASSWORD '%s';\\n`)} "$esc"; printf '%s\\n' ${argv(createDb)}; } | ${argv(...psql)}`,
    `echo ${argv(`database ${s.name} and its role ready on 127.0.0.1:5432`)}`,
  ];
  return lines.join("\n");
}

export function ensureDatabaseCommand(s: DatabaseSpec): string {
  return shell(ensureDatabaseScript(s), { sudo: true });
}

/** For `pulumi refresh`: the database and the role are still there. */
export function databaseCheckCommand(s: DatabaseSpec): string {
  const query = `SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = ${sqlLiteral(s.name)} AND r.rolname = ${sqlLiteral(s.name)} AND r.rolcanlogin`;
  return shell(
    `[ "$(${argv("runuser", "-u", "postgres", "--", "psql", "-X", "-tA", "-d", "postgres", "-c", query)})" = 1 ]`,
    {
      sudo: true,
    },
  );
}

/** Where the backup tool is installed. */
export function databaseToolPath(project: string): string {
  return `${paths.bin(project)}/ayna-db`;
}

export function backupDir(project: string): string {
  return `${paths.shared(project)}/backups`;
}

/** `{project}-backup.service` and `.timer`. */
export function backupUnitNames(project: string): { service: string; timer: string } {
  return { service: `${project}-backup.service`, timer: `${project}-backup.timer` };
}

/**
 * bin/ayna-db: `backup` dumps the database (custom format) into
 * shared/backups as 0600 files of the service user, written under a temporary
 * name and renamed; `list` shows the dumps; `restore FILE [DB]` loads a dump
 * into a scratch database (NAME_restore unless DB is given), or into the live
 * database with DB equal to its name, in one transaction.
 */
export function renderDatabaseTool(s: DatabaseSpec): string {
  const v = (name: string, value: string | number) => `${name}=${argv(value)}`;
  return `#!/bin/bash
# ${databaseToolPath(s.project)}: installed by ayna-deploy. Backups of the
# project's database on this host's PostgreSQL. Run as root.
#   ayna-db backup              dump into ${backupDir(s.project)} (files 0600)
#   ayna-db list                the dumps, newest last
#   ayna-db restore FILE [DB]   into a scratch database (${s.name}_restore), or DB
set -euo pipefail
${v("DB", s.name)}
${v("OWNER", s.user)}
${v("GROUP", s.group)}
${v("DIR", backupDir(s.project))}
${v("KEEP_DAYS", s.retentionDays)}

die() { echo "ayna-db: $1" >&2; exit "\${2:-1}"; }
as_postgres() { runuser -u postgres -- "$@"; }

backup() {
  local stamp file tmp
  umask 077
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  file=$DIR/$DB-$stamp.dump
  tmp=$DIR/.$DB-$stamp.dump.part
  trap 'rm -f "$tmp"' EXIT
  as_postgres pg_dump --format=custom --no-password "$DB" >"$tmp" || die "pg_dump of $DB failed; nothing was kept"
  chown "$OWNER:$GROUP" "$tmp"
  chmod 0600 "$tmp"
  mv -T "$tmp" "$file"
  trap - EXIT
  if [ "$KEEP_DAYS" -gt 0 ]; then
    # -mtime +N: whole days of age above N, so +(KEEP_DAYS - 1) is "KEEP_DAYS days or older".
    find "$DIR" -maxdepth 1 -type f -name "$DB-*.dump" -mtime "+$((KEEP_DAYS - 1))" -print -delete |
      sed 's/^/backup: removed /'
  fi
  echo "backup: $file ($(stat -c %s "$file") bytes)"
}

list() {
  find "$DIR" -maxdepth 1 -type f -name "$DB-*.dump" -printf '%TY-%Tm-%Td %TH:%TM  %10s  %f\\n' | sort
}

restore() {
  local file=\${1:-} target=\${2:-\${DB}_restore}
  [ -n "$file" ] || die "restore: which dump? ayna-db list shows them" 2
  case $file in */*) ;; *) file=$DIR/$file ;; esac
  [ -f "$file" ] || die "restore: no dump $file; ayna-db list shows them" 2
  [[ $target =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "restore: $target is not a database name" 2
  if [ "$target" = "$DB" ]; then
    echo "restore: into the live database $DB, in one transaction"
    as_postgres pg_restore --clean --if-exists --no-owner --role="$DB" --single-transaction --exit-on-error -d "$DB" <"$file" ||
      die "restore into $DB failed and was rolled back; $DB is as it was"
  else
    as_postgres dropdb --if-exists "$target"
    as_postgres createdb --owner="$DB" "$target"
    as_postgres pg_restore --no-owner --role="$DB" --exit-on-error -d "$target" <"$file" ||
      die "restore into $target failed"
  fi
  echo "restore: $(basename "$file") is in database $target"
}

case \${1:-} in
  backup) backup ;;
  list) list ;;
  restore) shift; restore "$@" ;;
  *) die "usage: ayna-db backup | list | restore FILE [DB]" 2 ;;
esac
`;
}

export function renderBackupService(s: DatabaseSpec): string {
  return `# Installed by ayna-deploy: a dump of the database ${s.name} into ${backupDir(s.project)}.
[Unit]
Description=${s.project}: dump the PostgreSQL database ${s.name}
After=postgresql.service
Requires=postgresql.service

[Service]
Type=oneshot
ExecStart=${databaseToolPath(s.project)} backup
PrivateTmp=yes
ProtectHome=yes
ProtectSystem=full
`;
}

export function renderBackupTimer(s: DatabaseSpec): string {
  return `# Installed by ayna-deploy: the daily dump of the database ${s.name}.
[Unit]
Description=${s.project}: daily dump of the PostgreSQL database ${s.name}

[Timer]
OnCalendar=daily
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target
`;
}

/** Reloads systemd for the backup units and keeps the timer enabled and started. */
export function enableBackupTimerCommand(project: string): string {
  return shell(
    `systemctl daemon-reload && ${argv("systemctl", "enable", "--now", "--quiet", backupUnitNames(project).timer)}`,
    {
      sudo: true,
    },
  );
}

/** For `pulumi refresh`: the timer is still enabled and waiting. */
export function backupTimerCheckCommand(project: string): string {
  const timer = backupUnitNames(project).timer;
  return shell(
    `${argv("systemctl", "is-enabled", "--quiet", timer)} && ${argv("systemctl", "is-active", "--quiet", timer)}`,
  );
}

/** The timer turned off (retention 0, or no local database any more). */
export function disableBackupTimerCommand(project: string): string {
  return shell(
    `${argv("systemctl", "disable", "--now", "--quiet", backupUnitNames(project).timer)} 2>/dev/null || true; systemctl daemon-reload`,
    { sudo: true },
  );
}
