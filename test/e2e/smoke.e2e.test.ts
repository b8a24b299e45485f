// Foundation smoke test: the real program through the real CLI, over SSH, to a
// real Debian host with systemd. Standard v2.0 lists `.template-version`
// ("Tracks standard version") in /opt/ayna/{project}/; the Host writes it.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

function processAlive(pid: number): boolean {
  try {
    // A zombie waiting for its parent to reap it is not running.
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

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
  const project = "smokeapp";
  const file = `/opt/ayna/${project}/.template-version`;

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`smoke${process.pid}`);
    await stack.configureHost(project, host);
  });

  after(async () => {
    await stack?.remove();
    if (host) {
      await stopHost(host);
      assert.equal(processAlive(host.pid), false, "the host's nspawn process is gone");
    }
  });

  it("creates the file atomically with mode and owner", async () => {
    const r = await stack.ok(["up", "--yes"]);
    assert.equal(resourceSummary(r.stdout)["created"], 3, r.stdout);
    const st = await sshExec(host, `stat -c '%a %U %G' ${file} && cat ${file} && ls -A /opt/ayna/${project}`);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.stdout, "644 root root\n2.0.0\n.template-version\n", "content, mode, owner; no temp file left");
  });

  it("keeps the private key out of state, output and the stack file", async () => {
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

  it("destroy removes the file", async () => {
    const r = await stack.ok(["destroy", "--yes"]);
    assert.equal(resourceSummary(r.stdout)["deleted"], 3, r.stdout);
    const st = await sshExec(host, `test -e ${file}; echo $?`);
    assert.equal(st.stdout.trim(), "1");
  });
});
