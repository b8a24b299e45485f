// The app folder checked against the stack config before anything is packed
// or sent: every mismatch becomes a ConfigError naming the key and the fix,
// instead of a stack trace from the archive or a failure on the host.
import * as fs from "node:fs";
import * as path from "node:path";
import { alembicUpgrade, commandStep, djangoCollectstatic, djangoMigrate } from "../builders/appSteps";
import { ReleaseStep } from "../builders/releaseTool";
import { StackConfig } from "./index";
import { ConfigError } from "./validate";

/** What the checks read of the config. */
export type AppCheckConfig = Pick<StackConfig, "python" | "services"> & {
  app?: Pick<StackConfig["app"], "migrate" | "static">;
};

/** The release's one-shot steps, as config and the app folder decide them; absent: none. */
export interface AppSteps {
  migrate?: ReleaseStep;
  static?: ReleaseStep;
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

/**
 * Problems of the app folder for this config, each `${ns}:key: what; fix`.
 * Empty when the app can be packed and its environment built.
 */
export function appProblems(ns: string, appDir: string, c: AppCheckConfig): string[] {
  if (!isDir(appDir)) {
    return [`${ns}:app.path: ${appDir} is not a folder; set app.path to the app's folder (relative to Pulumi.yaml)`];
  }
  const problems: string[] = [];
  const hasPyproject = isFile(path.join(appDir, "pyproject.toml"));
  const hasLock = isFile(path.join(appDir, "uv.lock"));
  if (!hasPyproject || !hasLock) {
    const reqs = requirementsFiles(appDir);
    const workspace = hasPyproject ? lockAbove(appDir) : undefined;
    if (!hasPyproject && reqs.length > 0) {
      problems.push(
        `${ns}:app.path: ${appDir} lists its dependencies in ${reqs.join(", ")}, without pyproject.toml and uv.lock, which the host's environment is built from; in ${appDir} run \`uv init --bare\` and \`uv add -r ${reqs[0]}\`, then commit pyproject.toml and uv.lock`,
      );
    } else if (!hasPyproject) {
      problems.push(
        `${ns}:app.path: ${appDir} has no pyproject.toml; set app.path to the folder holding the app's pyproject.toml and uv.lock`,
      );
    } else if (workspace) {
      problems.push(
        `${ns}:app.path: ${appDir} has no uv.lock of its own; its lock is the uv workspace's at ${workspace}, and a workspace member cannot be deployed on its own yet; lock the app alone (\`uv lock --project ${appDir}\` outside the workspace) or deploy the workspace root`,
      );
    } else {
      problems.push(`${ns}:app.path: ${appDir} has no uv.lock; run \`uv lock\` in ${appDir} and commit uv.lock`);
    }
    return problems;
  }
  const spec = requiresPython(fs.readFileSync(path.join(appDir, "pyproject.toml"), "utf8"));
  if (spec !== undefined && pythonAllowed(c.python, spec) === false) {
    problems.push(
      `${ns}:python: ${c.python} is outside the app's requires-python "${spec}" (${appDir}/pyproject.toml); set python to a version it allows`,
    );
  }
  const locked = lockedPackages(fs.readFileSync(path.join(appDir, "uv.lock"), "utf8"));
  const missing = new Map<string, string[]>();
  for (const n of packagesFor(c)) {
    if (locked.has(n.pkg)) continue;
    const whys = missing.get(n.pkg) ?? [];
    missing.set(n.pkg, [...whys, `${n.key} (${n.why})`]);
  }
  for (const [pkg, whys] of missing) {
    problems.push(
      `${ns}:${whys[0]!.split(" ")[0]}: needs ${pkg}, which ${appDir}/uv.lock does not have (${whys.join("; ")}); run \`uv add ${pkg}\` in ${appDir}, or turn the role off with services.ROLE.enabled: false`,
    );
  }
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
    const lock = path.join(appDir, "uv.lock");
    if (
      needs("app.migrate", "alembic", "alembic.ini", alembic) &&
      isFile(lock) &&
      !lockedPackages(fs.readFileSync(lock, "utf8")).has("alembic")
    ) {
      problems.push(
        `${ns}:app.migrate: alembic is not in ${appDir}/uv.lock; run \`uv add alembic\` in ${appDir}, or set app.migrate`,
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

/** Throws a ConfigError listing every problem of the app folder; else its release steps. */
export function checkApp(ns: string, appDir: string, c: AppCheckConfig): AppSteps {
  const problems = appProblems(ns, appDir, c);
  // The steps only once the folder itself is sound: their messages would repeat its problems.
  const steps = problems.length === 0 ? appSteps(ns, appDir, c, problems) : {};
  if (problems.length > 0) throw new ConfigError(problems);
  return steps;
}
