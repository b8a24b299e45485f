// Faults in the middle of a release (issue 9): `pulumi up` killed, a service
// that crashes after it started, the SSH connection cut during the upload,
// the host's disk full during the upload, the host rebooted. After each: a
// release serves, nothing in shared/ is lost, the deploy lock recovers and the
// next `up` converges (standard v2.0 "Rollback": the previous release keeps
// serving until the new one is proven). The stack reaches the host through a
// relay on this machine's loopback (test/support/tcpProxy.ts), the only way
// to slow and cut a real SSH session; load stays on the host's loopback.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { CliResult, PulumiStack, repoRoot } from "../support/pulumi";
import { rebootHost, sshExec, startHost, stopHost, TestHost } from "../support/testhost";
import { servedRelease, sh, touchCode } from "../support/sampleApp";
import { assertNoLoss, describeLoad, LoadResult, startLoad } from "../support/load";
import { startProxy, TcpProxy } from "../support/tcpProxy";
import { argv } from "../../builders/shell";

const project = "demoapp";
const root = `/opt/ayna/${project}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("faults in the middle of a release: each leaves a release serving, shared/ intact, the lock free, and the next up converges", function () {
  this.timeout(1_800_000);
  let host: TestHost;
  let proxy: TcpProxy;
  let stack: PulumiStack;
  let app: string;
  let marker = "";
  let tag = 0;

  /** `pulumi up` in its own process group, so a SIGKILL takes the CLI and its plugins at once. */
  function spawnUp(): { child: ChildProcess; done: Promise<CliResult> } {
    const started = Date.now();
    const child = spawn(
      stack.pulumi,
      ["up", "--yes", "--skip-preview", "--stack", stack.name, "--non-interactive", "--config-file", stack.configFile],
      { cwd: repoRoot, env: stack.env, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const done = new Promise<CliResult>((resolve) =>
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started })),
    );
    lastUp = { child, done };
    return { child, done };
  }
  let lastUp: { child: ChildProcess; done: Promise<CliResult> } | undefined;

  // A test that failed half way leaves neither a slowed proxy nor an up
  // holding the stack's lock to the tests after it.
  afterEach(async () => {
    proxy?.setRate(0);
    const up = lastUp;
    lastUp = undefined;
    if (up && up.child.exitCode === null && up.child.signalCode === null) {
      process.kill(-up.child.pid!, "SIGKILL");
      await up.done;
      await stack.run(["cancel", "--yes"]);
    }
  });

  /**
   * Polls a shell condition on the host (as root) until it prints "yes". Given
   * the up that should bring it about, fails as soon as that up ends first,
   * with its output (the wait would otherwise only time out).
   */
  async function waitOnHost(
    what: string,
    condition: string,
    timeoutMs = 120_000,
    up?: Promise<CliResult>,
  ): Promise<void> {
    const started = Date.now();
    let ended: CliResult | undefined;
    void up?.then((r) => (ended = r));
    while (Date.now() - started < timeoutMs) {
      const r = await sshExec(host, `sudo sh -c ${argv(`if ${condition}; then echo yes; fi`)}`);
      if (r.stdout.trim() === "yes") return;
      if (ended) {
        const tail = (ended.stdout + ended.stderr).trim().split("\n").slice(-40).join("\n");
        assert.fail(`the up ended (exit ${ended.code}) before this was seen on the host: ${what}\n${tail}`);
      }
      await sleep(150);
    }
    assert.fail(`never on the host within ${timeoutMs / 1000}s: ${what}`);
  }

  /**
   * The host writes the archive in the SSH packets it gets whole: the first
   * 32 kB once they have all passed the proxy, the last 14 kB some 3.5 s later
   * at 4 kB/s. A look at the host on busy cores once took longer than that and
   * found the upload done. Slowed to 64 B/s once it is seen, the rest takes
   * minutes, until the test lets it go (setRate(0)) or cuts it.
   */
  function holdUploadBack(): void {
    proxy.setRate(64);
  }

  const lockHeld = `pid=$(sed -n "s/^pid=//p" ${root}/.deploy-lock/info 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid"`;
  // Part of the archive has arrived on the host (the tool writes it as it reads it).
  const uploading = `${lockHeld} && find ${root}/releases -maxdepth 2 -path '*/.v*.tmp/.archive.tar.gz' -size +0 | grep -q .`;

  function newCode(): string {
    tag += 1;
    touchCode(app, `fault-${tag}`);
    return `fault-${tag}`;
  }

  /** The next up, after a `pulumi cancel` if the fault left the state backend's lock. */
  async function converge(): Promise<CliResult> {
    let r = await stack.run(["up", "--yes", "--skip-preview"], { timeoutMs: 600_000 });
    if (r.code !== 0 && /the stack is currently locked by 1 lock\(s\)/.test(r.stdout + r.stderr)) {
      await stack.ok(["cancel", "--yes"]);
      r = await stack.run(["up", "--yes", "--skip-preview"], { timeoutMs: 600_000 });
    }
    assert.equal(r.code, 0, `the next up converges:\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /** What every fault must leave once the next up has run. */
  async function assertConverged(what: string): Promise<void> {
    const status = await sh(host, `sudo ${root}/bin/ayna-release status`);
    assert.doesNotMatch(status, /lock:/, `${what}: the deploy lock is free\n${status}`);
    const served = await servedRelease(host);
    assert.match(served, /^v\d+$/, `${what}: web serves a release`);
    assert.equal(await servedRelease(host, 8151), served, `${what}: api serves the same release`);
    const outputs = JSON.parse((await stack.ok(["stack", "output", "hosts", "--json"])).stdout) as {
      release: string;
    }[];
    assert.equal(outputs[0]?.release, served, `${what}: state and host agree`);
    assert.equal(
      (await sh(host, `sudo sha256sum ${root}/shared/media/fault-marker | cut -d' ' -f1`)).trim(),
      marker,
      `${what}: shared/ kept its files`,
    );
    assert.equal((await sh(host, `sudo test -f ${root}/.in-flight && echo left || true`)).trim(), "");
  }

  /** Starts an up, and once `condition` holds on the host, cuts its power and boots it again. */
  async function powerCutDuringUp(what: string, condition: string): Promise<void> {
    const { child, done } = spawnUp();
    await waitOnHost(what, condition, 120_000, done);
    host = await rebootHost(host, { hard: true });
    // The cut session ends when the provider's keepalive meets the rebooted host.
    const ended = await Promise.race([done, sleep(120_000).then(() => undefined)]);
    if (!ended) process.kill(-child.pid!, "SIGKILL");
  }

  function report(what: string, res: LoadResult): void {
    process.stderr.write(`      load through ${what}: ${describeLoad(res)}\n`);
  }

  before(async () => {
    // Its own 3 GiB disk (a tmpfs under the overlay), so the disk-full test fills only this host's disk.
    host = await startHost({ diskMb: 3072 });
    proxy = await startProxy(host.address, host.port);
    stack = await PulumiStack.create(`flt${process.pid}`);
    await stack.configureHost(project, host);
    await stack.setConfig("hosts[0].address", "127.0.0.1", { path: true });
    await stack.setConfig("hosts[0].port", String(proxy.port), { path: true });
    app = await stack.configureSampleApp(project);
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
    // A short window: each up after a kill first waits for the killed up's release to end on the host.
    await stack.setConfig("release.watchSeconds", "5", { path: true });
    newCode();
    await stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    // Something of the app's own in shared/ that no fault may take away.
    marker = crypto.randomBytes(16).toString("hex");
    await sh(host, `echo ${marker} | sudo tee ${root}/shared/media/fault-marker >/dev/null`);
    marker = (await sh(host, `sudo sha256sum ${root}/shared/media/fault-marker | cut -d' ' -f1`)).trim();
  });

  after(async () => {
    await stack?.remove();
    await proxy?.close();
    if (host) await stopHost(host);
  });

  it("SIGKILL of pulumi up at 10 points spread over a release (1 s after it started, then 0 to 21 s after the host's tool took the lock), each next up started at once: 8+8 clients lose nothing across all ten, each next up takes the lock, the up after the last converges", async () => {
    // Before the host is reached, then from the unpack through candidates, the switch, the handovers and the gate.
    const points: { after: "start" | "lock"; s: number }[] = [
      { after: "start", s: 1 },
      ...[0, 1, 2, 4, 6, 9, 12, 16, 21].map((s) => ({ after: "lock" as const, s })),
    ];
    // One load through every kill and the converging up: serving is checked continuously, not between steps.
    const load = await startLoad(host, { maxSeconds: 1800, maxRequests: 3_000_000 });
    let holder = "";
    for (const { after, s } of points) {
      newCode();
      // The up after the previous kill, as an operator would run it: the state
      // backend's lock left by the killed CLI is cleared first.
      await stack.run(["cancel", "--yes"]);
      const { child, done } = spawnUp();
      if (after === "lock") {
        // A tool other than the killed up's holds the lock: the previous one finished and freed it.
        await waitOnHost(
          "this up's tool holding the deploy lock",
          `${lockHeld} && [ "$pid" != "${holder}" ] && echo "$pid" >/run/ayna-fault-holder`,
        );
        holder = (await sh(host, "sudo cat /run/ayna-fault-holder")).trim();
      }
      await sleep(s * 1000);
      process.kill(-child.pid!, "SIGKILL");
      await done;
      // A tool the kill left running is the one the next up must wait for, not take for its own.
      holder = (await sh(host, `sudo sh -c ${argv(`${lockHeld} && echo "$pid" || true`)}`)).trim() || holder;
    }
    await converge();
    const res = await load.stop();
    report("ten SIGKILLs and the converging up", res);
    assertNoLoss(res);
    await assertConverged("ten SIGKILLs");
  });

  it("web crashing 10 s after it starts: the watch window (default 15 s) fails the release after the switch, the previous release serves again, the next up converges", async () => {
    await stack.ok(["config", "rm", "--path", "release.watchSeconds"]); // the default
    const before = await servedRelease(host);
    newCode();
    // The sample app's crash switch: the process of this unit exits 10 s after it loaded the code.
    fs.writeFileSync(path.join(app, "CRASH_AFTER"), `10 ${project}-web.service\n`);
    // No load: a crashing web drops requests by itself, which is not what this test is about.
    const r = await stack.run(["up", "--yes", "--skip-preview"], { timeoutMs: 600_000 });
    fs.rmSync(path.join(app, "CRASH_AFTER"));
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, out);
    assert.match(out, /candidate ok: web of v\d+ is healthy/, "healthy as a candidate");
    assert.match(
      out,
      new RegExp(
        `health check failed: ${project}-web\\.service stopped or restarted \\d+s after it started \\(it must stay up for 15s\\)`,
      ),
    );
    assert.match(out, /release v\d+ failed its health check and was rolled back; v\d+ is serving/);
    assert.equal(await servedRelease(host), before, "the previous release serves again");
    newCode();
    await converge();
    await assertConverged("a crash after start");
    await stack.setConfig("release.watchSeconds", "5", { path: true });
  });

  it("the SSH connection cut during the upload: the host keeps serving the previous release unchanged, 8+8 clients lose nothing, the next up converges", async () => {
    const before = await servedRelease(host);
    const releasesBefore = await sh(host, `sudo ls ${root}/releases`);
    newCode();
    const load = await startLoad(host);
    proxy.setRate(4096); // the archive alone is about 46 kB: ten seconds or more
    const { done } = spawnUp();
    await waitOnHost("the upload under way (lock held, archive partly written)", uploading, 120_000, done);
    holdUploadBack();
    const partial = (await sh(host, `sudo sh -c 'stat -c %s ${root}/releases/.v*.tmp/.archive.tar.gz'`)).trim();
    const cut = proxy.cut();
    proxy.setRate(0);
    const r = await done;
    assert.ok(cut >= 1, "a connection was open");
    assert.notEqual(r.code, 0, "the cut up fails");
    await waitOnHost("the tool gave up (lock free)", `! [ -d ${root}/.deploy-lock ]`, 60_000);
    process.stderr.write(`      cut after ${partial} bytes of the archive had arrived\n`);
    assert.equal(await sh(host, `sudo ls ${root}/releases`), releasesBefore, "no release was added or left half made");
    assert.equal(await servedRelease(host), before);
    await converge();
    const res = await load.stop();
    report("an SSH connection cut during the upload, and the next up", res);
    assertNoLoss(res);
    await assertConverged("the cut connection");
    assert.notEqual(await servedRelease(host), before, "the next up released the new code");
  });

  it("the host's disk full during the upload: up fails naming the full disk and the fix, the previous release keeps serving, 8+8 clients lose nothing; with room made the next up converges", async () => {
    const before = await servedRelease(host);
    newCode();
    // All but 64 MB of the disk taken before the up starts, so that the up's
    // own writes before the upload still find room; the rest once the upload
    // is under way, by fallocate (no data written: it lands at once, while the
    // archive is still arriving; a dd of 64 MB on busy cores once did not).
    await sh(host, "sudo sh -c 'fallocate -l $(($(df --output=avail -B1M / | tail -n 1) - 64))M /var/tmp/ayna-fill'");
    const load = await startLoad(host);
    proxy.setRate(4096);
    const { done } = spawnUp();
    await waitOnHost("the upload under way (lock held, archive partly written)", uploading, 120_000, done);
    holdUploadBack();
    const filled = await sshExec(
      host,
      "sudo sh -c 'fallocate -l $(df --output=avail -B1K / | tail -n 1)K /var/tmp/ayna-fill2 2>/dev/null; dd if=/dev/zero of=/var/tmp/ayna-fill3 bs=4k 2>/dev/null; df --output=avail -B1K / | tail -n 1'",
    );
    process.stderr.write(`      disk filled during the upload: ${filled.stdout.trim()} kB left\n`);
    proxy.setRate(0);
    const r = await done;
    const out = r.stdout + r.stderr;
    await sh(host, "sudo rm -f /var/tmp/ayna-fill /var/tmp/ayna-fill2 /var/tmp/ayna-fill3");
    assert.notEqual(r.code, 0, out);
    assert.match(
      out,
      new RegExp(
        `could not be stored: the disk holding ${root} is full \\(\\d+ MB free\\) - make room .* and run pulumi up again`,
      ),
    );
    assert.equal(await servedRelease(host), before, "the previous release serves");
    await converge();
    const res = await load.stop();
    report("a full disk during the upload, and the next up", res);
    assertNoLoss(res);
    await assertConverged("the full disk");
  });

  it("the host powered off and on while the candidates run: the services come back on the previous release, the stale lock is broken, the next up converges", async () => {
    // No load here: the load generator runs on the host, and the power cut stops it with everything else.
    const before = await servedRelease(host);
    newCode();
    await powerCutDuringUp(
      "the candidates running under the deploy lock",
      `${lockHeld} && systemctl is-active --quiet ${project}-web-candidate.service`,
    );
    await waitOnHost("web serving again after the boot", `curl -fsS http://127.0.0.1:8150/health >/dev/null`, 60_000);
    assert.equal(await servedRelease(host), before, "the services came back on the release that served");
    await converge();
    await assertConverged("a power cut during the candidates");
    assert.notEqual(await servedRelease(host), before, "the next up released the new code");
  });

  it("the host powered off and on after the switch, before the watch window passed: the next up checks the unconfirmed release again and converges", async () => {
    const before = await servedRelease(host);
    newCode();
    await powerCutDuringUp(
      "the switch made, the gate not yet passed",
      `${lockHeld} && [ -f ${root}/.in-flight ] && [ "$(readlink ${root}/releases/current)" != ${before} ]`,
    );
    const unconfirmed = (await sh(host, `sudo readlink ${root}/releases/current`)).trim();
    await converge();
    // The next up went from the release that served before the cut to the unconfirmed one, through the gate.
    assert.match(
      await sh(host, `sudo tail -n 1 ${root}/logs/deploy-audit.log`),
      new RegExp(`from=${before}\\tto=${unconfirmed}\\t.*result=ok\\tswitch`),
    );
    await assertConverged("a power cut after the switch");
  });
});
