// The local PostgreSQL database: command builders (exact strings and golden
// files), and the backup tool run against stand-ins for runuser and pg_dump.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  databaseCheckCommand,
  DatabaseSpec,
  enableBackupTimerCommand,
  ensureDatabaseScript,
  localDatabaseUrl,
  renderBackupService,
  renderBackupTimer,
  renderDatabaseTool,
  sqlIdentifier,
  sqlLiteral,
} from "../../builders/postgres";
import { assertGolden } from "../support/golden";

const spec: DatabaseSpec = {
  project: "demoapp",
  name: "demoapp",
  user: "demoapp",
  group: "demoapp",
  retentionDays: 14,
};

describe("local PostgreSQL: command builders", () => {
  it("quotes SQL literals and identifiers", () => {
    assert.equal(sqlLiteral("it's"), "'it''s'");
    assert.equal(sqlIdentifier('a"b'), '"a""b"');
  });

  it("DATABASE_URL points at 127.0.0.1:5432, the role and database of the same name", () => {
    assert.equal(localDatabaseUrl("demoapp", "pw0RD"), "postgresql://demoapp:pw0RD@127.0.0.1:5432/demoapp");
    assert.equal(localDatabaseUrl("d", "a/b@c"), "postgresql://d:a%2Fb%40c@127.0.0.1:5432/d");
  });

  it("makes the role and database only when missing, the password from stdin through shell builtins (golden)", () => {
    const script = ensureDatabaseScript(spec);
    assertGolden("ensure-database.sh", script);
    // The password's only ways: read from stdin, escaped by sed on a pipe, printed by printf into psql's stdin.
    assert.deepEqual(
      script.split("\n").filter((l) => l.includes("pw")),
      [
        "pw=$(cat)",
        `[ -n "$pw" ] || { echo 'database: no password on stdin' >&2; exit 2; }`,
        `esc=$(printf '%s' "$pw" | sed "s/'/''/g")`,
      ],
    );
    assert.doesNotMatch(script, /PGPASSWORD|psql [^|]*\$esc/);
  });

  it("checks at refresh that the database and its login role are there (the query reaches psql intact)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-dbcheck-"));
    try {
      const log = path.join(dir, "argv");
      // sudo -n CMD... runs CMD; runuser logs each argument on a line and answers "1".
      fs.writeFileSync(path.join(dir, "sudo"), '#!/bin/sh\nshift\nexec "$@"\n', { mode: 0o755 });
      fs.writeFileSync(path.join(dir, "runuser"), `#!/bin/sh\nprintf '%s\\n' "$@" >${log}\necho 1\n`, { mode: 0o755 });
      const env = { ...process.env, PATH: `${dir}:${process.env["PATH"]}` };
      const r = spawnSync("sh", ["-c", databaseCheckCommand(spec)], { env });
      assert.equal(r.status, 0, String(r.stderr));
      assert.deepEqual(fs.readFileSync(log, "utf8").trimEnd().split("\n"), [
        "-u",
        "postgres",
        "--",
        "psql",
        "-X",
        "-tA",
        "-d",
        "postgres",
        "-c",
        "SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'demoapp' AND r.rolname = 'demoapp' AND r.rolcanlogin",
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the backup tool, its service and its daily timer (golden)", () => {
    assertGolden("ayna-db", renderDatabaseTool(spec));
    assertGolden("demoapp-backup.service", renderBackupService(spec));
    assertGolden("demoapp-backup.timer", renderBackupTimer(spec));
    assert.equal(
      enableBackupTimerCommand("demoapp"),
      "sudo -n sh -c 'systemctl daemon-reload && systemctl enable --now --quiet demoapp-backup.timer'",
    );
  });

  it("the tool is valid bash", () => {
    const r = spawnSync("bash", ["-n"], { input: renderDatabaseTool(spec) });
    assert.equal(r.status, 0, String(r.stderr));
  });
});

