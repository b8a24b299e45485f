// Several hosts in one stack: releases go out in batches (release.batchSize);
// a host that fails stops the rollout there and the others stay on the old
// release, env file included (an env change is a release like code).
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { PulumiStack } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";
import { assertNoLoss, describeLoad, startLoad } from "../support/load";
import { sh } from "../support/sampleApp";

const project = "demoapp";

async function served(host: TestHost): Promise<string> {
  const r = await sshExec(host, "curl -s http://127.0.0.1:8150/health");
  return /"release": ?"(v\d+)"/.exec(r.stdout)?.[1] ?? `none: ${r.stdout}`;
}

describe("several hosts: batches stop at the first failed host", function () {
  this.timeout(900_000);
  const hosts: TestHost[] = [];
  let stack: PulumiStack;
  let app: string;

  before(async () => {
    hosts.push(...(await Promise.all([startHost(), startHost()])));
    stack = await PulumiStack.create(`batch${process.pid}`);
    await stack.configureHost(project, hosts[0]!);
    app = await stack.configureSampleApp(project);
    const b = hosts[1]!;
    await stack.setConfig("hosts[1].name", "web2", { path: true });
    await stack.setConfig("hosts[1].address", b.address, { path: true });
    await stack.setConfig("hosts[1].user", b.user, { path: true });
    await stack.setConfig("hosts[1].hostKey", b.hostKey, { path: true });
    await stack.setConfig("release.batchSize", "1", { path: true });
    // Generous: under CI load (two e2e files side by side) a cold start takes several seconds.
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
  });

  after(async () => {
    await stack?.remove();
    for (const h of hosts) await stopHost(h);
  });

  it("deploys v1 to both hosts, one batch after the other", async () => {
    await stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    assert.deepEqual(await Promise.all(hosts.map(served)), ["v1", "v1"]);
  });

  it("a bad env value fails on the first host: its env file and release stay, the second host is never touched", async () => {
    const envs = async () =>
      Promise.all(hosts.map((h) => sh(h, `sudo sha256sum /opt/ayna/${project}/shared/.env.staging`)));
    const envsBefore = await envs();
    const pidOf = (h: TestHost) => sh(h, `systemctl show -P MainPID ${project}-web`);
    const pidsBefore = await Promise.all(hosts.map(pidOf));
    const outputsBefore = (await stack.ok(["stack", "output", "hosts", "--json"])).stdout;
    // A new release and a value that makes the app fail: both in one update.
    fs.writeFileSync(path.join(app, "core", "build_tag.py"), 'BUILD_TAG = "v2"\n');
    await stack.setConfig("env.SAMPLE_FAIL_HEALTH", "yes", { path: true });
    const preview = await stack.ok(["preview", "--diff"]);
    for (const h of ["web1", "web2"]) {
      assert.match(preview.stdout, new RegExp(`${h}-deploy`), `the preview names ${h}'s release`);
    }
    const r = await stack.run(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, out);
    assert.match(out, /web1-deploy \*\*updating failed\*\*/);
    assert.match(out, /health check failed: web of release v2 did not answer 200 on its candidate port 8155/);
    assert.match(out, /release v2 failed its health check before the switch; v1 is still serving/);
    assert.doesNotMatch(out, /web2-deploy updat/, "web2's release never started");
    assert.deepEqual(await Promise.all(hosts.map(served)), ["v1", "v1"]);
    assert.deepEqual(await envs(), envsBefore, "both env files as they were");
    assert.deepEqual(await Promise.all(hosts.map(pidOf)), pidsBefore, "no web service restarted");
    assert.equal((await stack.ok(["stack", "output", "hosts", "--json"])).stdout, outputsBefore, "state unchanged");
    await stack.ok(["config", "rm", "--path", "env.SAMPLE_FAIL_HEALTH"]);
  });

  it("v2 with a good env change instead then goes out host by host; 4+4 clients on each of the two hosts (8+8 on the machine's 2 cores) lose nothing", async () => {
    await stack.setConfig("env.FEATURE_FLAG", "on", { path: true });
    // Two hosts on one 2-core machine: 8+8 on each is twice the load the
    // single-host tests put on the same cores; with it one web request of
    // about 42,000 took 5.006 s in a full run (p99 0.53 s, every core busy).
    const loads = await Promise.all(hosts.map((h) => startLoad(h, { clients: 4 })));
    const r = await stack.run(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    const results = await Promise.all(loads.map((l) => l.stop()));
    results.forEach((res, i) => process.stderr.write(`      load on web${i + 1}: ${describeLoad(res)}\n`));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    results.forEach(assertNoLoss);
    assert.deepEqual(await Promise.all(hosts.map(served)), ["v2", "v2"]);
    for (const h of hosts) {
      assert.match(await sh(h, `sudo grep FEATURE_FLAG /opt/ayna/${project}/shared/.env.staging`), /FEATURE_FLAG="on"/);
    }
  });
});
