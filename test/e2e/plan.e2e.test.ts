// The deploy plan (issue "a preview that reads as a deploy plan"): after a
// first deploy, a change with new code, a new migration and a changed env
// key previews as a plan per host, from the stack's own previous outputs,
// and no secret value shows anywhere in the output.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { appArchive } from "../../components/release";
import { fileManifest } from "../../local/manifest";
import { PulumiStack } from "../support/pulumi";
import { startHost, stopHost, TestHost } from "../support/testhost";

const project = "demoapp";

/** The plan lines of `host` in the CLI's output: its head line and the indented lines under it, unindented. */
function planOf(out: string, host: string): string[] {
  const lines = out.split("\n");
  const start = lines.findIndex((l) => l.trimStart().startsWith(`${host}: release `));
  assert.ok(start >= 0, `no plan for ${host} in:\n${out}`);
  const indent = lines[start]!.length - lines[start]!.trimStart().length;
  return lines.slice(start, start + 6).map((l) => l.slice(indent));
}

const migration = `from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = []
`;

describe("deploy plan: preview reads as a plan per host", function () {
  this.timeout(900_000);
  let host: TestHost;
  let stack: PulumiStack;
  let app: string;
  let secret: string;

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`plan${process.pid}`);
    await stack.configureHost(project, host);
    app = await stack.configureSampleApp(project);
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
    await stack.setConfig("env.FEATURE_FLAG", "off", { path: true });
    secret = `sqlite:////opt/ayna/${project}/shared/db.sqlite3`;
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("the first deploy plans from nothing and keeps the plan as an output", async () => {
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    const sha = appArchive(app).sha;
    assert.deepEqual(planOf(r.stdout, "web1"), [
      `web1: release from nothing -> new (sha ${sha})`,
      `  code: 0 files changed, ${Object.keys(fileManifest(app)).length} added, 0 removed`,
      "  dependencies: new environment",
      "  migrations: core/migrations/0001_initial.py",
      "  services: reload none; restart web, api, celery, beat",
      "  env: changed none; added API_PORT, DATABASE_URL, DJANGO_SETTINGS_MODULE, FEATURE_FLAG, PROJECT_NAME, REDIS_URL, SECRET_KEY, WEB_PORT; removed none",
    ]);
    const kept = JSON.parse((await stack.ok(["stack", "output", "plan", "--json"])).stdout) as Record<string, string[]>;
    assert.equal(kept["web1"]?.[0], `web1: release from nothing -> new (sha ${sha})`);
    assert.ok(!(r.stdout + r.stderr).includes(secret), "no secret value in the output of up");
  });

  it("a change previews as code, migration, services and env lines, without a secret value", async () => {
    const from = appArchive(app).sha;
    const views = path.join(app, "core", "views.py");
    fs.writeFileSync(views, `${fs.readFileSync(views, "utf8")}\n# plan e2e: a code change\n`);
    fs.writeFileSync(path.join(app, "core", "migrations", "0002_plan_check.py"), migration);
    await stack.setConfig("env.FEATURE_FLAG", "on", { path: true });
    const to = appArchive(app).sha;
    const r = await stack.ok(["preview", "--diff"]);
    const out = r.stdout + r.stderr;
    if (process.env["AYNA_PLAN_DUMP"]) fs.writeFileSync(process.env["AYNA_PLAN_DUMP"], out);
    assert.deepEqual(planOf(out, "web1"), [
      `web1: release v1 -> new (sha ${from} -> ${to})`,
      "  code: 1 file changed, 1 added, 0 removed",
      "  dependencies: unchanged",
      "  migrations: core/migrations/0002_plan_check.py",
      "  services: reload none; restart web, api, celery, beat",
      "  env: changed FEATURE_FLAG; added none; removed none",
    ]);
    assert.ok(!out.includes(secret), `the DATABASE_URL value is not in the output:\n${out}`);
  });
});
