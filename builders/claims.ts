// A project's claim on a host: its port range and its database on the host's
// Redis, written to /etc/ayna/claims/<project>, so two projects (two stacks)
// deployed to one host can never take the same ports or the same Redis
// database. Runs as root before the bootstrap; a refusal changes nothing.
import { rangeSize } from "../standard/portRegistry";
import { argv, seq, shell } from "./shell";

export interface ClaimSpec {
  project: string;
  /** First port of the project's range. */
  portBase: number;
  /** Ports in the range. @default 10 */
  portCount?: number;
  /** The project's database on the host's Redis; unset when Redis is not the host's. */
  redisDb?: number;
}

/** Where the claims live on a host, and the lock two deploys serialise on. */
export const claimsDir = "/etc/ayna/claims";
export const claimsLock = "/run/lock/ayna-claims.lock";

/** Exit code of a refused claim. */
export const claimRefused = 4;

/** Only for tests, which run the script against a directory of their own. */
export interface ClaimPaths {
  dir?: string;
  lock?: string;
}

function lastPort(s: ClaimSpec): number {
  return s.portBase + (s.portCount ?? rangeSize) - 1;
}

/** The claim file's content, written as one printf (also what the refresh check compares). */
function writeClaim(s: ClaimSpec): string {
  return argv(
    "printf",
    "project=%s\\nports=%s-%s\\nredis_db=%s\\n",
    s.project,
    s.portBase,
    lastPort(s),
    s.redisDb ?? "",
  );
}

/** The claim file is named after the project: a plain name, never a path. */
function checkSpec(s: ClaimSpec): void {
  if (!/^[a-z][a-z0-9-]*$/.test(s.project)) throw new Error(`invalid project name ${JSON.stringify(s.project)}`);
  for (const n of [s.portBase, s.portCount ?? rangeSize, s.redisDb ?? 0]) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`invalid claim ${JSON.stringify(s)}`);
  }
}

export function claimScript(s: ClaimSpec, p: ClaimPaths = {}): string {
  checkSpec(s);
  const dir = p.dir ?? claimsDir;
  const lock = p.lock ?? claimsLock;
  const file = `${dir}/${s.project}`;
  const first = s.portBase;
  const last = lastPort(s);
  const portsRefused =
    `claim refused: ports %s on this host are claimed by project %s (%s); ${s.project} wants ${first}-${last}. ` +
    `Fix: set ports.base of ${s.project} to a free range of ten (pulumi config set --path ports.base N), ` +
    `or remove %s from this host first.\\n`;
  const dbRefused =
    `claim refused: Redis database %s on this host is used by project %s (%s). ` +
    `Fix: set redis.db of ${s.project} to a free database 0..15 (pulumi config set --path redis.db N); in use here:%s.\\n`;
  const unreadable = `claim refused: cannot read %s (expected ports=FIRST-LAST and redis_db=N); fix or remove it.\\n`;
  const dbCheck =
    s.redisDb === undefined
      ? 'if [ -n "$db" ]; then used="$used $db"; fi'
      : `if [ -n "$db" ]; then used="$used $db"; if [ "$db" = ${argv(s.redisDb)} ]; then dbowner=$other; dbfile=$f; fi; fi`;
  return seq(
    "set -eu",
    "umask 022",
    // Two deploys claiming at once on one host take turns.
    `exec 9>${argv(lock)}`,
    `flock -w 60 9 || { ${argv("printf", "claim: another deploy on this host holds %s\\n", lock)} >&2; exit ${claimRefused}; }`,
    "refused=; dbowner=; dbfile=; used=",
    `for f in ${argv(dir)}/*; do ` +
      seq(
        '[ -f "$f" ] || continue',
        "other=${f##*/}",
        `[ "$other" != ${argv(s.project)} ] || continue`,
        `range=$(sed -n 's/^ports=//p' "$f"); db=$(sed -n 's/^redis_db=//p' "$f")`,
        "first=${range%-*}; last=${range#*-}",
        `case "$first,$last,$db" in *[!0-9,]*|,*|*,,*) ${argv("printf", unreadable)} "$f" >&2; refused=1; continue;; esac`,
        `if [ "$first" -le ${argv(last)} ] && [ "$last" -ge ${argv(first)} ]; then ${argv("printf", portsRefused)} "$range" "$other" "$f" "$other" >&2; refused=1; fi`,
        dbCheck,
      ) +
      "; done",
    `if [ -n "$dbowner" ]; then ${argv("printf", dbRefused)} ${argv(String(s.redisDb ?? ""))} "$dbowner" "$dbfile" "$used" >&2; refused=1; fi`,
    `[ -z "$refused" ] || exit ${claimRefused}`,
    // Nothing was changed above; from here the claim is written atomically.
    argv("install", "-d", "-m", "0755", dir),
    `tmp=${argv(`${dir}/.${s.project}.tmp`)}`,
    `${writeClaim(s)} >"$tmp"`,
    'chmod 0644 "$tmp"',
    `if cmp -s "$tmp" ${argv(file)}; then rm -f "$tmp"; else mv -f "$tmp" ${argv(file)}; fi`,
  );
}

/** Claims the range and database, or refuses naming the project holding them and the fix. */
export function claimCommand(s: ClaimSpec): string {
  return shell(claimScript(s), { sudo: true });
}

/** For `pulumi refresh`: the claim file is still there and still says what it should. */
export function claimCheckCommand(s: ClaimSpec): string {
  checkSpec(s);
  return shell(`${writeClaim(s)} | cmp -s - ${argv(`${claimsDir}/${s.project}`)}`, { sudo: true });
}

/** Frees the claim when the stack's host is destroyed. */
export function releaseClaimCommand(project: string): string {
  return shell(argv("rm", "-f", `${claimsDir}/${project}`), { sudo: true });
}
