// stacks/deployPlan.ts and local/manifest.ts: the deploy plan an operator
// reads at preview, checked line by line; env values never reach it.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileManifest } from "../../local/manifest";
import { envHashes, isMigration, Manifest, PlanService, planRelease, renderPlan } from "../../stacks/deployPlan";

const services: PlanService[] = [
  { role: "web", reload: "hup" },
  { role: "api", reload: "hup" },
  { role: "celery", reload: "restart" },
  { role: "beat", reload: "restart" },
];
const salt = "ayna-deploy/staging";
const env = {
  DJANGO_SETTINGS_MODULE: "config.settings",
  FEATURE_FLAG: "off",
  DATABASE_URL: "postgresql://app:pw@db/app",
};

const before: Manifest = {
  checksum: "c1",
  envHash: "e1",
  files: { "manage.py": "a", "core/views.py": "b", "core/old.py": "c", "core/migrations/0001_initial.py": "d" },
  env: envHashes(salt, env),
};
const previous = { release: "v3", sha: "content-ab12ab12ab12" };

describe("stacks/deployPlan: the deploy plan per host", () => {
  it("renders a code, migration and env change as fixed lines", () => {
    const after: Manifest = {
      checksum: "c2",
      envHash: "e1",
      files: {
        "manage.py": "a2",
        "core/views.py": "b2",
        "core/new.py": "n",
        "core/migrations/0001_initial.py": "d",
        "core/migrations/0002_note.py": "m",
      },
      env: envHashes(salt, { ...env, FEATURE_FLAG: "on", NEW_KEY: "1", DATABASE_URL: "postgresql://app:pw2@db/app" }),
    };
    const lines = renderPlan(
      planRelease({ host: "web1", previous, before, after, sha: "content-cd34cd34cd34", services }),
    );
    assert.deepEqual(lines, [
      "web1: release v3 -> new (sha content-ab12ab12ab12 -> content-cd34cd34cd34)",
      "  code: 2 files changed, 2 added, 1 removed",
      "  dependencies: unchanged",
      "  migrations: core/migrations/0002_note.py",
      "  services: reload none; restart web, api, celery, beat",
      "  env: changed DATABASE_URL, FEATURE_FLAG; added NEW_KEY; removed none",
    ]);
    assert.ok(!lines.join("\n").includes("pw2"), "no value in the plan");
  });

  it("a code-only release reloads gunicorn services and restarts the workers", () => {
    const after: Manifest = { ...before, checksum: "c2", files: { ...before.files, "core/views.py": "b2" } };
    const sha = "0123456789abcdef0123456789abcdef01234567";
    assert.deepEqual(renderPlan(planRelease({ host: "web1", previous, before, after, sha, services })), [
      "web1: release v3 -> new (sha content-ab12ab12ab12 -> 0123456789ab)",
      "  code: 1 file changed, 0 added, 0 removed",
      "  dependencies: unchanged",
      "  migrations: none",
      "  services: reload web, api; restart celery, beat",
      "  env: changed none; added none; removed none",
    ]);
  });

  it("new dependencies restart every service; an Alembic revision is a migration", () => {
    const after: Manifest = {
      ...before,
      checksum: "c2",
      envHash: "e2",
      files: { ...before.files, "alembic/versions/1a2b_add_note.py": "x" },
    };
    assert.deepEqual(renderPlan(planRelease({ host: "api1", previous, before, after, sha: "s2", services })), [
      "api1: release v3 -> new (sha content-ab12ab12ab12 -> s2)",
      "  code: 0 files changed, 1 added, 0 removed",
      "  dependencies: changed (new environment)",
      "  migrations: alembic/versions/1a2b_add_note.py",
      "  services: reload none; restart web, api, celery, beat",
      "  env: changed none; added none; removed none",
    ]);
  });

  it("the first deploy is from nothing: every file and migration is new", () => {
    assert.deepEqual(renderPlan(planRelease({ host: "web1", after: before, sha: "content-ab12ab12ab12", services })), [
      "web1: release from nothing -> new (sha content-ab12ab12ab12)",
      "  code: 0 files changed, 4 added, 0 removed",
      "  dependencies: new environment",
      "  migrations: core/migrations/0001_initial.py",
      "  services: reload none; restart web, api, celery, beat",
      "  env: changed none; added DATABASE_URL, DJANGO_SETTINGS_MODULE, FEATURE_FLAG; removed none",
    ]);
  });

  it("nothing changed: unchanged, no service touched; an env removal alone restarts", () => {
    const same = renderPlan(planRelease({ host: "web1", previous, before, after: before, sha: "x", services }));
    assert.deepEqual(same, [
      "web1: release v3 unchanged (sha content-ab12ab12ab12)",
      "  code: 0 files changed, 0 added, 0 removed",
      "  dependencies: unchanged",
      "  migrations: none",
      "  services: reload none; restart none",
      "  env: changed none; added none; removed none",
    ]);
    const { FEATURE_FLAG: _gone, ...rest } = env;
    const after = { ...before, env: envHashes(salt, rest) };
    const lines = renderPlan(planRelease({ host: "web1", previous, before, after, sha: "x", services }));
    assert.equal(lines[4], "  services: reload none; restart web, api, celery, beat");
    assert.equal(lines[5], "  env: changed none; added none; removed FEATURE_FLAG");
  });

  it("a pinned release names the release it goes back to", () => {
    const lines = renderPlan(
      planRelease({ host: "web1", previous, before, after: before, sha: "x", services, pin: "v2" }),
    );
    assert.equal(lines[0], "web1: release v3 -> v2 (pinned by release.pin)");
    assert.equal(lines[4], "  services: reload web, api; restart celery, beat");
  });

  it("hashes env values per stack and key, never returning a value", () => {
    const a = envHashes("p/staging", { K: "secret-value" });
    assert.match(a["K"]!, /^[0-9a-f]{64}$/);
    assert.notEqual(a["K"], envHashes("p/production", { K: "secret-value" })["K"]);
    assert.notEqual(a["K"], envHashes("p/staging", { K: "secret-valuf" })["K"]);
    assert.ok(!JSON.stringify(a).includes("secret-value"));
  });

  it("knows Django and Alembic migration files", () => {
    assert.deepEqual(
      [
        "core/migrations/0002_note.py",
        "core/migrations/__init__.py",
        "migrations/0001.py",
        "alembic/versions/abc.py",
        "versions/abc.py",
        "core/migrations/README.md",
      ].filter(isMigration),
      ["core/migrations/0002_note.py", "alembic/versions/abc.py", "versions/abc.py"],
    );
  });
});

describe("local/manifest: a sha256 per app file, with the archive's exclusions", () => {
  it("lists shipped files by relative path and skips what the archive skips", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-manifest-"));
    fs.mkdirSync(path.join(dir, "core", "__pycache__"), { recursive: true });
    fs.mkdirSync(path.join(dir, ".venv"));
    fs.writeFileSync(path.join(dir, "manage.py"), "x");
    fs.writeFileSync(path.join(dir, "core", "views.py"), "");
    fs.writeFileSync(path.join(dir, "core", "__pycache__", "views.cpython-313.pyc"), "");
    fs.writeFileSync(path.join(dir, ".venv", "pyvenv.cfg"), "");
    fs.writeFileSync(path.join(dir, ".env.staging"), "SECRET=1");
    try {
      assert.deepEqual(fileManifest(dir), {
        "core/views.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "manage.py": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
