// The app's dependency lock, made on the deploying machine when the app does
// not bring one: hosts always build their environment from pyproject.toml +
// uv.lock (`uv sync --frozen`), whatever the app lists its dependencies in.
// A lock made here is kept under a key of everything it was made from, so the
// next run with the same inputs uses the same lock (the same environment on
// the hosts, no remote command) instead of resolving again.
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { AppLock, DependencySource, describeSource, LockError } from "../builders/dependencies";
import { xdgCacheHome } from "./archive";

export { AppLock, DependencySource, describeSource, LockError };

export interface LockOptions {
  /** The hosts' Python, MAJOR.MINOR: the lock is made with an interpreter of it. */
  python: string;
  /** Project name, for a pyproject made from requirements files. */
  project: string;
  /** Packages added to whatever the app lists (e.g. gunicorn for an app that lacks it). */
  addPackages: readonly string[];
  /** The uv to run. @default "uv" (from PATH), or AYNA_UV */
  uv?: string;
  /** Where made locks are kept. @default lockCacheDir() */
  cacheDir?: string;
}

/** `~/.cache/ayna-deploy/locks` (XDG), or AYNA_LOCK_DIR. */
export function lockCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env["AYNA_LOCK_DIR"] || path.join(xdgCacheHome(env), "ayna-deploy", "locks");
}

const includeLine = /^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)/;

