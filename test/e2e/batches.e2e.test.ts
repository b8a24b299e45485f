// Several hosts in one stack: releases go out in batches (release.batchSize);
// a host that fails stops the rollout there and the others stay on the old release.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { PulumiStack } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

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

  it("a release that fails on the first host never reaches the second; the output says which hosts moved", async () => {
    // Only web1's environment breaks the release: its candidate cannot answer there.
    fs.writeFileSync(path.join(app, "core", "build_tag.py"), 'BUILD_TAG = "v2"\n');
    await sshExec(
      hosts[0]!,
      `echo 'SAMPLE_FAIL_HEALTH=1' | sudo tee -a /opt/ayna/${project}/shared/.env.staging >/dev/null`,
    );
    const r = await stack.run(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, out);
    assert.match(out, /web1-deploy \*\*updating failed\*\*/);
    assert.doesNotMatch(out, /web2-deploy updat/, "web2's release never started");
    assert.deepEqual(await Promise.all(hosts.map(served)), ["v1", "v1"]);
  });
});
