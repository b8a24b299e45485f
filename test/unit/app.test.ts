// The app folder against the stack config: one row per mismatch, the exact
// error out; and the sample app, which must pass.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { alembicUpgrade, djangoCollectstatic, djangoMigrate } from "../../builders/appSteps";
import { stackConfig } from "../support/config";
import { appSteps, checkApp, lockedPackages, pythonAllowed, requiresPython } from "../../stacks/app";
import { AppLock, DependencySource, describeSource, LockError } from "../../local/lock";
import { ConfigError } from "../../stacks/validate";

const config = stackConfig;

const lockOf = (...names: string[]) =>
  `version = 1\n\n${names.map((n) => `[[package]]\nname = "${n}"\nversion = "1.0"\n`).join("\n")}`;
const djangoFiles = {
  "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.12"\n',
  "uv.lock": lockOf("celery", "django", "gunicorn", "uvicorn"),
  "manage.py": "",
  "config/__init__.py": "",
  "config/wsgi.py": "",
  "api/__init__.py": "",
  "api/main.py": "",
};

const dirs: string[] = [];
function tree(files: Record<string, string>, sub = ""): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-app-"));
  dirs.push(root);
  for (const [f, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), content);
  }
  return path.join(root, sub);
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Row {
  name: string;
  files: Record<string, string>;
  /** The app folder inside the tree. */
  sub?: string;
  config?: Record<string, unknown>;
  /** Where the dependencies were found (APP and ROOT as below); absent when the folder is refused first. */
  source?: Record<string, string>;
  /** The uv.lock a made lock has (for a source other than the app's own uv.lock). */
  made?: string;
  /** Each with APP for the app folder's path and ROOT for the tree's. */
  errors: string[];
}

const apiOnly = { services: { web: { enabled: false }, celery: { enabled: false }, beat: { enabled: false } } };
const webOnly = { services: { api: { enabled: false }, celery: { enabled: false }, beat: { enabled: false } } };
const workspaceRoot = '[project]\nname = "ws"\n\n[tool.uv.workspace]\nmembers = ["backend"]\n';

