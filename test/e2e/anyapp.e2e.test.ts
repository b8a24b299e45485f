// An app nobody wrote for this tool, from stack config alone: a FastAPI
// service with SQLAlchemy and Alembic on the host's own PostgreSQL, api only,
// whose /health names no release, and which is a member of a uv workspace
// whose lock is at the workspace's root (test/fixtures/items-workspace, the
// app in backend/). It deploys, its Alembic revisions run before each switch,
// and a release and a rollback lose no request of 8 clients.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { assertNoLoss, describeLoad, startLoad } from "../support/load";
import { PulumiStack, repoRoot, resourceSummary } from "../support/pulumi";
import { sh } from "../support/sampleApp";
import { startHost, stopHost, TestHost } from "../support/testhost";

const project = "itemsapi";
const url = "http://127.0.0.1:8151/";

describe("an app not written for this tool: FastAPI, SQLAlchemy and Alembic on the host's PostgreSQL, api only", function () {
  this.timeout(900_000);
  let host: TestHost;
  let stack: PulumiStack;
  let app: string;

  /** The version the api's index answers with (the fixture's VERSION), and its item count. */
  async function served(): Promise<{ version: string; items: number }> {
    return JSON.parse(await sh(host, `curl -sf ${url}`)) as { version: string; items: number };
  }

  const revision = async () =>
    (
      await sh(
        host,
        `sudo runuser -u postgres -- psql -X -tA -d ${project} -c 'SELECT version_num FROM alembic_version'`,
      )
    ).trim();

  function setVersion(v: string): void {
    const main = path.join(app, "app", "main.py");
    fs.writeFileSync(main, fs.readFileSync(main, "utf8").replace(/^VERSION = ".*"$/m, `VERSION = "${v}"`));
  }

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`items${process.pid}`);
    await stack.configureHost(project, host);
    // Locks made from the workspace's go to the stack's own folder, not to ~/.cache.
    stack.env["AYNA_LOCK_DIR"] = path.join(stack.dir, "locks");
    const workspace = path.join(stack.dir, "workspace");
    fs.cpSync(path.join(repoRoot, "test", "fixtures", "items-workspace"), workspace, { recursive: true });
    app = path.join(workspace, "backend");
    const settings: [string, string][] = [
      ["ports.base", "8150"],
      ["app.path", app],
      ["services.web.enabled", "false"],
      ["services.celery.enabled", "false"],
      ["services.beat.enabled", "false"],
      ["services.api.module", "app.main:app"],
      ["redis.local", "false"],
      ["database.local", "true"],
      ["release.healthNamesRelease", "false"],
      ["release.watchSeconds", "5"],
    ];
    for (const [k, v] of settings) await stack.setConfig(k, v, { path: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("deploys from nothing: the member's part of the workspace lock locked here, the plan lists the Alembic revision, upgrade head runs on the project's database, /health answers 200", async () => {
    const r = await stack.ok(["up", "--yes"]);
    assert.match(
      r.stdout + r.stderr,
      /app dependencies: locked now from the uv workspace lock \S+\/workspace\/uv\.lock \(member backend\) with uv/,
    );
    const onHost = await sh(host, `sudo cat /opt/ayna/${project}/releases/current/.venv/.ayna-lock/uv.lock`);
    // The versions the workspace's own lock pins are the ones installed.
    const pins = (lock: string) =>
      [...lock.matchAll(/^\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"/gm)]
        .map((m) => `${m[1]}==${m[2]}`)
        .filter((p) => !p.startsWith("itemsapi=="))
        .sort();
    const workspaceLock = fs.readFileSync(path.join(app, "..", "uv.lock"), "utf8");
    assert.deepEqual(pins(onHost), pins(workspaceLock));
    assert.match(r.stdout + r.stderr, /migrations to run: alembic:0001_create_items/);
    assert.equal(await revision(), "0001");
    assert.deepEqual(await served(), { service: "items", version: "1", items: 0 } as unknown);
    assert.equal((await sh(host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8151/health")).trim(), "200");
    // The api runs; the database's backup is a oneshot its timer starts; no other role has a unit.
    assert.equal(
      (
        await sh(host, "systemctl list-units --all --plain --no-legend 'itemsapi-*.service' | awk '{print $1, $3}'")
      ).trim(),
      "itemsapi-api.service active\nitemsapi-backup.service inactive",
    );
  });

  it("a release with a new revision under 8 clients: upgraded before the switch, the new code serves, nothing lost", async () => {
    fs.writeFileSync(
      path.join(app, "migrations", "versions", "0002_add_price.py"),
      [
        '"""add price"""',
        "import sqlalchemy as sa",
        "from alembic import op",
        "",
        'revision = "0002"',
        'down_revision = "0001"',
        "",
        "",
        "def upgrade() -> None:",
        '    op.add_column("items", sa.Column("price", sa.Integer, nullable=True))',
        "",
        "",
        "def downgrade() -> None:",
        '    op.drop_column("items", "price")',
        "",
      ].join("\n"),
    );
    setVersion("2");
    const load = await startLoad(host, { urls: [url] });
    const r = await stack.ok(["up", "--yes"]);
    const res = await load.stop();
    process.stderr.write(`      load through the release: ${describeLoad(res)}\n`);
    assert.match(r.stdout + r.stderr, /migrations to run: alembic:0002_add_price/);
    assert.equal(await revision(), "0002");
    assert.equal((await served()).version, "2");
    assertNoLoss(res);
  });

  it("a rollback (release.pin v1) under 8 clients: v1's code serves again on the upgraded database, nothing lost", async () => {
    const load = await startLoad(host, { urls: [url] });
    await stack.setConfig("release.pin", "v1", { path: true });
    await stack.ok(["up", "--yes", "--skip-preview"]);
    const res = await load.stop();
    process.stderr.write(`      load through the rollback: ${describeLoad(res)}\n`);
    assert.equal((await served()).version, "1");
    assert.equal(await revision(), "0002", "a rollback does not migrate down");
    assertNoLoss(res);
  });

  it("a second up makes 0 changes", async () => {
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(r.stdout)), ["unchanged"], r.stdout);
  });
});
