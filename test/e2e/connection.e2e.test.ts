// The connection belongs to the host's provider, not to each resource: a new
// login user, a rotated key or another address for the same machine is one
// change on the provider that runs nothing on the host but a login with the
// new settings; a machine rebuilt with a new host key is refused until its
// new key is pinned, then provisioned from nothing.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { utils as sshUtils } from "ssh2";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { addAddress, sshExec, startHost, stopHost, TestHost } from "../support/testhost";
import { touchCode } from "../support/sampleApp";

const project = "demoapp";
const units = ["web", "api", "celery", "beat"].map((r) => `${project}-${r}.service`);
/** A second login user the test creates, so its logins are told apart from the harness's (root). */
const opsUser = "ayna-ops";

function fingerprintOf(hostKey: string): string {
  const blob = Buffer.from(hostKey.trim().split(/\s+/)[1]!, "base64");
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

describe("connection changes: one provider per host", function () {
  this.timeout(900_000);
  let host: TestHost;
  let root: TestHost;
  let stack: PulumiStack;
  let app: string;

  async function sh(cmd: string, on: TestHost = root): Promise<string> {
    const r = await sshExec(on, cmd, { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** Main PIDs of the project's units, and how many SSH logins `user` has had. */
  async function snapshot(user: string): Promise<{ pids: string; logins: number }> {
    const pids = await sh(`systemctl show -p MainPID --value ${units.join(" ")} | tr '\\n' ' '`);
    const logins = await sh(
      `journalctl --no-pager -o cat -u ssh.service | grep -c 'Accepted publickey for ${user} ' || true`,
    );
    return { pids: pids.trim(), logins: Number(logins.trim()) };
  }

  async function servedRelease(on: TestHost): Promise<string> {
    const out = await sh("curl -s http://127.0.0.1:8150/health", on);
    return /"release": ?"(v\d+)"/.exec(out)?.[1] ?? `none: ${out}`;
  }

  /** Runs `up` for a connection-only change and checks it touched nothing but the provider. */
  async function connectionOnlyUp(loginUser: string): Promise<void> {
    const before = await snapshot(loginUser);
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(resourceSummary(r.stdout), { updated: 1, unchanged: resourceCount - 1 }, r.stdout);
    assert.match(r.stdout, /pulumi:providers:ayna\s+web1-ssh\s+updated/, r.stdout);
    const after = await snapshot(loginUser);
    assert.equal(after.pids, before.pids, "no service was restarted");
    // The one login is the provider's check of the new connection; nothing ran after it.
    assert.equal(after.logins - before.logins, 1, "one login: the connection check");
  }

  let resourceCount = 0;
  /** Commands and files on the host: what a rebuilt machine needs again. */
  let onHostCount = 0;

  before(async () => {
    host = await startHost();
    root = { ...host, user: "root" };
    stack = await PulumiStack.create(`conn${process.pid}`);
    await stack.configureHost(project, host);
    app = await stack.configureSampleApp(project);
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("deploys the sample app; state holds one encrypted private key, on the host's provider", async () => {
    touchCode(app, "v1");
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    resourceCount = Object.values(resourceSummary(r.stdout)).reduce((a, b) => a + b, 0);
    assert.equal(await servedRelease(host), "v1");
    const state = JSON.parse(await stack.exportState()) as {
      deployment: { resources: { type: string; inputs?: Record<string, unknown> }[] };
    };
    onHostCount = state.deployment.resources.filter((res) => res.type.startsWith("ayna:remote:")).length;
    assert.ok(onHostCount >= 10, `${onHostCount} commands and files`);
    const withKey = state.deployment.resources.filter((res) => JSON.stringify(res).includes('"privateKey"'));
    assert.deepEqual(
      withKey.map((res) => res.type),
      ["pulumi:providers:ayna"],
      "only the provider carries the key",
    );
    const key = withKey[0]!.inputs!["privateKey"] as Record<string, unknown>;
    assert.equal(typeof key["ciphertext"], "string", "the key is stored encrypted");
    const text = JSON.stringify(state);
    assert.ok(!text.includes("PRIVATE KEY"), "no plain key anywhere in state");
    assert.ok(!/"connection"/.test(text), "no resource carries a connection block");
  });

  it("preview --diff of a code change shows no connection block", async () => {
    touchCode(app, "v1-preview");
    const r = await stack.ok(["preview", "--diff"]);
    touchCode(app, "v1");
    // The release command is the one change (shown by type and URN, or by name on a terminal).
    assert.match(r.stdout, /ayna:remote:Command(::|\s+)web1-deploy/, r.stdout);
    for (const word of ["connection", "privateKey", "hostKey", "insecureIgnoreHostKey"]) {
      assert.ok(!r.stdout.includes(word), `preview mentions ${word}:\n${r.stdout}`);
    }
  });

  it("a new login user: one provider update, only the connection check runs, no service restarts", async () => {
    const pub = await sh("cat /home/deploy/.ssh/authorized_keys");
    await sh(
      [
        `useradd --create-home --shell /bin/bash ${opsUser}`,
        `install -d -m 0700 -o ${opsUser} -g ${opsUser} /home/${opsUser}/.ssh`,
        `printf '%s\\n' '${pub.trim()}' > /home/${opsUser}/.ssh/authorized_keys`,
        `chown ${opsUser}: /home/${opsUser}/.ssh/authorized_keys`,
        `echo '${opsUser} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/${opsUser}`,
      ].join(" && "),
    );
    await stack.setConfig("hosts[0].user", opsUser, { path: true });
    await connectionOnlyUp(opsUser);
  });

  it("a rotated key: one provider update; with the old key removed from the host, a release still goes out", async () => {
    const next = sshUtils.generateKeyPairSync("ed25519");
    await sh(`printf '%s\\n' '${next.public}' >> /home/${opsUser}/.ssh/authorized_keys`);
    await stack.setConfig("sshPrivateKey", next.private, { secret: true });
    await connectionOnlyUp(opsUser);
    // Only the new key is left for the program's user.
    await sh(`printf '%s\\n' '${next.public}' > /home/${opsUser}/.ssh/authorized_keys`);
    touchCode(app, "v2");
    await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(await servedRelease(host), "v2");
  });

  it("a second address for the same machine: one provider update, nothing else", async () => {
    const alias = await addAddress(host);
    assert.notEqual(alias, host.address);
    await stack.setConfig("hosts[0].address", alias, { path: true });
    await connectionOnlyUp(opsUser);
    const state = await stack.exportState();
    assert.ok(state.includes(`"address": "${alias}"`), "the provider now reaches the host at its second address");
  });

  it("a key the host refuses is caught at preview, before it replaces the working one", async () => {
    const stranger = sshUtils.generateKeyPairSync("ed25519");
    const variant = stack.copyConfig("stranger");
    await stack.setConfig("sshPrivateKey", stranger.private, { secret: true, configFile: variant });
    const r = await stack.run(["preview"], { configFile: variant });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /the new connection does not work: .*refused the key/);
  });

  it("a machine rebuilt with a new host key is refused with both fingerprints; after pinning, provisioned from nothing", async () => {
    // Back to the original login, then the machine is rebuilt in place: same address, new host key, empty disk.
    await stack.setConfig("hosts[0].user", "deploy", { path: true });
    await stack.setConfig("hosts[0].address", host.address, { path: true });
    await stack.setConfig("sshPrivateKey", host.privateKey, { secret: true });
    await stack.ok(["up", "--yes", "--skip-preview"]);
    const oldKey = host.hostKey;
    await stopHost(host, { keepAddress: true });
    host = await startHost({ address: host.address });
    root = { ...host, user: "root" };
    assert.notEqual(host.hostKey, oldKey);

    touchCode(app, "v3");
    const refused = await stack.run(["up", "--yes", "--skip-preview"]);
    const out = refused.stdout + refused.stderr;
    assert.notEqual(refused.code, 0, out);
    assert.match(out, /host key mismatch/);
    assert.ok(out.includes(fingerprintOf(oldKey)), `names the pinned key:\n${out}`);
    assert.ok(out.includes(fingerprintOf(host.hostKey)), `names the offered key:\n${out}`);
    assert.equal((await sh("test -e /opt/ayna && echo yes || echo no")).trim(), "no", "nothing ran on it");

    await stack.setConfig("hosts[0].hostKey", host.hostKey, { path: true });
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    const summary = resourceSummary(r.stdout);
    // Every command and file on the host is made anew; components, the provider and the stack-wide secret stay.
    assert.equal(summary["replaced"], onHostCount, JSON.stringify(summary));
    assert.equal(await servedRelease(host), "v1", "the new machine serves its first release");
    assert.equal(
      (await sh(`cat /opt/ayna/${project}/.template-version`)).trim(),
      "2.0.0",
      "the standard's layout is there again",
    );
  });
});