/** A requirements file and every file it includes (-r, -c), as [path, content] sorted by path. */
export function requirementsClosure(file: string): [string, string][] {
  const seen = new Map<string, string>();
  const visit = (f: string) => {
    if (seen.has(f)) return;
    const text = fs.readFileSync(f, "utf8");
    seen.set(f, text);
    for (const line of text.split("\n")) {
      const m = includeLine.exec(line);
      if (m) visit(path.resolve(path.dirname(f), m[1]!));
    }
  };
  visit(file);
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The files a lock is made from, as [name relative to appDir or root, content]. */
function inputs(src: DependencySource): [string, string][] {
  const read = (p: string) => fs.readFileSync(p, "utf8");
  switch (src.kind) {
    case "uv.lock":
      return [
        ["pyproject.toml", read(path.join(src.appDir, "pyproject.toml"))],
        ["uv.lock", read(path.join(src.appDir, "uv.lock"))],
      ];
    case "pyproject":
      return [["pyproject.toml", read(path.join(src.appDir, "pyproject.toml"))]];
    case "requirements":
      return requirementsClosure(path.join(src.appDir, src.file)).map(([p, t]) => [path.relative(src.appDir, p), t]);
    case "workspace":
      return [
        ["pyproject.toml", read(path.join(src.root, "pyproject.toml"))],
        ["uv.lock", read(path.join(src.root, "uv.lock"))],
        [path.join(src.member, "pyproject.toml"), read(path.join(src.appDir, "pyproject.toml"))],
      ];
  }
}

/** The key a made lock is kept under: what it is made from, never when. */
export function lockKey(src: DependencySource, o: Pick<LockOptions, "python" | "project" | "addPackages">): string {
  const h = createHash("sha256").update(`ayna-lock 1\n${src.kind}\n${o.python}\n${o.project}\n`);
  h.update(`add ${[...o.addPackages].sort().join(" ")}\n`);
  if (src.kind === "requirements") h.update(`file ${src.file}\n`);
  if (src.kind === "workspace") h.update(`member ${src.member}\n`);
  for (const [name, content] of inputs(src)) h.update(`${name}\n${content.length}\n`).update(content);
  return h.digest("hex").slice(0, 32);
}

/** TOML basic string. */
function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** The pyproject.toml made for an app without one: no package of its own, only its dependencies. */
export function renderPyproject(name: string, requiresPython: string, dependencies: readonly string[]): string {
  return [
    "# Made by ayna-deploy for an app without a pyproject.toml of its own.",
    "[project]",
    `name = ${tomlString(name)}`,
    'version = "0"',
    `requires-python = ${tomlString(requiresPython)}`,
    dependencies.length === 0
      ? "dependencies = []"
      : ["dependencies = [", ...dependencies.map((d) => `    ${tomlString(d)},`), "]"].join("\n"),
    "",
    "[tool.uv]",
    "package = false",
    "",
  ].join("\n");
}

/**
 * The pinned requirements of a workspace member from `uv export` output:
 * comment and option lines dropped; a line installing another workspace
 * member (`-e ./lib`) is refused, its code would not be on the host.
 */
export function exportedPins(exported: string, member: string): string[] {
  const pins: string[] = [];
  for (const raw of exported.split("\n")) {
    const line = raw.replace(/\s+#.*$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("-e ") || line.startsWith("./") || line.startsWith("../")) {
      throw new LockError(
        "app.path",
        `${member} depends on another member of its uv workspace (${line}), whose code would not be on the hosts; deploy the workspace root, or make that member a package on an index`,
      );
    }
    if (line.startsWith("-")) continue;
    pins.push(line);
  }
  return pins;
}

export interface UvRun {
  status: number;
  out: string;
  err: string;
}

/** What a uv run is for: the config key its errors name, the fix when uv is missing, how long it may take. */
export interface UvPurpose {
  key: string;
  missing: string;
  timeoutMs: number;
}

const locking: UvPurpose = {
  key: "app.path",
  missing:
    "locking the app's dependencies on this machine needs uv, which is not on PATH; install uv (`pip install uv`, or https://docs.astral.sh/uv/), set AYNA_UV to its path, or commit a uv.lock with the app",
  timeoutMs: 600_000,
};

/** Runs uv without progress bars or colour; uv missing or unable to start is a LockError naming the fix. */
export function runUv(uv: string, args: string[], cwd: string, why: UvPurpose = locking): UvRun {
  const r = spawnSync(uv, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, UV_NO_PROGRESS: "1", NO_COLOR: "1" },
    maxBuffer: 64 * 1024 * 1024,
    timeout: why.timeoutMs,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") throw new LockError(why.key, why.missing);
  if (r.error) throw new LockError(why.key, `uv ${args[0]} could not run: ${r.error.message}`);
  return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function tail(text: string, lines = 12): string {
  return text
    .trimEnd()
    .replace(/^(\s*\n)+/, "")
    .split("\n")
    .slice(-lines)
    .join("\n");
}

/** The app's lock: its own uv.lock as is, or one made (or found made) here. */
export function appLock(src: DependencySource, o: LockOptions): AppLock {
  const from = describeSource(src);
  if (src.kind === "uv.lock" && o.addPackages.length === 0) return { dir: src.appDir, made: false, from };
  const cache = o.cacheDir ?? lockCacheDir();
  const dir = path.join(cache, lockKey(src, o));
  if (fs.existsSync(path.join(dir, "uv.lock"))) return { dir, made: true, from };

  fs.mkdirSync(cache, { recursive: true, mode: 0o700 });
  const work = fs.mkdtempSync(path.join(cache, ".make-"));
  try {
    makeLock(src, o, work, from);
    // Complete or absent: a reader never finds a half-made lock under the key.
    try {
      fs.renameSync(work, dir);
    } catch (e) {
      if (!fs.existsSync(path.join(dir, "uv.lock"))) throw e; // made meanwhile by another run: keep that one
    }
    return { dir, made: true, from, fresh: true };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function makeLock(src: DependencySource, o: LockOptions, work: string, from: string): void {
  const uv = o.uv ?? process.env["AYNA_UV"] ?? "uv";
  const python = ["--python", o.python];
  const check = (r: UvRun, what: string) => {
    if (r.status === 0) return;
    const text = tail(r.err || r.out);
    const fix = /interpreter|No Python|python.*not found/i.test(text)
      ? `; it needs Python ${o.python} on this machine: \`uv python install ${o.python}\`, or set UV_PYTHON to one`
      : "";
    throw new LockError("app.path", `${what} (from ${from}) failed${fix}:\n${text}`);
  };
  switch (src.kind) {
    case "uv.lock":
      fs.copyFileSync(path.join(src.appDir, "pyproject.toml"), path.join(work, "pyproject.toml"));
      fs.copyFileSync(path.join(src.appDir, "uv.lock"), path.join(work, "uv.lock"));
      break;
    case "pyproject":
      fs.copyFileSync(path.join(src.appDir, "pyproject.toml"), path.join(work, "pyproject.toml"));
      break;
    case "requirements":
      fs.writeFileSync(path.join(work, "pyproject.toml"), renderPyproject(o.project, `==${o.python}.*`, []));
      check(
        runUv(uv, ["add", "--no-sync", "--quiet", ...python, "-r", path.join(src.appDir, src.file)], work),
        `uv add -r ${src.file}`,
      );
      break;
    case "workspace": {
      const member = fs.readFileSync(path.join(src.appDir, "pyproject.toml"), "utf8");
      const name = /^name\s*=\s*["']([^"']+)["']/m.exec(member)?.[1] ?? src.member;
      const exported = runUv(
        uv,
        [
          "export",
          "--frozen",
          "--no-dev",
          "--package",
          name,
          "--no-emit-project",
          "--no-hashes",
          "--no-header",
          "--no-annotate",
          "--format",
          "requirements-txt",
        ],
        src.root,
      );
      check(exported, `uv export --package ${name}`);
      const spec = /^requires-python\s*=\s*["']([^"']+)["']/m.exec(member)?.[1] ?? `==${o.python}.*`;
      fs.writeFileSync(
        path.join(work, "pyproject.toml"),
        renderPyproject(name, spec, exportedPins(exported.out, src.member)),
      );
      break;
    }
  }
  if (o.addPackages.length > 0) {
    check(runUv(uv, ["add", "--no-sync", "--quiet", ...python, ...o.addPackages], work), "uv add");
  } else {
    check(runUv(uv, ["lock", "--quiet", ...python], work), "uv lock");
  }
  for (const f of fs.readdirSync(work)) {
    if (f !== "pyproject.toml" && f !== "uv.lock") fs.rmSync(path.join(work, f), { recursive: true, force: true });
  }
}
