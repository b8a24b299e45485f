// The deploy plan: what an update will do on each host, read as an operator
// reads a release note. Pure: the previous run's outputs and this run's
// manifest in, a typed plan and its fixed text out. Env values are never
// seen here, only a salted hash per key, so no value can reach the plan.
import { createHash } from "node:crypto";

/** What a run deploys; kept as the stack output `manifest` for the next run to compare with. */
export interface Manifest {
  /** sha256 of the app archive: a change is a new release. */
  checksum: string;
  /** Key of the Python environment (lockfile, Python and uv versions). */
  envHash: string;
  /** App file path (relative, `/`-separated) -> sha256 of its content. */
  files: Record<string, string>;
  /** Env key -> salted hash of its value (`envHashes`). */
  env: Record<string, string>;
}

/** A host as the previous run's `hosts` output recorded it. */
export interface PreviousHost {
  release: string;
  sha: string;
}

export interface PlanService {
  role: string;
  /** How a new release is picked up: HUP (graceful) or restart. */
  reload: "hup" | "restart";
}

export interface PlanInput {
  host: string;
  /** This host in the previous run's outputs; undefined on its first deploy. */
  previous?: PreviousHost;
  /** The previous run's manifest; undefined on the stack's first deploy. */
  before?: Manifest;
  after: Manifest;
  /** The app's SHA this run deploys. */
  sha: string;
  services: PlanService[];
  /** `release.pin`: serve this existing release instead of the source. */
  pin?: string;
}

export interface NameChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

export interface DeployPlan {
  host: string;
  /** "v3", or undefined when the host has no release yet. */
  from?: string;
  fromSha?: string;
  /** "new", "unchanged", or the pinned release. */
  to: string;
  toSha: string;
  code: { added: number; changed: number; removed: number };
  dependencies: "new" | "changed" | "unchanged";
  migrations: string[];
  reload: string[];
  restart: string[];
  env: NameChanges;
}

/** A migration file: Django's `<app>/migrations/*.py` or Alembic's `versions/*.py` (never `__init__.py`). */
export function isMigration(file: string): boolean {
  const base = file.split("/").pop() ?? "";
  if (!base.endsWith(".py") || base === "__init__.py") return false;
  return /(^|\/)[^/]+\/migrations\/[^/]+$/.test(file) || /(^|\/)versions\/[^/]+$/.test(file);
}

/** Names added, changed and removed between two name -> hash maps, each sorted. */
export function diffNames(before: Record<string, string>, after: Record<string, string>): NameChanges {
  const sorted = (xs: string[]) => [...xs].sort();
  return {
    added: sorted(Object.keys(after).filter((k) => !(k in before))),
    changed: sorted(Object.keys(after).filter((k) => k in before && before[k] !== after[k])),
    removed: sorted(Object.keys(before).filter((k) => !(k in after))),
  };
}

/**
 * One hash per env key: sha256 of the salt, the key and the value. The salt
 * (the stack's own name) keeps equal values from hashing alike across stacks;
 * the value is never returned.
 */
export function envHashes(salt: string, values: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(values).sort()) {
    out[k] = createHash("sha256").update(`${salt}\0${k}\0${values[k]}`).digest("hex");
  }
  return out;
}

const empty: Manifest = { checksum: "", envHash: "", files: {}, env: {} };

export function planRelease(input: PlanInput): DeployPlan {
  const first = input.previous === undefined || input.previous.release === "" || input.before === undefined;
  const before = first ? empty : input.before!;
  const after = input.after;
  const files = diffNames(before.files, after.files);
  const env = diffNames(before.env, after.env);
  const envChanged = env.added.length + env.changed.length + env.removed.length > 0;
  const dependencies = first ? "new" : before.envHash === after.envHash ? "unchanged" : "changed";
  const pinned = input.pin !== undefined && input.pin !== "";
  const newRelease = !pinned && (first || before.checksum !== after.checksum || dependencies !== "unchanged");
  const switched = newRelease || (pinned && input.pin !== input.previous?.release);
  const reload: string[] = [];
  const restart: string[] = [];
  for (const s of input.services) {
    // The env file changing restarts every unit; a new environment restarts
    // even the ones that would reload (the release tool's rule); the first
    // deploy starts them all.
    if (first || envChanged || (switched && (s.reload === "restart" || dependencies !== "unchanged"))) {
      restart.push(s.role);
    } else if (switched) {
      reload.push(s.role);
    }
  }
  return {
    host: input.host,
    from: first ? undefined : input.previous!.release,
    fromSha: first ? undefined : input.previous!.sha,
    to: pinned ? input.pin! : newRelease ? "new" : "unchanged",
    toSha: input.sha,
    code: pinned
      ? { added: 0, changed: 0, removed: 0 }
      : { added: files.added.length, changed: files.changed.length, removed: files.removed.length },
    dependencies: pinned ? "unchanged" : dependencies,
    migrations: pinned ? [] : files.added.filter(isMigration),
    reload,
    restart,
    env,
  };
}

/** A git commit shortened to 12 characters; `content-<hash>` as it is. */
export function shortSha(sha: string): string {
  return /^[0-9a-f]{40}$/.test(sha) ? sha.slice(0, 12) : sha;
}

const list = (xs: string[]) => (xs.length > 0 ? xs.join(", ") : "none");

/** The plan of one host as fixed lines; the first names the host, the rest are indented two spaces. */
export function renderPlan(p: DeployPlan): string[] {
  const to = shortSha(p.toSha);
  let head: string;
  if (p.from === undefined) head = `${p.host}: release from nothing -> new (sha ${to})`;
  else if (p.to === "unchanged") head = `${p.host}: release ${p.from} unchanged (sha ${shortSha(p.fromSha ?? "")})`;
  else if (p.to === "new") head = `${p.host}: release ${p.from} -> new (sha ${shortSha(p.fromSha ?? "")} -> ${to})`;
  else if (p.to === p.from) head = `${p.host}: release ${p.from} unchanged (pinned by release.pin)`;
  else head = `${p.host}: release ${p.from} -> ${p.to} (pinned by release.pin)`;
  const files = (n: number) => `${n} ${n === 1 ? "file" : "files"}`;
  return [
    head,
    `  code: ${files(p.code.changed)} changed, ${p.code.added} added, ${p.code.removed} removed`,
    `  dependencies: ${p.dependencies === "new" ? "new environment" : p.dependencies === "changed" ? "changed (new environment)" : "unchanged"}`,
    `  migrations: ${list(p.migrations)}`,
    `  services: reload ${list(p.reload)}; restart ${list(p.restart)}`,
    `  env: changed ${list(p.env.changed)}; added ${list(p.env.added)}; removed ${list(p.env.removed)}`,
  ];
}
