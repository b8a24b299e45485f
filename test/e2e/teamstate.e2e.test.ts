// A team's state on PostgreSQL: the engine's own PostgreSQL state backend
// (`pulumi login postgres://...`), served by Debian's postgresql on a test
// host. Two operators, each with a PULUMI_HOME and a copy of the stack's
// config file of their own, work on one stack: an up while the other's runs is
// refused naming the holder, each sees the other's updates, and a rollback by
// one undoes a release by the other.
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { makeOk } from "../support/make";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { servedRelease, sh, touchCode } from "../support/sampleApp";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

const project = "teamapp";

/** Debian's postgresql on the host, reachable from this machine, with a database for pulumi's state. */
async function stateServer(host: TestHost, password: string): Promise<void> {
  const setup = [
    "set -eu",
    "export DEBIAN_FRONTEND=noninteractive",
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null",
    "conf=$(ls -d /etc/postgresql/*/main)",
    `echo "listen_addresses = '*'" >"$conf/conf.d/state.conf"`,
    `echo "hostssl state pulumi 0.0.0.0/0 scram-sha-256" >>"$conf/pg_hba.conf"`,
    "systemctl restart postgresql",
    "until runuser -u postgres -- pg_isready -q; do sleep 0.5; done",
  ].join("\n");
  const r = await sshExec(host, "sudo sh -c 'cat >/tmp/state.sh && sh /tmp/state.sh'", {
    input: setup,
    timeoutMs: 300_000,
  });
  assert.equal(r.code, 0, r.stderr);
  // The password on psql's stdin, never a command line.
  const sql = `CREATE ROLE pulumi LOGIN PASSWORD '${password}';\nCREATE DATABASE state OWNER pulumi;\n`;
  const c = await sshExec(host, "sudo runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres", {
    input: sql,
  });
  assert.equal(c.code, 0, c.stderr);
}

describe("team state on PostgreSQL: two operators, one stack", function () {
  this.timeout(900_000);
  let host: TestHost;
  let alice: PulumiStack;
  let bob: PulumiStack;
  let app: string;
  const password = crypto.randomBytes(18).toString("hex");

  before(async () => {
    host = await startHost();
    await stateServer(host, password);
    const backendUrl = `postgres://pulumi:${password}@${host.address}:5432/state?sslmode=require`;
    alice = await PulumiStack.create(`team${process.pid}`, undefined, { backendUrl });
    await alice.configureHost(project, host);
    app = await alice.configureSampleApp(project);
    bob = alice.secondOperator();
  });

  after(async () => {
    await alice?.remove();
    await bob?.remove(); // its own PULUMI_HOME and config copy; the stack is gone already
    if (host) await stopHost(host);
  });

  it("the state lives in PostgreSQL: both operators list the stack, neither has a local state file", async () => {
    const tables = await sh(host, "sudo runuser -u postgres -- psql -X -tA -d state -c '\\dt'");
    assert.match(tables, /pulumi_state/);
    for (const op of [alice, bob]) {
      const ls = await op.ok(["stack", "ls", "--json"]);
      assert.ok(
        (JSON.parse(ls.stdout) as { name: string }[]).some((s) => s.name === alice.name),
        ls.stdout,
      );
      assert.deepEqual(fs.readdirSync(path.join(op.dir, "state")), [], "the unused file backend stays empty");
    }
  });

  it("bob's up while alice's runs is refused, naming her lock; afterwards bob sees her update (0 changes)", async () => {
    touchCode(app, "team-v1");
    const first = alice.run(["up", "--yes", "--skip-preview"], { timeoutMs: 600_000 });
    // Her lock, once the update has taken it.
    const lockQuery = "SELECT count(*) FROM pulumi_state WHERE key LIKE '%/locks/%'";
    const started = Date.now();
    while ((await sh(host, `sudo runuser -u postgres -- psql -X -tA -d state -c "${lockQuery}"`)).trim() === "0") {
      assert.ok(Date.now() - started < 120_000, "alice's update never took the lock");
      await new Promise((r) => setTimeout(r, 200));
    }
    const refused = await bob.run(["up", "--yes", "--skip-preview"]);
    const out = refused.stdout + refused.stderr;
    assert.notEqual(refused.code, 0, out);
    assert.match(out, /the stack is currently locked by 1 lock\(s\)/);
    const holder = `${os.userInfo().username}@${os.hostname()}`;
    assert.ok(out.includes(`created by ${holder} (pid `), `the holder is named: ${out}`);
    assert.ok(!out.includes(password), "the backend's password is not printed");
    const a = await first;
    assert.equal(a.code, 0, a.stdout + a.stderr);
    assert.equal(await servedRelease(host, 8150), "v1");
    const again = await bob.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
  });

  it("a release by bob, then make rollback by alice: v1 serves again, and both read the same outputs", async () => {
    touchCode(app, "team-v2");
    await bob.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8150), "v2");
    await makeOk(alice, "rollback");
    assert.equal(await servedRelease(host, 8150), "v1");
    for (const op of [alice, bob]) {
      const hosts = JSON.parse((await op.ok(["stack", "output", "hosts", "--json"])).stdout) as { release: string }[];
      assert.equal(hosts[0]!.release, "v1");
    }
    const history = JSON.parse((await bob.ok(["stack", "history", "--json"])).stdout) as { kind: string }[];
    assert.ok(history.filter((h) => h.kind === "update").length >= 4, JSON.stringify(history.map((h) => h.kind)));
  });
});
