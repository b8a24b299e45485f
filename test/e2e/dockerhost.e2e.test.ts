// End-to-end check of the test-host harness's Docker support: a host booted
// with `docker: true` runs Debian's docker.io (installed with apt, as the
// product does) with the overlay2 storage driver and cgroup limits; the base
// image is a local tarball (no image registry is reachable) streamed over
// SSH into `docker import`; `docker build --network host` installs Debian
// packages; the engine and its containers come back after a graceful
// reboot; nothing is left behind.
import * as assert from "node:assert/strict";
import * as net from "node:net";
import {
  assertClean,
  baseImageTarball,
  ExecResult,
  rebootHost,
  sshExec,
  startHost,
  stopAllHosts,
  stopHost,
  TestHost,
} from "../support/testhost";

const image = "ayna/base:test";
const hardened = "--user 65534:65534 --read-only --tmpfs /tmp --security-opt no-new-privileges";
const web = `sudo docker run -d --name web --init --restart unless-stopped ${hardened} --memory 128m -w /tmp -p 127.0.0.1:18080:8080 ${image} python3 -m http.server 8080`;
/**
 * Waits up to 30 s for the published port to answer inside the host, and prints the
 * last status code only (a refused try prints 000, which must not pile up before it).
 */
const curlWeb =
  'for i in $(seq 150); do c=$(curl -sS -o /dev/null -w \'%{http_code}\' http://127.0.0.1:18080/ 2>/dev/null); [ "$c" = 200 ] && break; sleep 0.2; done; printf %s "$c"';

/** Can this machine open a TCP connection to ADDRESS:PORT (within 3 s)? */
function connects(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port, timeout: 3000 });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(false));
  });
}

describe("Docker inside a test host (startHost({ docker: true }))", function () {
  // A cold cache builds the host image and the base image first (about a minute each, in parallel).
  this.timeout(15 * 60 * 1000);

  let host: TestHost | undefined;
  let tarball = "";
  const times: [string, number][] = [];

  async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
      return await f();
    } finally {
      times.push([label, (Date.now() - t0) / 1000]);
    }
  }

  function h(): TestHost {
    assert.ok(host, "the host did not start");
    return host;
  }

  /** Runs COMMAND on the host; fails the test unless it exits 0. */
  async function ok(command: string, opts: { timeoutMs?: number; inputFile?: string } = {}): Promise<string> {
    const r: ExecResult = await sshExec(h(), command, { timeoutMs: 60_000, ...opts });
    assert.equal(r.code, 0, `${command}\nexit ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    return r.stdout;
  }

  before(async function () {
    [host, tarball] = await timed("startHost({ docker: true }) + baseImageTarball()", () =>
      Promise.all([startHost({ docker: true }), baseImageTarball()]),
    );
  });

  after(async function () {
    await stopAllHosts();
    for (const [label, s] of times) process.stderr.write(`      ${s.toFixed(1).padStart(6)} s  ${label}\n`);
  });

  it("installs Debian's docker.io with apt; the engine runs with overlay2 on a bind-mounted /var/lib/docker and has memory, CPU and pids limits", async function () {
    this.timeout(5 * 60 * 1000);
    // Debian 13's docker.io ships the engine; the docker command is docker-cli (a Recommends).
    await timed("apt-get install docker.io docker-cli", () =>
      ok(
        "sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io docker-cli",
        { timeoutMs: 4 * 60 * 1000 },
      ),
    );
    const fstype = (await ok("findmnt -no FSTYPE /var/lib/docker")).trim();
    assert.notEqual(fstype, "overlay", "/var/lib/docker is on the host's overlay root");
    assert.match(await ok("sudo docker info"), /^\s*Storage Driver: overlay2$/m);
    const info = JSON.parse(await ok("sudo docker info --format '{{json .}}'")) as Record<string, unknown>;
    assert.equal(info.Driver, "overlay2");
    assert.equal(info.MemoryLimit, true, "memory limit support");
    assert.equal(info.CpuCfsQuota, true, "CPU quota support");
    assert.equal(info.PidsLimit, true, "pids limit support");
  });

  it("imports the base image tarball streamed over ssh into `docker import`", async function () {
    this.timeout(3 * 60 * 1000);
    assert.match(tarball, /\.tar\.gz$/);
    const id = await timed("docker import (over ssh)", () =>
      ok(`sudo docker import - ${image}`, { inputFile: tarball, timeoutMs: 150_000 }),
    );
    assert.match(id.trim(), /^sha256:[0-9a-f]{64}$/);
    const files = await ok(
      `sudo docker run --rm ${image} sh -c 'ls /usr/lib/systemd/systemd /usr/sbin/sshd /var/lib/apt/lists/*.gz 2>/dev/null; true'`,
    );
    assert.equal(files.trim(), "", "no systemd, no sshd, no apt lists in the base image");
  });

  it("runs a hardened, limited container (--user --read-only --tmpfs --no-new-privileges --memory --cpus --pids-limit): python3 prints 42", async function () {
    this.timeout(2 * 60 * 1000);
    const out = await timed("docker run (hardened, limited)", () =>
      ok(`sudo docker run --rm ${hardened} --memory 128m --cpus 0.5 --pids-limit 64 ${image} python3 -c 'print(42)'`),
    );
    assert.equal(out.trim(), "42");
  });

  it("publishes 127.0.0.1:18080 -> 8080 (python3 -m http.server): curl inside the host gets 200, this machine cannot connect; docker inspect shows the 128 MiB memory limit", async function () {
    this.timeout(2 * 60 * 1000);
    await ok(web);
    assert.equal(await ok(curlWeb), "200");
    assert.equal(await connects(h().address, 18080), false, "bound to the host's loopback only");
    const memory = await ok("sudo docker inspect -f '{{.HostConfig.Memory}}' web");
    assert.equal(memory.trim(), String(128 * 1024 * 1024));
  });

  it("docker build --network host FROM the base image installs redis-server with apt", async function () {
    this.timeout(6 * 60 * 1000);
    const dockerfile = `FROM ${image}\nRUN apt-get update && apt-get install -y --no-install-recommends redis-server\n`;
    const w = await sshExec(h(), "mkdir -p ~/redis-build && cat > ~/redis-build/Dockerfile", { input: dockerfile });
    assert.equal(w.code, 0, w.stderr);
    await timed("docker build --network host (apt-get install redis-server)", () =>
      ok("cd ~/redis-build && sudo docker build --network host -t ayna/redis:test .", { timeoutMs: 5 * 60 * 1000 }),
    );
    const version = await ok("sudo docker run --rm ayna/redis:test redis-server --version");
    assert.match(version, /^Redis server v=\d+\.\d+/);
  });

  it("graceful reboot: the engine comes back by itself, the web container (restart unless-stopped) answers again and a new limited container runs", async function () {
    this.timeout(5 * 60 * 1000);
    host = await timed("rebootHost (graceful)", () => rebootHost(h()));
    assert.equal((await ok("systemctl is-enabled docker.service")).trim(), "enabled");
    assert.equal(await timed("web answers after the reboot", () => ok(curlWeb)), "200");
    const out = await ok(
      `sudo docker run --rm ${hardened} --memory 64m --pids-limit 32 ${image} python3 -c 'print(43)'`,
    );
    assert.equal(out.trim(), "43");
  });

  it("stops the host and leaves nothing behind (process, mount, state dir, bridge, NAT rule)", async function () {
    this.timeout(2 * 60 * 1000);
    await timed("stopHost", () => stopHost(h()));
    host = undefined;
    await assertClean();
  });
});
