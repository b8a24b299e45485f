// The app folder checked against the stack config before anything is packed
// or sent: every mismatch becomes a ConfigError naming the key and the fix,
// instead of a stack trace from the archive or a failure on the host.
import * as fs from "node:fs";
import * as path from "node:path";
import { alembicUpgrade, commandStep, djangoCollectstatic, djangoMigrate } from "../builders/appSteps";
import { ReleaseStep } from "../builders/releaseTool";
import { AppLock, DependencySource, describeLock, LockError } from "../builders/dependencies";
import { StackConfig } from "./index";
import { ConfigError } from "./validate";

/** What the checks read of the config. */
export type AppCheckConfig = Pick<StackConfig, "python" | "services"> & {
  app?: Partial<Pick<StackConfig["app"], "migrate" | "static" | "requirements">>;
  runtime?: StackConfig["runtime"];
  docker?: Pick<StackConfig["docker"], "dockerfile">;
};

/** The release's one-shot steps, as config and the app folder decide them; absent: none. */
export interface AppSteps {
  migrate?: ReleaseStep;
  static?: ReleaseStep;
  /** Docker mode: the app's own Dockerfile, relative to its root, when it has one and config does not say none. */
  dockerfile?: string;
}

/**
 * Docker mode's Dockerfile of the app: docker.dockerfile when set (it must be
 * a file inside the app), else `Dockerfile` when the app has one.
 */
export function appDockerfile(ns: string, appDir: string, c: AppCheckConfig, problems: string[]): string | undefined {
  if (c.runtime !== "docker") return undefined;
  const set = c.docker?.dockerfile;
  if (set === "none") return undefined;
  if (set === undefined) return isFile(path.join(appDir, "Dockerfile")) ? "Dockerfile" : undefined;
  const full = path.resolve(appDir, set);
  if (path.relative(appDir, full).startsWith("..") || !isFile(full)) {
    problems.push(
      `${ns}:docker.dockerfile: ${full} is not a file inside ${appDir}; give the Dockerfile's path inside app.path, or none to build FROM docker.baseImage`,
    );
    return undefined;
  }
  return path.relative(appDir, full);
}

const requirementsFile = /^requirements.*\.(txt|in)$/;

function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

function isDir(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** Requirements files in the folder or its requirements/ folder, as relative paths. */
function requirementsFiles(dir: string): string[] {
  const top = fs.readdirSync(dir).filter((f) => requirementsFile.test(f));
  const sub = isDir(path.join(dir, "requirements"))
    ? fs
        .readdirSync(path.join(dir, "requirements"))
        .filter((f) => /\.(txt|in)$/.test(f))
        .map((f) => `requirements/${f}`)
    : [];
  return [...top, ...sub].sort();
}

/** The nearest folder above `dir` holding a uv.lock (a uv workspace's root), if any. */
function lockAbove(dir: string): string | undefined {
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) {
    if (isFile(path.join(d, "uv.lock"))) return d;
  }
  return undefined;
}

/** Whether a module path (a.b.c) is a file or package under dir. */
function hasModule(dir: string, module: string): boolean {
  const rel = module.split(".").join("/");
  return isFile(path.join(dir, `${rel}.py`)) || isFile(path.join(dir, rel, "__init__.py"));
}

/** Names of the packages uv.lock pins (its [[package]] tables). */
export function lockedPackages(lock: string): Set<string> {
  const names = new Set<string>();
  for (const m of lock.matchAll(/^\[\[package\]\]\s*\nname = "([^"]+)"/gm)) names.add(m[1]!.toLowerCase());
  return names;
}

