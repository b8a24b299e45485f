// The deploy plan: what an update will do on one host, in an operator's words,
// from the manifest of the last successful deploy (kept in state by the
// provider's ayna:deploy:Plan resource) and the manifest of this run. Names
// only: env values never reach a plan, only their keys.

import { ReleaseService } from "./releaseTool";

export interface PlanService {
  role: string;
  reload: ReleaseService["reload"];
}

/** Everything a plan compares, for one host. */
export interface Manifest {
  /** The app's git commit, or `content-<hash>` outside git. */
  sha: string;
  /** The release serving after the last deploy ("v3"); absent until the deploy has run. */
  release?: string;
  /** Set when the host serves a release kept there (a rollback) rather than the source. */
  pin?: string;
  /** Every shipped file: path -> content hash (mode included). */
  files: Record<string, string>;
  /** The Python environment's key (the lockfile's hash). */
  environment: string;
  /** The env file's values (a secret wherever it is stored); plans name keys only. */
  env: Record<string, string>;
  /** The project's unit files: name -> content hash. */
  units: Record<string, string>;
  /**
   * How migrations run: found by name in the tree (Django, Alembic), by the
   * operator's own command (names unknown), or not at all. @default "listed"
   */
  migrations?: "listed" | "command" | "none";
  /** The roles the release tool restarts or hands over, in its order. */
  services: PlanService[];
  /** Docker mode: the release is an image and containers (builders/ayna-docker.sh). @default venv mode */
  runtime?: "docker";
}

/** A value the engine does not know yet (during preview), as the provider passes it. */
export const notKnown = Symbol("not known until the update");
export type MaybeKnown<T> = T | typeof notKnown;

/** The manifest of this run: anything computed from another resource may be unknown at preview. */
export type NextManifest = Omit<Manifest, "release" | "env"> & {
  release?: MaybeKnown<string>;
  env: MaybeKnown<Record<string, string>>;
};

const djangoMigration = /(?:^|\/)([A-Za-z_][\w]*)\/migrations\/(\d{4}_\w+)\.py$/;
const alembicRevision = /(?:^|\/)(?:alembic|migrations)\/versions\/(\w+)\.py$/;

/**
 * The migrations a source tree holds, by name: Django's `app.0002_name` and
 * Alembic's `alembic:<revision file>`. What a deploy will apply is the
 * difference from the last deployed tree (its migrations were applied then).
 */
export function migrationNames(files: Iterable<string>): string[] {
  const out: string[] = [];
  for (const f of files) {
    const d = djangoMigration.exec(f);
    if (d) {
      out.push(`${d[1]}.${d[2]}`);
      continue;
    }
    const a = alembicRevision.exec(f);
    if (a && a[1] !== "__init__") out.push(`alembic:${a[1]}`);
  }
  return out.sort();
}

function short(sha: string): string {
  return /^[0-9a-f]{40}$/.test(sha) ? sha.slice(0, 12) : sha;
}

