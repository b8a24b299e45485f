// The app folder against the stack config: one row per mismatch, the exact
// error out; and the sample app, which must pass.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { alembicUpgrade, djangoCollectstatic, djangoMigrate } from "../../builders/appSteps";
import { stackConfig } from "../support/config";
import { appProblems, appSteps, lockedPackages, pythonAllowed, requiresPython } from "../../stacks/app";

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
  /** Each with APP for the app folder's path. */
  errors: string[];
}

const apiOnly = { services: { web: { enabled: false }, celery: { enabled: false }, beat: { enabled: false } } };

const rows: Row[] = [
  { name: "a Django app with its lock and modules", files: djangoFiles, errors: [] },
  {
    name: "Django with requirements files and no lock",
    files: { "requirements/base.txt": "django\n", "requirements/prod.txt": "-r base.txt\n", "manage.py": "" },
    errors: [
      "ayna-deploy:app.path: APP lists its dependencies in requirements/base.txt, requirements/prod.txt, without pyproject.toml and uv.lock, which the host's environment is built from; in APP run `uv init --bare` and `uv add -r requirements/base.txt`, then commit pyproject.toml and uv.lock",
    ],
  },
  {
    name: "a requirements.txt beside the code",
    files: { "requirements.txt": "django\n" },
    errors: [
      "ayna-deploy:app.path: APP lists its dependencies in requirements.txt, without pyproject.toml and uv.lock, which the host's environment is built from; in APP run `uv init --bare` and `uv add -r requirements.txt`, then commit pyproject.toml and uv.lock",
    ],
  },
  {
    name: "a pyproject without a lock",
    files: { "pyproject.toml": '[project]\nname = "x"\n' },
    errors: ["ayna-deploy:app.path: APP has no uv.lock; run `uv lock` in APP and commit uv.lock"],
  },
  {
    name: "a member of a uv workspace (the lock at the root)",
    files: { "uv.lock": lockOf("fastapi"), "pyproject.toml": "", "backend/pyproject.toml": '[project]\nname = "b"\n' },
    sub: "backend",
    errors: [
      "ayna-deploy:app.path: APP has no uv.lock of its own; its lock is the uv workspace's at ROOT, and a workspace member cannot be deployed on its own yet",
    ],
  },
  {
    name: "a folder without pyproject.toml",
    files: { "app.py": "" },
    errors: [
      "ayna-deploy:app.path: APP has no pyproject.toml; set app.path to the folder holding the app's pyproject.toml and uv.lock",
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
      "ayna-deploy:services.web: needs gunicorn, which APP/uv.lock does not have (services.web (web runs under gunicorn); services.api (api runs under gunicorn)); run `uv add gunicorn` in APP, or turn the role off with services.ROLE.enabled: false",
    ],
  },
  {
    name: "workers without Celery in the lock",
    files: { ...djangoFiles, "uv.lock": lockOf("django", "gunicorn", "uvicorn") },
    errors: [
      "ayna-deploy:services.celery: needs celery, which APP/uv.lock does not have (services.celery (celery is Celery's); services.beat (beat is Celery's)); run `uv add celery` in APP",
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
];

describe("the app folder checked against the stack config (before anything is packed)", () => {
  it("the sample app passes with the default config", () => {
    assert.deepEqual(appProblems("ayna-deploy", path.join(__dirname, "..", "..", "sample-app"), config()), []);
  });

  for (const row of rows) {
    it(row.errors.length ? `refuses: ${row.name}` : `accepts: ${row.name}`, () => {
      const app = tree(row.files, row.sub);
      const problems = appProblems("ayna-deploy", app, config(row.config));
      const fill = (s: string) => s.split("APP").join(app).split("ROOT").join(path.dirname(app));
      assert.equal(problems.length, row.errors.length, problems.join("\n"));
      row.errors.forEach((want, i) =>
        assert.ok(problems[i]!.startsWith(fill(want)), `${problems[i]}\n!=\n${fill(want)}`),
      );
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
    const s = appSteps("ayna-deploy", dir, config({ app: { path: dir, ...app } }), problems);
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
      "ayna-deploy:app.migrate: alembic is not in APP/uv.lock; run `uv add alembic` in APP, or set app.migrate",
    ]);
    assert.deepEqual(steps({ "app.py": "" }, { migrate: "django" }).problems, [
      "ayna-deploy:app.migrate: django needs APP/manage.py; set app.migrate to the app's own command, or none",
    ]);
  });
});
