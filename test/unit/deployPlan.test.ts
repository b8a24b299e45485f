// The deploy plan (issue: operator surface, "a preview that reads as a deploy
// plan"): its lines for each kind of change, asserted exactly, and never an
// env value in them.
import { strict as assert } from "node:assert";
import { Manifest, migrationNames, NextManifest, notKnown, renderPlan } from "../../builders/deployPlan";

const sha1 = "1111111111111111111111111111111111111111";
const sha2 = "2222222222222222222222222222222222222222";
const services: Manifest["services"] = [
  { role: "web", reload: "handover" },
  { role: "api", reload: "handover" },
  { role: "celery", reload: "restart" },
  { role: "beat", reload: "restart" },
];
const units = {
  "demoapp-web.service": "u1",
  "demoapp-web.socket": "s1",
  "demoapp-api.service": "u2",
  "demoapp-api.socket": "s2",
  "demoapp-celery.service": "u3",
  "demoapp-beat.service": "u4",
};

function deployed(over: Partial<Manifest> = {}): Manifest {
  return {
    sha: sha1,
    release: "v3",
    files: {
      "manage.py": "a",
      "core/views.py": "b",
      "core/migrations/0001_initial.py": "c",
      "core/migrations/__init__.py": "d",
    },
    environment: "env-1",
    env: { DJANGO_SECRET_KEY: "s3cret-value-1", FEATURE_FLAG: "off", WEB_PORT: "8100" },
    units,
    services,
    ...over,
  };
}

function next(over: Partial<NextManifest> = {}): NextManifest {
  const { release: _r, ...rest } = deployed();
  void _r;
  return { ...rest, release: notKnown, ...over };
}

const services4 =
  "services: web hands over to new processes (no dropped requests); api hands over to new processes (no dropped requests); celery restarts; beat restarts";
const gate = "gate: candidates and the health check before the switch; rolled back automatically on failure";

