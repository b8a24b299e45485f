// Foundation smoke test: the real CLI, the project's language host and
// provider, over SSH to a real Debian host with systemd. A one-file program
// (test/fixtures/smoke) keeps it about the chain, not the app.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { alive } from "../support/procs";
import { PulumiStack, repoRoot, resourceSummary } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

const file = "/opt/ayna/smoke/deployed-by";

async function acceptedLogins(host: TestHost): Promise<number> {
  const r = await sshExec(
    host,
    "sudo journalctl --no-pager -o cat -u ssh.service | grep -c 'Accepted publickey' || true",
  );
  return Number(r.stdout.trim());
}

describe("smoke: pulumi up / up again / destroy against a real host", function () {
  this.timeout(300_000);
  let host: TestHost;
  let stack: PulumiStack;

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`smoke${process.pid}`, path.join(repoRoot, "test", "fixtures", "smoke"));
    await stack.setConfig("address", host.address);
    await stack.setConfig("port", String(host.port));
    await stack.setConfig("user", host.user);
    await stack.setConfig("hostKey", host.hostKey);
    await stack.setConfig("privateKey", host.privateKey, { secret: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) {
      await stopHost(host);
      assert.equal(alive(host.pid), false, "the host's nspawn process is gone");
    }
  });

  it("creates the file atomically with mode and owner", async () => {
    const r = await stack.ok(["up", "--yes"]);
    assert.equal(resourceSummary(r.stdout)["created"], 3, r.stdout); // stack, provider, file
    const st = await sshExec(host, `sudo sh -c 'stat -c "%a %U %G" ${file} && cat ${file} && ls -A /opt/ayna/smoke'`);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(
      st.stdout,
      "640 root deploy\nayna-deploy smoke test\ndeployed-by\n",
      "content, mode, owner; no temp file",
    );
  });

  it("keeps the private key out of state and the stack file", async () => {
    const keyBody = host.privateKey.split("\n")[1]!;
    assert.ok(keyBody.length > 20);
    assert.ok(!(await stack.exportState()).includes(keyBody), "state holds the key only encrypted");
    assert.ok(!fs.readFileSync(stack.configFile, "utf8").includes(keyBody), "stack config holds it only encrypted");
  });

  it("a second up changes nothing and opens no SSH session", async () => {
    const before = await acceptedLogins(host);
    const r = await stack.ok(["up", "--yes"]);
    const after = await acceptedLogins(host);
    assert.deepEqual(resourceSummary(r.stdout), { unchanged: 3 }, r.stdout);
    // `after` counts its own session and the one that counted `before`.
    assert.equal(after - before, 1, `pulumi up made ${after - before - 1} SSH logins`);
  });

  it("refresh sees a file changed on the host and the next up repairs it", async () => {
    await sshExec(host, `echo tampered | sudo tee ${file} >/dev/null && sudo chmod 0666 ${file}`);
    await stack.ok(["refresh", "--yes"]);
    const r = await stack.ok(["up", "--yes"]);
    assert.equal(resourceSummary(r.stdout)["updated"], 1, r.stdout);
    const st = await sshExec(host, `sudo sh -c 'stat -c "%a" ${file} && cat ${file}'`);
    assert.equal(st.stdout, "640\nayna-deploy smoke test\n");
  });

  it("destroy removes the file", async () => {
    const r = await stack.ok(["destroy", "--yes"]);
    assert.equal(resourceSummary(r.stdout)["deleted"], 3, r.stdout);
    const st = await sshExec(host, `sudo test -e ${file}; echo $?`);
    assert.equal(st.stdout.trim(), "1");
  });
});
