// The lock made on the deploying machine for an app without a uv.lock: what
// uv is asked, the pyproject made for requirements files, the key it is kept
// under, and that an unchanged app never runs uv again. uv itself is a stub
// here (it logs its arguments); the end-to-end layouts test runs the real one.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  appLock,
  DependencySource,
  exportedPins,
  LockError,
  lockKey,
  renderPyproject,
  requirementsClosure,
} from "../../local/lock";

const dirs: string[] = [];
function scratch(files: Record<string, string> = {}): string {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "ayna-lock-test-")));
  dirs.push(root);
  for (const [f, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), content);
  }
  return root;
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A uv that logs "cwd: args" and writes a uv.lock naming its call; `export` prints EXPORT. */
function fakeUv(opts: { fail?: string; exported?: string } = {}): { uv: string; log: string } {
  const dir = scratch();
  const log = path.join(dir, "calls.log");
  const uv = path.join(dir, "uv");
  fs.writeFileSync(
    uv,
    [
      "#!/bin/bash",
      `echo "$PWD: $*" >>${JSON.stringify(log)}`,
      ...(opts.fail
        ? [
            `if [ "$1" = ${JSON.stringify(opts.fail)} ]; then echo "  × No solution found when resolving dependencies" >&2; exit 1; fi`,
          ]
        : []),
      `if [ "$1" = export ]; then printf '%b' ${JSON.stringify(opts.exported ?? "")}; exit 0; fi`,
      'printf "version = 1\\n# made by: %s\\n" "$*" >uv.lock',
      "touch .venv-made-by-uv", // uv leaves other files behind; only pyproject.toml and uv.lock are kept
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return { uv, log };
}

const calls = (log: string) => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trimEnd().split("\n") : []);
const base = { python: "3.13", project: "demoapp", addPackages: [] as string[] };

describe("the lock made on the deploying machine (local/lock.ts)", () => {
  it("an app with its own uv.lock and nothing to add: that folder as it is, uv never run", () => {
    const app = scratch({ "pyproject.toml": "[project]\n", "uv.lock": "version = 1\n" });
    const { uv, log } = fakeUv();
    const lock = appLock({ kind: "uv.lock", appDir: app }, { ...base, uv, cacheDir: scratch() });
    assert.deepEqual(lock, { dir: app, made: false, from: `${app}/uv.lock` });
    assert.deepEqual(calls(log), []);
  });

  it("requirements files: a pyproject with no package of its own for the hosts' Python, then `uv add -r` of the chosen file", () => {
    const app = scratch({ "requirements/base.txt": "django\n", "requirements/production.txt": "-r base.txt\n" });
    const { uv, log } = fakeUv();
    const cache = scratch();
    const src: DependencySource = { kind: "requirements", appDir: app, file: "requirements/production.txt" };
    const lock = appLock(src, { ...base, uv, cacheDir: cache });
    assert.equal(lock.made, true);
    assert.equal(path.dirname(lock.dir), cache);
    assert.deepEqual(fs.readdirSync(lock.dir).sort(), ["pyproject.toml", "uv.lock"], "nothing else kept");
    assert.equal(
      fs.readFileSync(path.join(lock.dir, "pyproject.toml"), "utf8"),
      renderPyproject("demoapp", "==3.13.*", []),
    );
    const work = calls(log).map((c) => c.replace(/^[^:]*: /, ""));
    assert.deepEqual(work, [
      `add --no-sync --quiet --python 3.13 -r ${app}/requirements/production.txt`,
      "lock --quiet --python 3.13",
    ]);
  });

  it("the same inputs again: the kept lock, uv not run; an included file changed: locked again under a new key", () => {
    const app = scratch({ "requirements/base.txt": "django\n", "requirements/production.txt": "-r base.txt\n" });
    const { uv, log } = fakeUv();
    const cache = scratch();
    const src: DependencySource = { kind: "requirements", appDir: app, file: "requirements/production.txt" };
    const first = appLock(src, { ...base, uv, cacheDir: cache });
    const n = calls(log).length;
    const again = appLock(src, { ...base, uv, cacheDir: cache });
    assert.equal(again.dir, first.dir);
    assert.equal(first.fresh, true, "the first run made it");
    assert.equal(again.fresh, undefined, "the second found it kept");
    assert.equal(calls(log).length, n, "uv not run for a kept lock");
    fs.writeFileSync(path.join(app, "requirements/base.txt"), "django\ncelery\n");
    const second = appLock(src, { ...base, uv, cacheDir: cache });
    assert.notEqual(second.dir, first.dir);
    assert.ok(calls(log).length > n);
  });

  it("the key follows every input: the file's content and its includes, the Python, the added packages; not the folder's path or mtimes", () => {
    const files = {
      "requirements.txt": "-r more.txt\n-c constraints.txt\n",
      "more.txt": "django\n",
      "constraints.txt": "",
    };
    const a = scratch(files);
    const b = scratch(files);
    const src = (appDir: string): DependencySource => ({ kind: "requirements", appDir, file: "requirements.txt" });
    const k = lockKey(src(a), base);
    fs.utimesSync(path.join(a, "more.txt"), new Date(0), new Date(0));
    assert.equal(lockKey(src(a), base), k, "mtime");
    assert.equal(lockKey(src(b), base), k, "another folder with the same files");
    assert.notEqual(lockKey(src(a), { ...base, python: "3.12" }), k);
    assert.notEqual(lockKey(src(a), { ...base, addPackages: ["gunicorn"] }), k);
    fs.writeFileSync(path.join(b, "constraints.txt"), "django<6\n");
    assert.notEqual(lockKey(src(b), base), k, "a constraints file is an input");
    assert.deepEqual(
      requirementsClosure(path.join(a, "requirements.txt")).map(([p]) => path.relative(a, p)),
      ["constraints.txt", "more.txt", "requirements.txt"],
    );
  });

  it("a pyproject without a lock: copied and `uv lock`ed; added packages go in with `uv add`", () => {
    const app = scratch({ "pyproject.toml": '[project]\nname = "x"\n' });
    const { uv, log } = fakeUv();
    appLock({ kind: "pyproject", appDir: app }, { ...base, uv, cacheDir: scratch() });
    appLock({ kind: "pyproject", appDir: app }, { ...base, addPackages: ["gunicorn>=23"], uv, cacheDir: scratch() });
    assert.deepEqual(
      calls(log).map((c) => c.replace(/^[^:]*: /, "")),
      ["lock --quiet --python 3.13", "add --no-sync --quiet --python 3.13 gunicorn>=23"],
    );
    assert.equal(fs.readFileSync(path.join(app, "pyproject.toml"), "utf8"), '[project]\nname = "x"\n', "app untouched");
  });

  it("a workspace member: `uv export` of the member at the workspace root, its pins in a pyproject of its own, then locked", () => {
    const root = scratch({
      "pyproject.toml": '[tool.uv.workspace]\nmembers = ["backend"]\n',
      "uv.lock": "version = 1\n",
      "backend/pyproject.toml": '[project]\nname = "items-backend"\nrequires-python = ">=3.12"\n',
    });
    const exported =
      "# comment\nanyio==4.9.0\nfastapi==0.115.0 ; python_full_version >= '3.12'\n    # via items-backend\n";
    const { uv, log } = fakeUv({ exported });
    const lock = appLock(
      { kind: "workspace", appDir: path.join(root, "backend"), root, member: "backend" },
      { ...base, uv, cacheDir: scratch() },
    );
    assert.equal(
      fs.readFileSync(path.join(lock.dir, "pyproject.toml"), "utf8"),
      renderPyproject("items-backend", ">=3.12", ["anyio==4.9.0", "fastapi==0.115.0 ; python_full_version >= '3.12'"]),
    );
    const [exportCall] = calls(log);
    assert.equal(
      exportCall,
      `${root}: export --frozen --no-dev --package items-backend --no-emit-project --no-hashes --no-header --no-annotate --format requirements-txt`,
    );
  });

  it("a member that needs another workspace member is refused, naming it", () => {
    assert.throws(
      () => exportedPins("fastapi==0.115.0\n-e ./libs/shared\n", "backend"),
      (e: unknown) =>
        e instanceof LockError &&
        e.key === "app.path" &&
        e.message.startsWith("backend depends on another member of its uv workspace (-e ./libs/shared)"),
    );
  });

  it("uv failing: a LockError with what ran, where from and uv's last words; nothing kept under the key", () => {
    const app = scratch({ "requirements.txt": "no-such-package\n" });
    const { uv } = fakeUv({ fail: "add" });
    const cache = scratch();
    assert.throws(
      () => appLock({ kind: "requirements", appDir: app, file: "requirements.txt" }, { ...base, uv, cacheDir: cache }),
      (e: unknown) =>
        e instanceof LockError &&
        e.message ===
          `uv add -r requirements.txt (from ${app}/requirements.txt) failed:\n  × No solution found when resolving dependencies`,
    );
    assert.deepEqual(fs.readdirSync(cache), [], "no half-made lock left");
  });

  it("no uv on this machine: a LockError naming how to get it, or to commit a uv.lock", () => {
    const app = scratch({ "requirements.txt": "django\n" });
    assert.throws(
      () =>
        appLock(
          { kind: "requirements", appDir: app, file: "requirements.txt" },
          { ...base, uv: "/nonexistent/uv", cacheDir: scratch() },
        ),
      /locking the app's dependencies on this machine needs uv, which is not on PATH; install uv .*or commit a uv\.lock with the app/,
    );
  });

  it("the pyproject made for requirements files, exactly", () => {
    assert.equal(
      renderPyproject("demoapp", "==3.13.*", ["django~=5.2", 'gunicorn ; sys_platform == "linux"']),
      [
        "# Made by ayna-deploy for an app without a pyproject.toml of its own.",
        "[project]",
        'name = "demoapp"',
        'version = "0"',
        'requires-python = "==3.13.*"',
        "dependencies = [",
        '    "django~=5.2",',
        '    "gunicorn ; sys_platform == \\"linux\\"",',
        "]",
        "",
        "[tool.uv]",
        "package = false",
        "",
      ].join("\n"),
    );
  });
});