describe("local PostgreSQL: the backup tool (stand-ins for runuser and pg_dump)", () => {
  let dir: string;
  let tool: string;
  let backups: string;
  const me = os.userInfo();
  const group = spawnSync("id", ["-gn"]).stdout.toString().trim();

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-db-"));
    backups = path.join(dir, "backups");
    fs.mkdirSync(backups);
    fs.mkdirSync(path.join(dir, "bin"));
    // runuser -u postgres -- CMD...: runs CMD; pg_dump prints a dump; pg_restore, createdb and dropdb log their args.
    const stub = (name: string, body: string) =>
      fs.writeFileSync(path.join(dir, "bin", name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    stub("runuser", 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
    stub("pg_dump", 'echo "dump of $*"');
    for (const n of ["pg_restore", "createdb", "dropdb"]) {
      stub(n, `echo "${n} $* <$(cat 2>/dev/null | head -c 40)>" >>"${path.join(dir, "calls.log")}"`);
    }
    const text = renderDatabaseTool({ ...spec, user: me.username, group }).replace(/^DIR=.*$/m, `DIR=${backups}`);
    tool = path.join(dir, "ayna-db");
    fs.writeFileSync(tool, text, { mode: 0o755 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (...args: string[]) =>
    spawnSync(tool, args, { env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env["PATH"]}` } });

  it("backup: a 0600 dump of the service user, no temporary file left, dumps older than the retention removed", () => {
    const old = path.join(backups, "demoapp-20250101T000000Z.dump");
    const young = path.join(backups, "demoapp-20250102T000000Z.dump");
    fs.writeFileSync(old, "old");
    fs.writeFileSync(young, "young");
    const day = 86_400;
    const now = Date.now() / 1000;
    fs.utimesSync(old, now - 14 * day - 60, now - 14 * day - 60);
    fs.utimesSync(young, now - 13 * day, now - 13 * day);
    const r = run("backup");
    assert.equal(r.status, 0, String(r.stderr));
    const out = r.stdout.toString();
    assert.match(out, new RegExp(`^backup: removed ${old}$`, "m"));
    const made = /^backup: (\S+) \((\d+) bytes\)$/m.exec(out);
    assert.ok(made, out);
    assert.equal(fs.readFileSync(made[1]!, "utf8"), "dump of --format=custom --no-password demoapp\n");
    assert.equal(fs.statSync(made[1]!).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(backups).sort(), [path.basename(young), path.basename(made[1]!)].sort());
  });

  it("restore: into the scratch database by default, fed the dump on stdin", () => {
    fs.writeFileSync(path.join(backups, "demoapp-x.dump"), "DUMPDATA");
    const r = run("restore", "demoapp-x.dump");
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(r.stdout.toString(), "restore: demoapp-x.dump is in database demoapp_restore\n");
    assert.equal(
      fs.readFileSync(path.join(dir, "calls.log"), "utf8"),
      "dropdb --if-exists demoapp_restore <>\ncreatedb --owner=demoapp demoapp_restore <>\npg_restore --no-owner --role=demoapp --exit-on-error -d demoapp_restore <DUMPDATA>\n",
    );
  });

  it("restore into the live database: one transaction, replacing what is there", () => {
    fs.writeFileSync(path.join(backups, "demoapp-x.dump"), "DUMPDATA");
    const r = run("restore", "demoapp-x.dump", "demoapp");
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(
      fs.readFileSync(path.join(dir, "calls.log"), "utf8"),
      "pg_restore --clean --if-exists --no-owner --role=demoapp --single-transaction --exit-on-error -d demoapp <DUMPDATA>\n",
    );
  });

  it("restore refuses a missing dump and a bad database name, naming the fix", () => {
    let r = run("restore", "nope.dump");
    assert.equal(r.status, 2);
    assert.equal(r.stderr.toString(), `ayna-db: restore: no dump ${backups}/nope.dump; ayna-db list shows them\n`);
    fs.writeFileSync(path.join(backups, "demoapp-x.dump"), "D");
    r = run("restore", "demoapp-x.dump", "x; drop");
    assert.equal(r.status, 2);
    assert.equal(r.stderr.toString(), "ayna-db: restore: x; drop is not a database name\n");
    assert.ok(!fs.existsSync(path.join(dir, "calls.log")), "nothing ran");
  });
});
