// Several projects on one host: two stacks of the program with different
// project names share a test host, each on its own port range and its own
// database of the host's Redis; releasing or rolling back one leaves the other's
// processes alone; a third project claiming a range already taken there is
// refused at `up`, before anything on the host changes; a project that runs
// only its api needs only the api's variables.
import { strict as assert } from "node:assert";
import { PulumiStack } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";
import { servedRelease, sh, touchCode } from "../support/sampleApp";
import { assertNoLoss, describeLoad, startLoad } from "../support/load";

const roles = ["web", "api", "celery", "beat"];

/** MainPID of each of the project's units. */
async function mainPids(host: TestHost, project: string): Promise<Record<string, string>> {
  const pids: Record<string, string> = {};
  for (const role of roles) {
    pids[role] = (await sh(host, `systemctl show -P MainPID ${project}-${role}`)).trim();
    assert.match(pids[role]!, /^[1-9]\d*$/, `${project}-${role} runs`);
  }
  return pids;
}

async function envValue(host: TestHost, project: string, name: string): Promise<string> {
  const out = await sh(host, `sudo cat /opt/ayna/${project}/shared/.env.staging`);
  // Values are written double-quoted.
  return new RegExp(`^${name}="?(.*?)"?$`, "m").exec(out)?.[1] ?? `missing in:\n${out}`;
}

