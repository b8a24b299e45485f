// End-to-end check of the test-host harness itself: two real hosts in
// parallel, systemd as PID 1, sshd with pinned host keys, Python, NAT.
import * as assert from "node:assert/strict";
import { assertClean, sshExec, startHost, stopAllHosts, stopHost, TestHost } from "../support/testhost";

describe("test hosts (systemd-nspawn)", function () {
  // A cold cache builds the image first (about a minute); a warm `up` takes seconds.
  this.timeout(10 * 60 * 1000);

  let a: TestHost | undefined;
  let b: TestHost | undefined;

  before(async function () {
    [a, b] = await Promise.all([startHost(), startHost()]);
  });

  after(async function () {
    await stopAllHosts();
  });

  function hosts(): [TestHost, TestHost] {
    assert.ok(a && b, "hosts did not start");
    return [a, b];
  }

  it("boots two distinct hosts", function () {
    const [x, y] = hosts();
    assert.notEqual(x.name, y.name);
    assert.notEqual(x.address, y.address);
    assert.notEqual(x.hostKey, y.hostKey);
    for (const h of [x, y]) {
      assert.match(h.address, /^\d+\.\d+\.\d+\.\d+$/);
      assert.equal(h.port, 22);
      assert.equal(h.user, "deploy");
      assert.equal(h.suite, "trixie");
      assert.match(h.hostKey, /^ssh-ed25519 AAAA[0-9A-Za-z+/=]+$/);
      assert.match(h.privateKey, /BEGIN OPENSSH PRIVATE KEY/);
    }
  });

  it("runs systemd as PID 1, fully booted", async function () {
    this.timeout(60_000);
    for (const h of hosts()) {
      const r = await sshExec(h, "cat /proc/1/comm; systemctl is-system-running", { timeoutMs: 30_000 });
      const [pid1, state] = r.stdout.trim().split("\n");
      assert.equal(pid1, "systemd", r.stderr);
      assert.ok(state === "running" || state === "degraded", `state ${state}`);
      assert.equal((await sshExec(h, "hostname")).stdout.trim(), h.name);
    }
  });

  it("has python3 >= 3.12 (trixie) and passwordless sudo", async function () {
    this.timeout(60_000);
    for (const h of hosts()) {
      const py = await sshExec(h, "python3 -c 'import sys; print(*sys.version_info[:2])'");
      assert.equal(py.code, 0, py.stderr);
      const [major = 0, minor = 0] = py.stdout.trim().split(" ").map(Number);
      assert.ok(major === 3 && minor >= 12, `python ${py.stdout.trim()} on ${h.name}`);
      const sudo = await sshExec(h, "sudo -n id -u");
      assert.equal(sudo.stdout.trim(), "0", sudo.stderr);
    }
  });

  it("passes stdin and exit codes through sshExec", async function () {
    const [x] = hosts();
    const r = await sshExec(x, "tr a-z A-Z; exit 3", { input: "hello\n" });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, "HELLO\n");
  });

  it("host A reaches host B's sshd", async function () {
    this.timeout(30_000);
    const [x, y] = hosts();
    const r = await sshExec(x, `timeout 5 bash -c 'exec 3<>/dev/tcp/${y.address}/22; head -c 8 <&3'`, {
      timeoutMs: 15_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "SSH-2.0-");
  });

  it("reaches the Debian mirror through NAT (apt-get update)", async function () {
    this.timeout(3 * 60 * 1000);
    const [x] = hosts();
    const r = await sshExec(x, "sudo -n timeout 150 apt-get update -q", { timeoutMs: 170_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  });

  it("stops both hosts and leaves nothing behind", async function () {
    this.timeout(2 * 60 * 1000);
    const [x, y] = hosts();
    await Promise.all([stopHost(x), stopHost(y)]);
    a = b = undefined;
    await assertClean();
  });
});
