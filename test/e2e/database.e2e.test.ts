// A project whose database is the host's own PostgreSQL (database.local):
// Debian's package, a role and database per project with a generated
// password that stays a secret, DATABASE_URL derived from them, migrations
// applied there, a release and a rollback, and the backup timer
// with make backup and make restore.
import { strict as assert } from "node:assert";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { startHost, stopHost, TestHost } from "../support/testhost";
import { servedRelease, sh, touchCode } from "../support/sampleApp";
import { makeOk, runMake } from "../support/make";

const project = "pgapp";
const envFile = `/opt/ayna/${project}/shared/.env.staging`;

describe("a local PostgreSQL database (database.local)", function () {
  this.timeout(900_000);
  let host: TestHost;
  let stack: PulumiStack;
  let app: string;
  let password = "";

  /** One value from psql, as the postgres superuser on the host. */
  const sql = async (db: string, query: string) =>
    (await sh(host, `sudo runuser -u postgres -- psql -X -tA -d ${db} -c "${query}"`)).trim();

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`pg${process.pid}`);
    await stack.configureHost(project, host);
    app = await stack.configureSampleApp(project);
    await stack.ok(["config", "rm", "--path", "secretEnv.DATABASE_URL"]);
    await stack.setConfig("database.local", "true", { path: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("up from nothing: PostgreSQL on 127.0.0.1 only, the project's role and database, the migrations applied there", async () => {
    touchCode(app, "pg-v1");
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8150), "v1");
    assert.equal(await servedRelease(host, 8151), "v1");
    const listeners = (await sh(host, "sudo ss -Hltn 'sport = :5432'")).trim().split("\n");
    assert.ok(listeners.length > 0, "PostgreSQL listens");
    for (const l of listeners) assert.match(l, /\s(127\.0\.0\.1|\[::1\]):5432\s/, `loopback only: ${l}`);
    const url = /^DATABASE_URL="?([^"\n]*)"?$/m.exec(await sh(host, `sudo cat ${envFile}`))?.[1] ?? "";
    const m = /^postgresql:\/\/pgapp:([A-Za-z0-9]{40})@127\.0\.0\.1:5432\/pgapp$/.exec(url);
    assert.ok(m, `DATABASE_URL is the local database: ${url.replace(/:[^:@]*@/, ":***@")}`);
    password = m[1]!;
    assert.equal(
      await sql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pgapp'"),
      "pgapp",
    );
    assert.ok(Number(await sql("pgapp", "SELECT count(*) FROM django_migrations")) > 0, "migrations applied");
    assert.equal(await sql("pgapp", "SELECT tableowner FROM pg_tables WHERE tablename = 'core_heartbeat'"), "pgapp");
    // The generated password: in the env file, nowhere in what the CLI printed or the state holds.
    assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password), "not in up's output");
    assert.ok(!(await stack.exportState()).includes(password), "not in the state in plain text");
    assert.ok(!(await sh(host, "sudo journalctl --no-pager -o cat")).includes(password), "not in the host's journal");
  });

  it("a second up makes 0 changes", async () => {
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(r.stdout)), ["unchanged"], r.stdout);
  });

  // Without load: this file runs in the lane beside the load tests (scripts/test.sh),
  // and releases under load are measured in releases.e2e and multiproject.e2e.
  it("a release and a rollback on PostgreSQL: v2 serves, then v1 again, with the database's rows kept", async () => {
    const migrations = await sql("pgapp", "SELECT count(*) FROM django_migrations");
    touchCode(app, "pg-v2");
    await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8150), "v2");
    await stack.ok(["config", "set", "--path", "release.pin", "v1"]);
    await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8150), "v1");
    assert.equal(await sql("pgapp", "SELECT count(*) FROM django_migrations"), migrations);
    await stack.ok(["config", "rm", "--path", "release.pin"]);
  });

  it("backups: a daily timer; make backup writes a 0600 dump; make restore loads it into a scratch database, or with INTO= the live one", async () => {
    assert.equal(
      await sh(host, `systemctl is-enabled ${project}-backup.timer; systemctl is-active ${project}-backup.timer`),
      "enabled\nactive\n",
    );
    await sql("pgapp", "CREATE TABLE backup_probe (v text); INSERT INTO backup_probe VALUES ('before')");
    const b = await makeOk(stack, "backup");
    const dump = /backup: \/opt\/ayna\/pgapp\/shared\/backups\/(pgapp-\d{8}T\d{6}Z\.dump) \((\d+) bytes\)/.exec(b.out);
    assert.ok(dump, b.out);
    assert.equal(
      await sh(host, `sudo stat -c '%U:%G %a' /opt/ayna/pgapp/shared/backups/${dump[1]}`),
      "pgapp:pgapp 600\n",
    );
    await sql("pgapp", "UPDATE backup_probe SET v = 'after'");

    const missing = await runMake(stack, "restore");
    assert.notEqual(missing.code, 0);
    assert.match(missing.out, /FILE= is required: make restore FILE=pgapp-YYYYMMDDTHHMMSSZ\.dump/);

    const scratch = await makeOk(stack, "restore", [`FILE=${dump[1]}`]);
    assert.match(scratch.out, new RegExp(`restore: ${dump[1]} is in database pgapp_restore`));
    assert.equal(await sql("pgapp_restore", "SELECT v FROM backup_probe"), "before");
    assert.equal(await sql("pgapp", "SELECT v FROM backup_probe"), "after", "the live database is untouched");

    await makeOk(stack, "restore", [`FILE=${dump[1]}`, "INTO=pgapp"]);
    assert.equal(await sql("pgapp", "SELECT v FROM backup_probe"), "before", "the live database restored");
    assert.equal(await servedRelease(host, 8150), "v1", "the app still serves from it");
  });

  it("a dump made by the timer's own unit restores into a scratch database with each table's row count as it was at the dump (between the counts just before and just after it; beat's heartbeats keep writing)", async () => {
    assert.equal(
      (await sh(host, `systemctl show -P Unit ${project}-backup.timer`)).trim(),
      `${project}-backup.service`,
    );
    await sql("pgapp", "INSERT INTO backup_probe SELECT 'row ' || g FROM generate_series(1, 500) g");
    const before = (await sh(host, "sudo ls /opt/ayna/pgapp/shared/backups")).trim().split("\n");
    const tables = (await sql("pgapp", "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).split(
      "\n",
    );
    assert.ok(tables.includes("backup_probe") && tables.includes("django_migrations"), tables.join(" "));
    const counts = async (db: string) =>
      new Map(
        (await sql(db, tables.map((t) => `SELECT '${t}', count(*) FROM ${t}`).join(" UNION ALL ")))
          .split("\n")
          .map((line) => line.split("|"))
          .map(([t, n]) => [t, Number(n)]),
      );
    // The app keeps running (beat writes a heartbeat row now and then), so
    // the dump's snapshot lies between these two counts.
    const liveBefore = await counts("pgapp");
    // What the timer starts each day, started now.
    await sh(host, `sudo systemctl start ${project}-backup.service`);
    const liveAfter = await counts("pgapp");
    assert.equal((await sh(host, `systemctl show -P Result ${project}-backup.service`)).trim(), "success");
    const made = (await sh(host, "sudo ls /opt/ayna/pgapp/shared/backups"))
      .trim()
      .split("\n")
      .filter((f) => !before.includes(f));
    assert.equal(made.length, 1, `one new dump: ${made.join(" ")}`);
    assert.equal(
      await sh(host, `sudo stat -c '%U:%G %a' /opt/ayna/pgapp/shared/backups/${made[0]}`),
      "pgapp:pgapp 600\n",
    );
    await makeOk(stack, "restore", [`FILE=${made[0]}`]);
    const restored = await counts("pgapp_restore");
    assert.deepEqual([...restored.keys()].sort(), [...tables].sort());
    for (const t of tables) {
      const [low, high, got] = [liveBefore.get(t), liveAfter.get(t), restored.get(t)];
      assert.ok(
        low !== undefined && high !== undefined && got !== undefined && low <= got && got <= high,
        `${t}: restored ${got} rows, live ${low} before the dump and ${high} after it`,
      );
    }
    assert.equal(restored.get("backup_probe"), 501);
    assert.equal(liveBefore.get("backup_probe"), 501);
  });
});