describe("several projects on one host: own ports, own Redis database, a claim each", function () {
  this.timeout(900_000);
  const started = Date.now();
  let host: TestHost;
  let alpha: PulumiStack;
  let beta: PulumiStack;
  let gamma: PulumiStack | undefined;
  let delta: PulumiStack | undefined;
  let alphaApp: string;

  async function deploy(project: string, portBase: number): Promise<{ stack: PulumiStack; app: string }> {
    const stack = await PulumiStack.create(`${project}${process.pid}`);
    await stack.configureHost(project, host);
    const app = await stack.configureSampleApp(project, { portBase });
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
    return { stack, app };
  }

  before(async () => {
    host = await startHost();
    ({ stack: alpha, app: alphaApp } = await deploy("alpha", 8150));
    ({ stack: beta } = await deploy("beta", 8170));
  });

  after(async () => {
    await delta?.remove();
    await gamma?.remove();
    await beta?.remove();
    await alpha?.remove();
    if (host) await stopHost(host);
    process.stderr.write(`      multiproject wall time: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  });

  it("alpha and beta deploy side by side, each serving /health on its own ports", async () => {
    touchCode(alphaApp, "alpha-v1");
    // One after the other: both bootstraps would otherwise contend for apt on the fresh host.
    await alpha.ok(["up", "--yes", "--skip-preview"]);
    await beta.ok(["up", "--yes", "--skip-preview"]);
    for (const port of [8150, 8151, 8170, 8171]) assert.equal(await servedRelease(host, port), "v1", `port ${port}`);
    // Each port is held by its own project's unit.
    for (const [project, port] of [
      ["alpha", 8150],
      ["beta", 8170],
    ] as const) {
      const pid = (await sh(host, `systemctl show -P MainPID ${project}-web`)).trim();
      assert.match(
        await sh(host, `sudo ss -Hltnp 'sport = :${port}'`),
        new RegExp(`127\\.0\\.0\\.1:${port} .*pid=${pid},`),
      );
    }
    assert.equal(
      await sh(host, "sudo cat /etc/ayna/claims/alpha /etc/ayna/claims/beta"),
      "project=alpha\nports=8150-8159\nredis_db=6\nproject=beta\nports=8170-8179\nredis_db=8\n",
    );
    assert.equal(
      await sh(host, "sudo stat -c '%U:%G %a %n' /etc/ayna/claims/alpha /etc/ayna/claims/beta"),
      "root:root 644 /etc/ayna/claims/alpha\nroot:root 644 /etc/ayna/claims/beta\n",
    );
  });

  it("their REDIS_URLs differ: each project has its own database of the host's Redis", async () => {
    assert.equal(await envValue(host, "alpha", "REDIS_URL"), "redis://127.0.0.1:6379/6");
    assert.equal(await envValue(host, "beta", "REDIS_URL"), "redis://127.0.0.1:6379/8");
    // And the workers use them: each one's queue binding is in its own database, none in 0.
    for (const db of [6, 8]) {
      const keys = await sh(host, `redis-cli -n ${db} --scan`);
      assert.match(keys, /^_kombu\.binding\.celery$/m, `database ${db}: ${keys}`);
    }
    assert.equal((await sh(host, "redis-cli -n 0 dbsize")).trim(), "0");
  });

  it("a release of alpha (a code change) leaves beta's processes alone", async () => {
    const betaBefore = await mainPids(host, "beta");
    touchCode(alphaApp, "alpha-v2");
    const r = await alpha.ok(["up", "--yes", "--skip-preview"]);
    assert.match(r.stdout, /release\s*: .*"v2"/);
    assert.equal(await servedRelease(host, 8150), "v2");
    assert.equal(await servedRelease(host, 8151), "v2");
    assert.deepEqual(await mainPids(host, "beta"), betaBefore, "beta's units were not restarted");
    assert.equal(await servedRelease(host, 8170), "v1");
    assert.equal(await servedRelease(host, 8171), "v1");
  });

  it("a rollback of alpha (release.pin v1, then up) leaves beta untouched", async () => {
    const betaBefore = await mainPids(host, "beta");
    await alpha.ok(["config", "set", "--path", "release.pin", "v1"]);
    await alpha.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8150), "v1");
    assert.equal(await servedRelease(host, 8151), "v1");
    assert.deepEqual(await mainPids(host, "beta"), betaBefore, "beta's units were not restarted");
    assert.equal(await servedRelease(host, 8170), "v1");
  });

  it("a third project claiming alpha's range is refused at up, naming alpha and the fix; nothing of it lands", async () => {
    gamma = await PulumiStack.create(`gamma${process.pid}`);
    await gamma.configureHost("gamma", host);
    await gamma.configureSampleApp("gamma", { portBase: 8150 });
    const r = await gamma.run(["up", "--yes", "--skip-preview"]);
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, out);
    assert.match(
      out,
      /claim refused: ports 8150-8159 on this host are claimed by project alpha \(\/etc\/ayna\/claims\/alpha\); gamma wants 8150-8159\. Fix: set ports\.base of gamma/,
    );
    assert.match(
      out,
      /claim refused: Redis database 6 on this host is used by project alpha \(\/etc\/ayna\/claims\/alpha\)\. Fix: set redis\.db of gamma/,
    );
    // Refused before the bootstrap: no user, no tree, no claim for gamma.
    for (const probe of ["id -u gamma", "sudo test -e /opt/ayna/gamma", "sudo test -e /etc/ayna/claims/gamma"]) {
      assert.notEqual((await sshExec(host, probe)).code, 0, `${probe}: nothing of gamma is on the host`);
    }
    assert.equal(await servedRelease(host, 8150), "v1", "alpha still serves");
    assert.equal(await servedRelease(host, 8170), "v1", "beta still serves");
  });

  it("an api-only project (no web, workers, Redis or Django settings) deploys, releases and rolls back under 8 clients, losing nothing", async () => {
    delta = await PulumiStack.create(`delta${process.pid}`);
    await delta.configureHost("delta", host);
    const app = await delta.configureSampleApp("delta", { portBase: 8190 });
    for (const role of ["web", "celery", "beat"]) {
      await delta.setConfig(`services.${role}.enabled`, "false", { path: true });
    }
    await delta.setConfig("redis.local", "false", { path: true });
    await delta.ok(["config", "rm", "--path", "env.DJANGO_SETTINGS_MODULE"]);
    touchCode(app, "delta-v1");
    await delta.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8191), "v1");
    assert.equal(
      await sh(host, "systemctl list-units --all --plain --no-legend 'delta-*.service' | awk '{print $1, $3}'"),
      "delta-api.service active\n",
      "only the api runs",
    );
    const env = await sh(host, "sudo cat /opt/ayna/delta/shared/.env.staging");
    assert.match(env, /^API_PORT="8191"$/m);
    assert.doesNotMatch(env, /WEB_PORT|REDIS_URL|DJANGO_SETTINGS_MODULE/);

    const load = await startLoad(host, { urls: ["http://127.0.0.1:8191/"] });
    touchCode(app, "delta-v2");
    await delta.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8191), "v2");
    await delta.ok(["config", "set", "--path", "release.pin", "v1"]);
    await delta.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host, 8191), "v1");
    const res = await load.stop();
    process.stderr.write(`      load through delta v1 -> v2 -> v1: ${describeLoad(res)}\n`);
    assertNoLoss(res);
    assert.ok((res.releases["v1"] ?? 0) > 0 && (res.releases["v2"] ?? 0) > 0, "both releases served the clients");
    assert.equal(await servedRelease(host, 8150), "v1", "alpha still serves");
  });
});