/** Up to `max` names, then how many more. */
function listed(names: string[], max = 8): string {
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

interface KeyChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

function keyChanges(before: Record<string, string>, after: Record<string, string>): KeyChanges {
  const added = Object.keys(after).filter((k) => !(k in before));
  const removed = Object.keys(before).filter((k) => !(k in after));
  const changed = Object.keys(after).filter((k) => k in before && before[k] !== after[k]);
  return { added: added.sort(), changed: changed.sort(), removed: removed.sort() };
}

function describeKeys(c: KeyChanges): string | undefined {
  const parts = [
    c.added.length ? `added ${c.added.join(", ")}` : "",
    c.changed.length ? `changed ${c.changed.join(", ")}` : "",
    c.removed.length ? `removed ${c.removed.join(", ")}` : "",
  ].filter(Boolean);
  return parts.length ? parts.join("; ") : undefined;
}

function countChanges(c: KeyChanges): number {
  return c.added.length + c.changed.length + c.removed.length;
}

/**
 * The plan's lines, or [] when the update changes nothing on the host. The
 * first deploy has no `before`. Every line names what changes; none holds a
 * value of the env file.
 */
export function renderPlan(project: string, before: Manifest | undefined, after: NextManifest): string[] {
  const releaseTo = after.release === notKnown ? undefined : after.release;
  const files = keyChanges(before?.files ?? {}, after.files);
  const units = keyChanges(before?.units ?? {}, after.units);
  const env = after.env === notKnown ? undefined : keyChanges(before?.env ?? {}, after.env);
  const envUnknown = after.env === notKnown && before !== undefined;
  const environmentChanged = before?.environment !== after.environment;
  const pinChanged = (before?.pin ?? "") !== (after.pin ?? "");
  const sourceChanged = !after.pin && (countChanges(files) > 0 || before?.sha !== after.sha);
  const anything =
    before === undefined ||
    pinChanged ||
    sourceChanged ||
    environmentChanged ||
    envUnknown ||
    (env !== undefined && countChanges(env) > 0) ||
    countChanges(units) > 0;
  if (!anything) return [];

  const lines: string[] = [];
  const from = before?.release ? `${before.release} (${before.pin ? "kept on the host" : short(before.sha)})` : "none";
  if (after.pin) {
    lines.push(`release: ${from} -> ${after.pin} (a rollback to the release kept on the host)`);
    lines.push(`code and environment: ${after.pin}'s own, as kept on the host; nothing is installed`);
    lines.push("migrations: none run (a rollback does not migrate)");
  } else {
    const sameRelease =
      before !== undefined && !pinChanged && !sourceChanged && !environmentChanged && before.release !== undefined;
    lines.push(
      sameRelease
        ? `release: ${from} stays; this update changes its configuration`
        : `release: ${from} -> ${releaseTo ?? "a new release"} (${short(after.sha)})`,
    );
    if (before === undefined) {
      lines.push(`code: ${Object.keys(after.files).length} files (first release)`);
    } else if (before.pin) {
      lines.push(`code: the source at ${short(after.sha)} again, replacing the pinned ${before.pin}`);
    } else if (countChanges(files) > 0) {
      const all = [...files.changed, ...files.added, ...files.removed].sort();
      lines.push(
        `code: ${files.changed.length} changed, ${files.added.length} added, ${files.removed.length} removed: ${listed(all)}`,
      );
    } else {
      lines.push("code: unchanged");
    }
    lines.push(
      before === undefined
        ? "python environment: built from the lockfile (or reused when the host has it)"
        : environmentChanged
          ? "python environment: new (the lockfile changed); built unless the host still has it"
          : "python environment: unchanged",
    );
    const applied = new Set(migrationNames(Object.keys(before?.files ?? {})));
    const pending = before?.pin ? [] : migrationNames(Object.keys(after.files)).filter((m) => !applied.has(m));
    lines.push(
      after.migrations === "none"
        ? "migrations: not run (app.migrate: none)"
        : after.migrations === "command"
          ? "migrations: app.migrate's own command runs before the switch"
          : before?.pin
            ? "migrations: those the source holds beyond the database's, applied before the switch"
            : pending.length
              ? `migrations to run: ${listed(pending, 20)}`
              : "migrations: none new",
    );
  }
  lines.push(
    envUnknown
      ? "env keys: not known until the update (a value comes from another resource)"
      : `env keys: ${(env && describeKeys(env)) ?? "unchanged"}`,
  );
  if (after.runtime === "docker") {
    const image = after.pin ? `${after.pin}'s image, kept on the host` : `${project}:sha-${after.sha}`;
    lines.push(`image: ${image}; the serving one is tagged ${project}:rollback once the release passes`);
    const containers = after.services.map((s) =>
      before === undefined
        ? `${s.role} starts`
        : s.role === "web" || s.role === "api"
          ? `${s.role} switches blue-green (a new container beside the serving one, Caddy moves to it, the old one stops)`
          : `${s.role} is replaced by a container of the release`,
    );
    lines.push(`containers: ${containers.join("; ")}`);
    lines.push("gate: the new containers' health check before the switch; rolled back automatically on failure");
    return lines;
  }
  lines.push(`unit files: ${describeKeys(units) ?? "unchanged"}`);
  // Every release gives every service processes of the release (ayna-release's apply_release).
  const services = after.services.map((s) => {
    const socket = `${project}-${s.role}.socket`;
    const unit = `${project}-${s.role}.service`;
    if (before === undefined || !(unit in (before.units ?? {}))) return `${s.role} starts`;
    if (units.changed.includes(socket) || units.added.includes(socket)) {
      return `${s.role} restarts on a new socket (connections wait or are refused briefly)`;
    }
    return s.reload === "handover"
      ? `${s.role} hands over to new processes (no dropped requests)`
      : `${s.role} restarts`;
  });
  lines.push(`services: ${services.join("; ")}`);
  lines.push("gate: candidates and the health check before the switch; rolled back automatically on failure");
  return lines;
}