describe("deploy plan", () => {
  it("nothing changed: no plan at all", () => {
    assert.deepEqual(renderPlan("demoapp", deployed(), next({ release: "v3" })), []);
  });

  it("new code, one new migration and one changed env key, at preview (the new release not known yet)", () => {
    const before = deployed();
    const after = next({
      sha: sha2,
      files: { ...before.files, "core/views.py": "b2", "core/migrations/0002_flag.py": "e" },
      env: { ...before.env, FEATURE_FLAG: "on" },
    });
    assert.deepEqual(renderPlan("demoapp", before, after), [
      "release: v3 (111111111111) -> a new release (222222222222)",
      "code: 1 changed, 1 added, 0 removed: core/migrations/0002_flag.py, core/views.py",
      "python environment: unchanged",
      "migrations to run: core.0002_flag",
      "env keys: changed FEATURE_FLAG",
      "unit files: unchanged",
      services4,
      gate,
    ]);
  });

  it("app.migrate none or a command of the operator's: the plan says so instead of naming migrations", () => {
    const before = deployed();
    const files = { ...before.files, "core/migrations/0002_flag.py": "e" };
    const line = (migrations: "none" | "command") =>
      renderPlan("demoapp", before, next({ sha: sha2, files, migrations }))[3];
    assert.equal(line("none"), "migrations: not run (app.migrate: none)");
    assert.equal(line("command"), "migrations: app.migrate's own command runs before the switch");
  });

  it("at up, once the deploy is through, the plan names the release it made", () => {
    const lines = renderPlan("demoapp", deployed(), next({ sha: sha2, release: "v4" }));
    assert.equal(lines[0], "release: v3 (111111111111) -> v4 (222222222222)");
  });

  it("env keys added and removed are named; no value of the env file appears in any line", () => {
    const before = deployed();
    const after = next({ env: { DJANGO_SECRET_KEY: "s3cret-value-2", NEW_KEY: "x-value", WEB_PORT: "8100" } });
    const lines = renderPlan("demoapp", before, after);
    assert.deepEqual(lines, [
      "release: v3 (111111111111) stays; this update changes its configuration",
      "code: unchanged",
      "python environment: unchanged",
      "migrations: none new",
      "env keys: added NEW_KEY; changed DJANGO_SECRET_KEY; removed FEATURE_FLAG",
      "unit files: unchanged",
      services4,
      gate,
    ]);
    for (const v of ["s3cret-value-1", "s3cret-value-2", "x-value", "off", "8100"]) {
      assert.ok(!lines.join("\n").includes(v), `value ${v} in the plan`);
    }
  });

  it("a new lockfile: a new environment, a new release of the same code", () => {
    const lines = renderPlan("demoapp", deployed(), next({ environment: "env-2" }));
    assert.deepEqual(lines.slice(0, 3), [
      "release: v3 (111111111111) -> a new release (111111111111)",
      "code: unchanged",
      "python environment: new (the lockfile changed); built unless the host still has it",
    ]);
  });

  it("a changed socket unit: that role restarts on a new socket, the others as usual", () => {
    const lines = renderPlan("demoapp", deployed(), next({ units: { ...units, "demoapp-api.socket": "s2b" } }));
    assert.equal(lines[5], "unit files: changed demoapp-api.socket");
    assert.equal(
      lines[6],
      "services: web hands over to new processes (no dropped requests); api restarts on a new socket (connections wait or are refused briefly); celery restarts; beat restarts",
    );
  });

  it("the first deploy: from none, every service starts", () => {
    const { release: _r, ...first } = deployed();
    void _r;
    assert.deepEqual(renderPlan("demoapp", undefined, { ...first, release: notKnown }), [
      "release: none -> a new release (111111111111)",
      "code: 4 files (first release)",
      "python environment: built from the lockfile (or reused when the host has it)",
      "migrations to run: core.0001_initial",
      "env keys: added DJANGO_SECRET_KEY, FEATURE_FLAG, WEB_PORT",
      "unit files: added demoapp-api.service, demoapp-api.socket, demoapp-beat.service, demoapp-celery.service, demoapp-web.service, demoapp-web.socket",
      "services: web starts; api starts; celery starts; beat starts",
      gate,
    ]);
  });

  it("an env value not known at preview (made by another resource) says so instead of guessing", () => {
    const lines = renderPlan("demoapp", deployed(), next({ env: notKnown }));
    assert.equal(lines[4], "env keys: not known until the update (a value comes from another resource)");
  });

  it("a rollback (pin): to the kept release, nothing installed, no migrations", () => {
    assert.deepEqual(renderPlan("demoapp", deployed(), next({ pin: "v2", release: notKnown })).slice(0, 3), [
      "release: v3 (111111111111) -> v2 (a rollback to the release kept on the host)",
      "code and environment: v2's own, as kept on the host; nothing is installed",
      "migrations: none run (a rollback does not migrate)",
    ]);
  });

  it("leaving a pin: back to the source, from the pinned release", () => {
    const lines = renderPlan("demoapp", deployed({ pin: "v2", release: "v2" }), next());
    assert.deepEqual(lines.slice(0, 2), [
      "release: v2 (kept on the host) -> a new release (111111111111)",
      "code: the source at 111111111111 again, replacing the pinned v2",
    ]);
  });

  it("long file lists are cut after 8 names with a count", () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 12; i++) files[`app/m${String(i).padStart(2, "0")}.py`] = "x";
    const lines = renderPlan("demoapp", deployed({ files: {} }), next({ files }));
    assert.equal(
      lines[1],
      "code: 0 changed, 12 added, 0 removed: app/m00.py, app/m01.py, app/m02.py, app/m03.py, app/m04.py, app/m05.py, app/m06.py, app/m07.py and 4 more",
    );
  });

  it("migration names: Django's app.NNNN_name and Alembic's revision files, sorted; nothing else", () => {
    assert.deepEqual(
      migrationNames([
        "core/migrations/0002_flag.py",
        "core/migrations/__init__.py",
        "shop/migrations/0001_initial.py",
        "backend/alembic/versions/1a2b3c_add_users.py",
        "backend/alembic/versions/__init__.py",
        "migrations/versions/9f_init.py",
        "core/views.py",
        "core/migrations/helpers.py",
      ]),
      ["alembic:1a2b3c_add_users", "alembic:9f_init", "core.0002_flag", "shop.0001_initial"],
    );
  });

  it("Docker mode: the image and its :rollback tag, blue-green for web and api, workers replaced; no unit files", () => {
    const before = deployed({ runtime: "docker", units: {} });
    const after = next({ sha: sha2, runtime: "docker", units: {}, files: { ...before.files, "core/views.py": "b2" } });
    assert.deepEqual(renderPlan("demoapp", before, after), [
      "release: v3 (111111111111) -> a new release (222222222222)",
      "code: 1 changed, 0 added, 0 removed: core/views.py",
      "python environment: unchanged",
      "migrations: none new",
      "env keys: unchanged",
      `image: demoapp:sha-${sha2}; the serving one is tagged demoapp:rollback once the release passes`,
      "containers: web switches blue-green (a new container beside the serving one, Caddy moves to it, the old one stops); api switches blue-green (a new container beside the serving one, Caddy moves to it, the old one stops); celery is replaced by a container of the release; beat is replaced by a container of the release",
      "gate: the new containers' health check before the switch; rolled back automatically on failure",
    ]);
  });
});