const rows: Row[] = [
  {
    name: "a Django app with its lock and modules",
    files: djangoFiles,
    source: { kind: "uv.lock", appDir: "APP" },
    errors: [],
  },
  {
    name: "Django with requirements files and no lock: requirements/production.txt is locked here",
    files: {
      "requirements/base.txt": "django\n",
      "requirements/production.txt": "-r base.txt\ngunicorn\n",
      "requirements/dev.txt": "-r base.txt\npytest\n",
      "manage.py": "",
      "config/wsgi.py": "",
    },
    config: webOnly,
    source: { kind: "requirements", appDir: "APP", file: "requirements/production.txt" },
    made: lockOf("django", "gunicorn"),
    errors: [],
  },
  {
    name: "a requirements.txt beside the code is the one locked",
    files: { "requirements.txt": "django\ngunicorn\n", "requirements-dev.txt": "pytest\n", "config/wsgi.py": "" },
    config: webOnly,
    source: { kind: "requirements", appDir: "APP", file: "requirements.txt" },
    made: lockOf("django", "gunicorn"),
    errors: [],
  },
  {
    name: "several requirements files, none of the usual names, no app.requirements",
    files: { "requirements/base.txt": "django\n", "requirements/web.txt": "-r base.txt\n", "config/wsgi.py": "" },
    config: webOnly,
    errors: [
      "ayna-deploy:app.requirements: APP has several requirements files (requirements/base.txt, requirements/web.txt) and none is requirements.txt or requirements/production.txt; set app.requirements to the one the hosts install",
    ],
  },
  {
    name: "app.requirements naming a file that is not there",
    files: { "requirements/base.txt": "django\n", "config/wsgi.py": "" },
    config: { ...webOnly, app: { requirements: "requirements/prod.txt" } },
    errors: [
      "ayna-deploy:app.requirements: APP/requirements/prod.txt does not exist (the app has requirements/base.txt); set app.requirements to one of the app's requirements files, relative to app.path",
    ],
  },
  {
    name: "app.requirements chooses among several",
    files: { "requirements/base.txt": "django\n", "requirements/web.txt": "-r base.txt\n", "config/wsgi.py": "" },
    config: { ...webOnly, app: { requirements: "requirements/web.txt", addPackages: ["gunicorn"] } },
    source: { kind: "requirements", appDir: "APP", file: "requirements/web.txt" },
    made: lockOf("django", "gunicorn"),
    errors: [],
  },
  {
    name: "a pyproject without a lock is locked here",
    files: { "pyproject.toml": '[project]\nname = "x"\n', "api/main.py": "" },
    config: apiOnly,
    source: { kind: "pyproject", appDir: "APP" },
    made: lockOf("fastapi", "gunicorn", "uvicorn"),
    errors: [],
  },
  {
    name: "a member of a uv workspace: its part of the workspace lock",
    files: {
      "uv.lock": lockOf("fastapi"),
      "pyproject.toml": workspaceRoot,
      "backend/pyproject.toml": '[project]\nname = "b"\n',
      "backend/api/main.py": "",
    },
    sub: "backend",
    config: apiOnly,
    source: { kind: "workspace", appDir: "APP", root: "ROOT", member: "backend" },
    made: lockOf("fastapi", "gunicorn", "uvicorn"),
    errors: [],
  },
  {
    name: "a lock made from requirements that lacks the web server",
    files: { "requirements.txt": "django\n", "config/wsgi.py": "" },
    config: webOnly,
    made: lockOf("django"),
    errors: [
      "ayna-deploy:services.web: needs gunicorn, which the lock made from APP/requirements.txt does not have (services.web (web runs under gunicorn)); add gunicorn to the app's dependencies, or list it in app.addPackages, or turn the role off with services.ROLE.enabled: false",
    ],
  },
  {
    name: "a folder with neither pyproject.toml nor requirements",
    files: { "app.py": "" },
    errors: [
      "ayna-deploy:app.path: APP has neither pyproject.toml nor a requirements file; set app.path to the folder holding the app's pyproject.toml (or requirements.txt)",
    ],
  },
  {
    name: "app.path that is not a folder",
    files: {},
    sub: "missing",
    errors: ["ayna-deploy:app.path: APP is not a folder; set app.path to the app's folder (relative to Pulumi.yaml)"],
  },
  {
    name: "a Python the app does not allow",
    files: { ...djangoFiles, "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.10,<3.13"\n' },
    errors: [
      `ayna-deploy:python: 3.13 is outside the app's requires-python ">=3.10,<3.13" (APP/pyproject.toml); set python to a version it allows`,
    ],
  },
  {
    name: "a web role whose server the lock lacks",
    files: { ...djangoFiles, "uv.lock": lockOf("celery", "django", "uvicorn") },
    errors: [
      "ayna-deploy:services.web: needs gunicorn, which APP/uv.lock does not have (services.web (web runs under gunicorn); services.api (api runs under gunicorn)); add gunicorn to the app's dependencies, or list it in app.addPackages, or turn the role off with services.ROLE.enabled: false",
    ],
  },
  {
    name: "workers without Celery in the lock",
    files: { ...djangoFiles, "uv.lock": lockOf("django", "gunicorn", "uvicorn") },
    errors: [
      "ayna-deploy:services.celery: needs celery, which APP/uv.lock does not have (services.celery (celery is Celery's); services.beat (beat is Celery's)); add celery to the app's dependencies",
    ],
  },
  {
    name: "an api module that is not there",
    files: Object.fromEntries(Object.entries(djangoFiles).filter(([f]) => f !== "api/main.py")),
    errors: [
      "ayna-deploy:services.api.module: module api.main is not in APP (neither api/main.py nor api/main/__init__.py); set services.api.module to the app's module, or turn the role off",
    ],
  },
  {
    name: "an api-only FastAPI app under uvicorn: no gunicorn, Celery or Django needed",
    files: {
      "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.12"\n',
      "uv.lock": lockOf("fastapi", "uvicorn"),
      "api/main.py": "",
    },
    config: { services: { ...apiOnly.services, api: { server: "uvicorn" } } },
    errors: [],
  },
  {
    name: "a lock that cannot be made: uv's own words, under app.path",
    files: { "requirements.txt": "no-such-package-ayna\n", "config/wsgi.py": "" },
    config: webOnly,
    made: "FAIL",
    errors: [
      "ayna-deploy:app.path: uv add -r requirements.txt (from APP/requirements.txt) failed:\n  × No solution found",
    ],
  },
];

/** checkApp with a locker standing in for uv: the app's own lock as is, else a made one with `made`. */
function check(row: Row, app: string): { problems: string[]; source?: DependencySource } {
  let seen: DependencySource | undefined;
  const locker = (source: DependencySource): AppLock => {
    seen = source;
    if (source.kind === "uv.lock") return { dir: source.appDir, made: false, from: describeSource(source) };
    if (row.made === "FAIL") {
      throw new LockError(
        "app.path",
        `uv add -r requirements.txt (from ${describeSource(source)}) failed:\n  × No solution found`,
      );
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-made-lock-"));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, "uv.lock"), row.made ?? "");
    return { dir, made: true, from: describeSource(source) };
  };
  try {
    checkApp("ayna-deploy", app, config(row.config), locker);
    return { problems: [], source: seen };
  } catch (e) {
    if (e instanceof ConfigError) return { problems: e.problems, source: seen };
    throw e;
  }
}

describe("the app folder checked against the stack config (before anything is packed)", () => {
  it("the sample app passes with the default config, its own uv.lock used as it is", () => {
    const app = path.join(__dirname, "..", "..", "sample-app");
    const r = check({ name: "sample", files: {}, errors: [] }, app);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.source, { kind: "uv.lock", appDir: app });
  });

  for (const row of rows) {
    it(row.errors.length ? `refuses: ${row.name}` : `accepts: ${row.name}`, () => {
      const app = tree(row.files, row.sub);
      const { problems, source } = check(row, app);
      const fill = (s: string) => s.split("APP").join(app).split("ROOT").join(path.dirname(app));
      assert.equal(problems.length, row.errors.length, problems.join("\n"));
      row.errors.forEach((want, i) =>
        assert.ok(problems[i]!.startsWith(fill(want)), `${problems[i]}\n!=\n${fill(want)}`),
      );
      if (row.source) {
        const want = Object.fromEntries(Object.entries(row.source).map(([k, v]) => [k, fill(v)]));
        assert.deepEqual(source, want);
      }
    });
  }
});

describe("reading pyproject.toml and uv.lock", () => {
  it("requires-python from the [project] table only", () => {
    assert.equal(requiresPython('[project]\nname = "x"\nrequires-python = ">=3.12"\n'), ">=3.12");
    assert.equal(requiresPython('[tool.x]\nrequires-python = ">=3.99"\n[project]\nname = "x"\n'), undefined);
  });

  it("the lock's package names, lower-cased", () => {
    assert.deepEqual([...lockedPackages(lockOf("Django", "gunicorn"))], ["django", "gunicorn"]);
  });

  const cases: [string, string, boolean | undefined][] = [
    [">=3.12", "3.13", true],
    ["<3.13", "3.13", false],
    ["<3.13.2", "3.13", true],
    [">3.13", "3.13", true],
    ["~=3.12", "3.13", true],
    ["~=3.12.1", "3.13", false],
    ["==3.12.*", "3.13", false],
    ["==3.13.*", "3.13", true],
    ["!=3.13.*", "3.13", false],
    [">=3.10, <3.13", "3.13", false],
    [">=3.14", "3.13", false],
    ["===3.13", "3.13", undefined],
  ];
  for (const [spec, python, want] of cases) {
    it(`Python ${python} against "${spec}": ${String(want)}`, () => assert.equal(pythonAllowed(python, spec), want));
  }
});

describe("migrate and static steps, from app.migrate and app.static and the app folder", () => {
  const steps = (files: Record<string, string>, app: Record<string, string> = {}) => {
    const problems: string[] = [];
    const dir = tree(files);
    const lock: AppLock = { dir, made: false, from: `${dir}/uv.lock` };
    const s = appSteps("ayna-deploy", dir, config({ app: { path: dir, ...app } }), problems, lock);
    return { s, problems: problems.map((p) => p.split(dir).join("APP")) };
  };

  it("auto: a Django app migrates and collects its static files", () => {
    const { s, problems } = steps(djangoFiles);
    assert.deepEqual(problems, []);
    assert.deepEqual(s, { migrate: djangoMigrate, static: djangoCollectstatic });
  });

  it("auto: an app with alembic.ini runs alembic upgrade head, and builds no static files", () => {
    const { s, problems } = steps({ "alembic.ini": "", "uv.lock": lockOf("alembic", "fastapi") });
    assert.deepEqual(problems, []);
    assert.deepEqual(s, { migrate: alembicUpgrade });
  });

  it("auto: neither runs nothing; none turns a step off; anything else is the operator's command", () => {
    assert.deepEqual(steps({ "app.py": "" }).s, {});
    assert.deepEqual(steps(djangoFiles, { migrate: "none", static: "none" }).s, {});
    assert.deepEqual(steps(djangoFiles, { migrate: "python -m app.migrate", static: "make assets" }).s, {
      migrate: { command: ["/bin/sh", "-c", "python -m app.migrate"] },
      static: { command: ["/bin/sh", "-c", "make assets"] },
    });
  });

  it("refuses a framework the app folder does not have, naming the file and the fix", () => {
    assert.deepEqual(steps({ "app.py": "" }, { migrate: "alembic", static: "collectstatic" }).problems, [
      "ayna-deploy:app.migrate: alembic needs APP/alembic.ini; set app.migrate to the app's own command, or none",
      "ayna-deploy:app.static: collectstatic needs APP/manage.py; set app.static to the app's own command, or none",
    ]);
    assert.deepEqual(steps({ "alembic.ini": "", "uv.lock": lockOf("fastapi") }).problems, [
      "ayna-deploy:app.migrate: alembic is not in APP/uv.lock; add alembic to the app's dependencies (or to app.addPackages), or set app.migrate",
    ]);
    assert.deepEqual(steps({ "app.py": "" }, { migrate: "django" }).problems, [
      "ayna-deploy:app.migrate: django needs APP/manage.py; set app.migrate to the app's own command, or none",
    ]);
  });
});