/** The `requires-python` of pyproject.toml's [project] table, if it has one. */
export function requiresPython(pyproject: string): string | undefined {
  const project = /^\[project\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(pyproject)?.[1] ?? "";
  return /^requires-python\s*=\s*["']([^"']*)["']/m.exec(project)?.[1];
}

function versionTuple(v: string): number[] {
  return v.split(".").map((x) => Number(x));
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function clauseHolds(v: number[], op: string, w: number[], star: boolean): boolean {
  const c = compare(v, w);
  const prefix = (n: number) => w.slice(0, n).every((x, i) => v[i] === x);
  switch (op) {
    case ">=":
      return c >= 0;
    case ">":
      return c > 0;
    case "<=":
      return c <= 0;
    case "<":
      return c < 0;
    case "==":
      return star ? prefix(w.length) : c === 0;
    case "!=":
      return star ? !prefix(w.length) : c !== 0;
    default: // ~=: at least w, within its release series
      return c >= 0 && prefix(w.length - 1);
  }
}

/**
 * Whether some release of Python MAJOR.MINOR (any patch level) meets a PEP 440
 * specifier set, the way projects write requires-python. `undefined` for a
 * clause it cannot read: an unusual specifier is left to uv, not refused here.
 */
export function pythonAllowed(python: string, spec: string): boolean | undefined {
  const clauses: [string, number[], boolean][] = [];
  for (const raw of spec
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)) {
    const m = /^(~=|==|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)(\.\*)?$/.exec(raw);
    if (!m || (m[1] === "~=" && !m[2]!.includes("."))) return undefined;
    clauses.push([m[1]!, versionTuple(m[2]!), m[3] !== undefined]);
  }
  const [major = 0, minor = 0] = versionTuple(python);
  for (let patch = 0; patch <= 50; patch++) {
    if (clauses.every(([op, w, star]) => clauseHolds([major, minor, patch], op, w, star))) return true;
  }
  return false;
}

/** The packages a role's command imports, from the lock's point of view. */
function packagesFor(c: AppCheckConfig): { key: string; pkg: string; why: string }[] {
  const need: { key: string; pkg: string; why: string }[] = [];
  if (c.services.web.enabled) need.push({ key: "services.web", pkg: "gunicorn", why: "web runs under gunicorn" });
  if (c.services.api.enabled) {
    if ((c.services.api.server ?? "gunicorn") === "gunicorn") {
      need.push({ key: "services.api", pkg: "gunicorn", why: "api runs under gunicorn" });
    }
    need.push({ key: "services.api", pkg: "uvicorn", why: "api's workers are uvicorn's" });
  }
  for (const role of ["celery", "beat"] as const) {
    if (c.services[role].enabled) need.push({ key: `services.${role}`, pkg: "celery", why: `${role} is Celery's` });
  }
  return need;
}

/** The requirements file to lock: app.requirements, else the usual names, else the only one. */
function chooseRequirements(ns: string, appDir: string, c: AppCheckConfig, problems: string[]): string | undefined {
  const reqs = requirementsFiles(appDir);
  const asked = c.app?.requirements;
  if (asked !== undefined) {
    if (isFile(path.join(appDir, asked))) return asked;
    problems.push(
      `${ns}:app.requirements: ${appDir}/${asked} does not exist${reqs.length > 0 ? ` (the app has ${reqs.join(", ")})` : ""}; set app.requirements to one of the app's requirements files, relative to app.path`,
    );
    return undefined;
  }
  for (const usual of ["requirements.txt", "requirements/production.txt", "requirements/prod.txt"]) {
    if (reqs.includes(usual)) return usual;
  }
  if (reqs.length === 1) return reqs[0];
  problems.push(
    `${ns}:app.requirements: ${appDir} has several requirements files (${reqs.join(", ")}) and none is requirements.txt or requirements/production.txt; set app.requirements to the one the hosts install`,
  );
  return undefined;
}

/**
 * Where the app lists its dependencies, with the problems of the app folder
 * for this config, each `${ns}:key: what; fix`. No source when the folder
 * cannot be deployed as it is.
 */
export function appSource(
  ns: string,
  appDir: string,
  c: AppCheckConfig,
): { source?: DependencySource; problems: string[] } {
  if (!isDir(appDir)) {
    return {
      problems: [
        `${ns}:app.path: ${appDir} is not a folder; set app.path to the app's folder (relative to Pulumi.yaml)`,
      ],
    };
  }
  const problems: string[] = [];
  const hasPyproject = isFile(path.join(appDir, "pyproject.toml"));
  const hasLock = isFile(path.join(appDir, "uv.lock"));
  let source: DependencySource | undefined;
  if (hasPyproject && hasLock) {
    source = { kind: "uv.lock", appDir };
  } else if (hasPyproject) {
    const root = lockAbove(appDir);
    source =
      root !== undefined && /^\[tool\.uv\.workspace\]/m.test(readIf(path.join(root, "pyproject.toml")))
        ? { kind: "workspace", appDir, root, member: path.relative(root, appDir) }
        : { kind: "pyproject", appDir };
  } else if (requirementsFiles(appDir).length > 0 || c.app?.requirements !== undefined) {
    const file = chooseRequirements(ns, appDir, c, problems);
    if (file !== undefined) source = { kind: "requirements", appDir, file };
  } else {
    problems.push(
      `${ns}:app.path: ${appDir} has neither pyproject.toml nor a requirements file; set app.path to the folder holding the app's pyproject.toml (or requirements.txt)`,
    );
  }
  if (hasPyproject) {
    const spec = requiresPython(fs.readFileSync(path.join(appDir, "pyproject.toml"), "utf8"));
    if (spec !== undefined && pythonAllowed(c.python, spec) === false) {
      problems.push(
        `${ns}:python: ${c.python} is outside the app's requires-python "${spec}" (${appDir}/pyproject.toml); set python to a version it allows`,
      );
    }
  }
  // Module checks only for a folder that holds an app: else they repeat its problem.
  if (source !== undefined) problems.push(...moduleProblems(ns, appDir, c));
  return { source, problems };
}

function readIf(p: string): string {
  return isFile(p) ? fs.readFileSync(p, "utf8") : "";
}

/** Packages the enabled roles need that the lock lacks, each a problem naming both fixes. */
export function lockProblems(ns: string, lock: AppLock, c: AppCheckConfig): string[] {
  const locked = lockedPackages(fs.readFileSync(path.join(lock.dir, "uv.lock"), "utf8"));
  const missing = new Map<string, string[]>();
  for (const n of packagesFor(c)) {
    if (locked.has(n.pkg)) continue;
    const whys = missing.get(n.pkg) ?? [];
    missing.set(n.pkg, [...whys, `${n.key} (${n.why})`]);
  }
  const where = describeLock(lock);
  const problems: string[] = [];
  for (const [pkg, whys] of missing) {
    problems.push(
      `${ns}:${whys[0]!.split(" ")[0]}: needs ${pkg}, which ${where} does not have (${whys.join("; ")}); add ${pkg} to the app's dependencies, or list it in app.addPackages, or turn the role off with services.ROLE.enabled: false`,
    );
  }
  return problems;
}

function moduleProblems(ns: string, appDir: string, c: AppCheckConfig): string[] {
  const problems: string[] = [];
  const modules: [string, boolean, string | undefined][] = [
    ["services.web.module", c.services.web.enabled, c.services.web.module],
    ["services.api.module", c.services.api.enabled, c.services.api.module],
    ["services.celery.app", c.services.celery.enabled, c.services.celery.app],
    ["services.beat.app", c.services.beat.enabled, c.services.beat.app],
  ];
  for (const [key, enabled, value] of modules) {
    if (!enabled || !value) continue;
    const module = value.split(":")[0]!;
    if (!hasModule(appDir, module)) {
      const rel = module.split(".").join("/");
      problems.push(
        `${ns}:${key}: module ${module} is not in ${appDir} (neither ${rel}.py nor ${rel}/__init__.py); set ${key} to the app's module, or turn the role off`,
      );
    }
  }
  return problems;
}

/**
 * app.migrate and app.static resolved against the app folder: `auto` looks
 * for manage.py (Django) and alembic.ini (Alembic). Problems go to `problems`.
 */
export function appSteps(
  ns: string,
  appDir: string,
  c: Pick<AppCheckConfig, "app">,
  problems: string[] = [],
  lock?: AppLock,
): AppSteps {
  const migrate = c.app?.migrate ?? "auto";
  const build = c.app?.static ?? "auto";
  const django = isFile(path.join(appDir, "manage.py"));
  const alembic = isFile(path.join(appDir, "alembic.ini"));
  const steps: AppSteps = {};
  // A framework step needs its file in the app folder.
  const needs = (key: string, step: string, file: string, has: boolean) => {
    if (!has)
      problems.push(`${ns}:${key}: ${step} needs ${appDir}/${file}; set ${key} to the app's own command, or none`);
    return has;
  };
  const kind = migrate === "auto" ? (django ? "django" : alembic ? "alembic" : "none") : migrate;
  if (kind === "django") {
    needs("app.migrate", "django", "manage.py", django);
    steps.migrate = djangoMigrate;
  } else if (kind === "alembic") {
    const lockFile = lock ? path.join(lock.dir, "uv.lock") : undefined;
    if (
      needs("app.migrate", "alembic", "alembic.ini", alembic) &&
      lockFile !== undefined &&
      isFile(lockFile) &&
      !lockedPackages(fs.readFileSync(lockFile, "utf8")).has("alembic")
    ) {
      problems.push(
        `${ns}:app.migrate: alembic is not in ${describeLock(lock!)}; add alembic to the app's dependencies (or to app.addPackages), or set app.migrate`,
      );
    }
    steps.migrate = alembicUpgrade;
  } else if (kind !== "none") {
    steps.migrate = commandStep(kind);
  }
  const staticKind = build === "auto" ? (django ? "collectstatic" : "none") : build;
  if (staticKind === "collectstatic") {
    needs("app.static", "collectstatic", "manage.py", django);
    steps.static = djangoCollectstatic;
  } else if (staticKind !== "none") {
    steps.static = commandStep(staticKind);
  }
  return steps;
}

/** Makes (or finds) the app's lock; a LockError is the app folder's problem. */
export type Locker = (source: DependencySource) => AppLock;

/**
 * Throws a ConfigError listing every problem of the app folder; else its lock
 * (made here when the app has none) and its release steps.
 */
export function checkApp(ns: string, appDir: string, c: AppCheckConfig, locker: Locker): CheckedApp {
  const { source, problems } = appSource(ns, appDir, c);
  if (problems.length > 0 || source === undefined) throw new ConfigError(problems);
  let lock: AppLock;
  try {
    lock = locker(source);
  } catch (e) {
    if (e instanceof LockError) throw new ConfigError([`${ns}:${e.key}: ${e.message}`]);
    throw e;
  }
  problems.push(...lockProblems(ns, lock, c));
  // The steps only once the folder itself is sound: their messages would repeat its problems.
  const steps = problems.length === 0 ? appSteps(ns, appDir, c, problems, lock) : {};
  const dockerfile = appDockerfile(ns, appDir, c, problems);
  if (dockerfile !== undefined) steps.dockerfile = dockerfile;
  if (problems.length > 0) throw new ConfigError(problems);
  return { steps, lock };
}

export interface CheckedApp {
  steps: AppSteps;
  lock: AppLock;
}
