// Docker mode (issue 13; the Docker standard, ../shared/standard/002-004): a
// real Docker daemon inside the test host, reached by the program over SSH;
// the sample app from nothing as hardened containers behind Caddy; releases
// as blue-green switches under 8 clients per URL through Caddy; a failing
// release changes nothing; `:rollback` and the rollback command bring the
// old image back.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { baseImageTarball, sshExec, startHost, stopHost, TestHost } from "../support/testhost";
import {
  curlThroughCaddy,
  headersThroughCaddy,
  proxyContainerRootCa,
  publicListeners,
  runRollback,
  sh,
  throughCaddy,
  touchCode,
} from "../support/sampleApp";
import { assertNoLoss, describeLoad, startLoad } from "../support/load";
import { makeOk, runMake } from "../support/make";

const project = "dock";
const domain = "dock.test";
const baseImage = "ayna/debian-python:trixie";
const urls = [`https://${domain}/`, `https://${domain}/api/`];

interface Inspect {
  Name: string;
  Id: string;
  Image: string;
  Config: { User: string; Labels: Record<string, string>; Healthcheck?: { Test: string[] } };
  HostConfig: {
    ReadonlyRootfs: boolean;
    Tmpfs: Record<string, string> | null;
    SecurityOpt: string[] | null;
    CapDrop: string[] | null;
    Memory: number;
    NanoCpus: number;
    PidsLimit: number | null;
    RestartPolicy: { Name: string };
    LogConfig: { Type: string };
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null;
    NetworkMode: string;
  };
}

describe("Docker mode: the sample app as hardened containers behind Caddy, blue-green releases and rollback", function () {
  this.timeout(1_800_000);
  let host: TestHost;
  let stack: PulumiStack;
  let app: string;
  const times: Record<string, number> = {};

  const through = (urlPath: string) => throughCaddy(host, domain, urlPath, proxyContainerRootCa);

  async function served(urlPath: string): Promise<string> {
    const r = await through(urlPath);
    return /"release": ?"(v\d+)"/.exec(r.body)?.[1] ?? `none: ${r.code} ${r.body}`;
  }

  async function inspect(...names: string[]): Promise<Inspect[]> {
    return JSON.parse(await sh(host, `sudo docker inspect ${names.join(" ")}`)) as Inspect[];
  }

  async function timedUp(label: string): Promise<{ code: number; out: string }> {
    const t0 = Date.now();
    const r = await stack.run(["up", "--yes", "--skip-preview"]);
    times[label] = (Date.now() - t0) / 1000;
    return { code: r.code, out: r.stdout + r.stderr };
  }

  before(async () => {
    const [h, tarball] = await Promise.all([startHost({ docker: true }), baseImageTarball()]);
    host = h;
    await sh(host, `echo '127.0.0.1 ${domain}' | sudo tee -a /etc/hosts >/dev/null`);
    stack = await PulumiStack.create(`dock${process.pid}`);
    await stack.configureHost(project, host);
    app = await stack.configureSampleApp(project, { portBase: 8180 });
    // The containers see the state volume, not the host's shared/ (read-only there).
    await stack.setConfig("secretEnv.DATABASE_URL", `sqlite:////var/lib/${project}/db.sqlite3`, {
      path: true,
      secret: true,
    });
    await stack.setConfig("env.ALLOWED_HOSTS", `127.0.0.1,localhost,${domain}`, { path: true });
    await stack.setConfig("runtime", "docker");
    await stack.setConfig("docker.baseImage", baseImage, { path: true });
    await stack.setConfig("docker.baseImageFile", tarball, { path: true });
    await stack.setConfig("proxy.enabled", "true", { path: true });
    await stack.setConfig("proxy.domains[0]", domain, { path: true });
    await stack.setConfig("proxy.tls", "internal", { path: true });
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("comes up from nothing as containers: / reaches web and /api/ the api through 443 (tls internal)", async () => {
    touchCode(app, "dock-v1");
    const r = await timedUp("first deploy");
    assert.equal(r.code, 0, r.out.slice(-6000));
    assert.equal(await served("/health"), "v1");
    const api = await through("/api/health");
    assert.equal(api.code, "200", api.body);
    assert.equal((JSON.parse(api.body) as { service: string }).service, "api");
    const names = (await sh(host, "sudo docker ps --format '{{.Names}}'")).trim().split("\n").sort();
    assert.deepEqual(names, [
      "ayna-proxy",
      `${project}-api`,
      `${project}-beat`,
      `${project}-celery`,
      `${project}-redis`,
      `${project}-web`,
    ]);
    const sha = JSON.parse((await stack.ok(["stack", "output", "hosts", "--json"])).stdout) as { sha: string }[];
    const tags = await sh(host, `sudo docker image ls ${project} --format '{{.Tag}}'`);
    assert.match(tags, new RegExp(`^sha-${sha[0]!.sha}$`, "m"), "the image is tagged sha-<SHA>");
    assert.doesNotMatch(tags, /^latest$/m, "never :latest");
  });

  it("Caddy's container answers /static/ itself from the serving release's staticfiles/ (Server: Caddy, no gunicorn; the file's bytes); a name not built goes to web's socket", async () => {
    const headers = (urlPath: string) => headersThroughCaddy(host, domain, urlPath, proxyContainerRootCa);
    const head = await headers("/static/admin/css/base.css");
    assert.match(head, /^HTTP\/\S+ 200/, head);
    assert.match(head, /^server: Caddy\r?$/im, head);
    assert.doesNotMatch(head, /gunicorn/i, `answered by the app, not by Caddy:\n${head}`);
    assert.equal(
      await sh(host, `${curlThroughCaddy(domain, "/static/admin/css/base.css", proxyContainerRootCa)} | sha256sum`),
      await sh(host, `sudo sha256sum </opt/ayna/${project}/releases/current/staticfiles/admin/css/base.css`),
    );
    const missing = await headers("/static/admin/css/not-built.css");
    assert.match(missing, /^HTTP\/\S+ 404/, missing);
    assert.match(missing, /^server: gunicorn\r?$/im, `the app's own answer:\n${missing}`);
  });

  it("docker inspect shows every hardening option on each app container", async () => {
    const uid = (await sh(host, `id -u ${project}`)).trim();
    const gid = (await sh(host, `getent group ${project} | cut -d: -f3`)).trim();
    const daemon = JSON.parse(await sh(host, "sudo cat /etc/docker/daemon.json")) as Record<string, unknown>;
    assert.deepEqual(daemon["log-opts"], { "max-size": "10m", "max-file": "3" });
    for (const c of await inspect(...["web", "api", "celery", "beat"].map((r) => `${project}-${r}`))) {
      const hc = c.HostConfig;
      const what = `${c.Name}: ${JSON.stringify(hc)}`;
      assert.equal(c.Config.User, `${uid}:${gid}`, `non-root user, ${what}`);
      assert.notEqual(uid, "0");
      assert.equal(hc.ReadonlyRootfs, true, what);
      assert.ok(hc.Tmpfs && "/tmp" in hc.Tmpfs, what);
      assert.deepEqual(hc.SecurityOpt, ["no-new-privileges"], what);
      assert.deepEqual(hc.CapDrop, ["ALL"], what);
      assert.equal(hc.Memory, 512 * 1024 * 1024, what);
      assert.equal(hc.NanoCpus, 1e9, what);
      assert.equal(hc.PidsLimit, 256, what);
      assert.equal(hc.RestartPolicy.Name, "unless-stopped", what);
      assert.equal(hc.LogConfig.Type, "json-file", what);
      assert.equal(hc.NetworkMode, `${project}-net`, what);
      assert.ok(c.Config.Healthcheck && c.Config.Healthcheck.Test.length > 0, `${c.Name} has a health check`);
      // web and api listen on unix sockets Caddy reaches: no container publishes a port at all.
      assert.deepEqual(Object.keys(hc.PortBindings ?? {}), [], `${c.Name} publishes nothing`);
    }
    const health = await sh(host, `sudo docker inspect -f '{{.State.Health.Status}}' ${project}-web ${project}-api`);
    assert.deepEqual(health.trim().split("\n"), ["healthy", "healthy"]);
  });

  it("docker inspect of the proxy container: Caddy as the caddy user, hardened, the only container publishing (80, 443, 443/udp)", async () => {
    const ids = (await sh(host, "echo $(id -u caddy):$(id -g caddy)")).trim();
    const [proxy] = await inspect("ayna-proxy");
    const hc = proxy!.HostConfig;
    const what = JSON.stringify(hc);
    assert.equal(proxy!.Config.User, ids, what);
    assert.notEqual(ids.split(":")[0], "0");
    assert.equal(hc.ReadonlyRootfs, true, what);
    assert.ok(hc.Tmpfs && "/tmp" in hc.Tmpfs, what);
    assert.deepEqual(hc.SecurityOpt, ["no-new-privileges"], what);
    assert.deepEqual(hc.CapDrop, ["ALL"], what);
    assert.equal(hc.Memory, 256 * 1024 * 1024, what);
    assert.equal(hc.RestartPolicy.Name, "unless-stopped", what);
    assert.equal(hc.LogConfig.Type, "json-file", what);
    assert.deepEqual(Object.keys(hc.PortBindings ?? {}).sort(), ["443/tcp", "443/udp", "80/tcp"], what);
    assert.ok(proxy!.Config.Healthcheck && proxy!.Config.Healthcheck.Test.length > 0, "the proxy has a health check");
    const publishing = (await sh(host, "sudo docker ps --filter publish=1-65535 --format '{{.Names}}'")).trim();
    assert.equal(publishing, "ayna-proxy", "no other container publishes a port");
    assert.equal((await sh(host, "systemctl is-active caddy || true")).trim(), "inactive", "no Debian caddy service");
  });

  it("beyond 127.0.0.1 only the proxy container's ports (80, 443) and sshd listen; web and api answer on their sockets, which only the service user and Caddy may reach", async () => {
    const dir = `/opt/ayna/${project}/sockets`;
    assert.equal((await sh(host, `sudo stat -c '%a %U %G' ${dir}`)).trim(), `750 ${project} caddy`);
    for (const role of ["web", "api"]) {
      const answer = await sh(host, `sudo -u caddy curl -sS --unix-socket ${dir}/${role}.sock http://localhost/health`);
      assert.match(answer, /"release": ?"v1"/);
    }
    const denied = await sshExec(host, `curl -sS --unix-socket ${dir}/web.sock http://localhost/health`);
    assert.notEqual(denied.code, 0, "another user cannot reach the socket");
    const { listeners, all } = await publicListeners(host);
    // Docker's userland proxy holds the published ports for the proxy container.
    assert.deepEqual(listeners, ["22 sshd", "443 docker-proxy", "80 docker-proxy"], all);
  });

  it("make targets act on the containers: status, validate, logs, stop/start, restart, migrate and shell", async () => {
    const roles = ["web", "api", "celery", "beat"];
    const status = await makeOk(stack, "status");
    assert.match(status.stdout, /release\s+v1\s+sha /);
    for (const r of roles)
      assert.match(status.stdout, new RegExp(`${project}-${r}\\s+running \\(healthy\\)\\s+release v1`), status.stdout);
    assert.match(
      status.stdout,
      /health\s+web\s+unix:\/opt\/ayna\/dock\/sockets\/web\.sock:\/health\s+200\s+release v1/,
    );

    const valid = await makeOk(stack, "validate");
    assert.doesNotMatch(valid.stdout, /✗/, valid.stdout);
    assert.match(valid.stdout, /✓ dock-web read-only, no capabilities, no new privileges/);
    assert.match(valid.stdout, /✓ no container but ayna-proxy publishes a port: publishing: ayna-proxy/);
    assert.match(valid.stdout, /✓ env file and units are the ones the last release installed: as installed/);

    const logs = await makeOk(stack, "logs", ["FOLLOW=0", "LINES=5"]);
    for (const r of ["web", "api"])
      assert.match(logs.stdout, new RegExp(`^${project}-${r}  \\d{4}-`, "m"), logs.stdout);

    const stop = await makeOk(stack, "stop");
    for (const r of roles) assert.match(stop.stdout, new RegExp(`${project}-${r}\\s+exited`), stop.stdout);
    const stopped = await runMake(stack, "validate");
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stdout, /✗ dock-web running and healthy: exited/);
    const start = await makeOk(stack, "start");
    for (const r of roles) assert.match(start.stdout, new RegExp(`${project}-${r}\\s+running`), start.stdout);
    const ids = await sh(host, `sudo docker inspect -f '{{.State.StartedAt}}' ${project}-web`);
    await makeOk(stack, "restart");
    assert.notEqual(
      await sh(host, `sudo docker inspect -f '{{.State.StartedAt}}' ${project}-web`),
      ids,
      "web restarted",
    );
    // Healthy again through Caddy within its health check's start period.
    let code = "";
    for (let i = 0; i < 60 && code !== "200"; i++) {
      code = (await through("/health")).code;
      if (code !== "200") await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(code, "200");

    const migrate = await makeOk(stack, "migrate");
    assert.match(migrate.out, /in the dock-web container/);
    assert.match(migrate.out, /No migrations to apply/);
    const shell = await makeOk(stack, "shell", [], {
      input: "import os\nprint('shell-says', os.getuid(), os.environ['DJANGO_SETTINGS_MODULE'])\n",
    });
    const uid = (await sh(host, `id -u ${project}`)).trim();
    assert.match(shell.stdout, new RegExp(`shell-says ${uid} \\S+`), shell.out);
  });

  it("a release to a new SHA under 8 clients per URL through Caddy: blue-green, nothing lost; the old image is :rollback", async () => {
    const v1Image = (await inspect(`${project}-web`))[0]!.Image;
    touchCode(app, "dock-v2");
    const load = await startLoad(host, { urls });
    const r = await timedUp("code-only release");
    const res = await load.stop();
    process.stderr.write(`      load through Caddy during the docker release: ${describeLoad(res)}\n`);
    assert.equal(r.code, 0, r.out.slice(-6000));
    assertNoLoss(res);
    assert.equal(await served("/health"), "v2");
    assert.equal(await served("/api/health"), "v2");
    assert.ok((res.releases["v2"] ?? 0) > 0, JSON.stringify(res.releases));
    const rollbackId = (await sh(host, `sudo docker image inspect -f '{{.Id}}' ${project}:rollback`)).trim();
    assert.equal(rollbackId, v1Image, ":rollback is v1's image");
    assert.notEqual((await inspect(`${project}-web`))[0]!.Image, v1Image);
  });

  it("a release whose web fails its health check is never switched to: up fails with the check and the log, v2 keeps serving", async () => {
    const before = (await inspect(`${project}-web`, `${project}-api`)).map((c) => c.Id);
    touchCode(app, "dock-v3");
    fs.writeFileSync(path.join(app, "FAIL_HEALTH"), "");
    const load = await startLoad(host, { urls });
    const r = await timedUp("failing release");
    const res = await load.stop();
    fs.rmSync(path.join(app, "FAIL_HEALTH"));
    process.stderr.write(`      load through the failing docker release: ${describeLoad(res)}\n`);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /health check failed: (web|api) of release v3 did not answer 200/);
    assert.match(r.out, /last log lines of the new container/);
    assert.match(r.out, /release v3 failed its health check before the switch; v2 is still serving/);
    assertNoLoss(res);
    assert.deepEqual(Object.keys(res.releases), ["v2"]);
    assert.deepEqual(
      (await inspect(`${project}-web`, `${project}-api`)).map((c) => c.Id),
      before,
      "the serving containers are the same ones",
    );
    assert.equal((await sh(host, `sudo docker ps -a --format '{{.Names}}' | grep -c -- -next || true`)).trim(), "0");
  });

  it("npm run rollback: back to v1's image under 8 clients per URL, nothing lost", async () => {
    const v1Image = (await sh(host, `sudo docker image inspect -f '{{.Id}}' ${project}:rollback`)).trim();
    const load = await startLoad(host, { urls });
    const r = await runRollback(stack, ["--to", "v1"]);
    const res = await load.stop();
    times["rollback"] = r.ms / 1000;
    process.stderr.write(`      load through the docker rollback: ${describeLoad(res)}\n`);
    assert.equal(r.code, 0, r.out.slice(-6000));
    assertNoLoss(res);
    assert.equal(await served("/health"), "v1");
    assert.equal(await served("/api/health"), "v1");
    assert.equal((await inspect(`${project}-web`))[0]!.Image, v1Image, "v1's own image, not rebuilt");
  });

  it("an app's own Dockerfile that does not build: up fails naming it and the fix, the serving release untouched", async () => {
    await stack.ok(["config", "rm", "--path", "release.pin"]);
    const before = (await inspect(`${project}-web`, `${project}-api`)).map((c) => c.Id);
    touchCode(app, "dock-v4");
    fs.writeFileSync(path.join(app, "Dockerfile"), `FROM ${baseImage}\nRUN echo the app build fails here && exit 3\n`);
    const r = await timedUp("broken app Dockerfile");
    assert.notEqual(r.code, 0);
    assert.match(
      r.out,
      /the app's Dockerfile did not build for v\d+ \(see above\); fix it, or set docker\.dockerfile: none/,
    );
    assert.equal(await served("/health"), "v1");
    assert.deepEqual(
      (await inspect(`${project}-web`, `${project}-api`)).map((c) => c.Id),
      before,
    );
  });

  it("an app's own Dockerfile (found in the app): the release image is built FROM what it makes, and serves", async () => {
    fs.writeFileSync(
      path.join(app, "Dockerfile"),
      `FROM ${baseImage}\nRUN echo made-by-the-app-dockerfile > /etc/app-marker\nUSER nobody\nCMD ["false"]\n`,
    );
    const r = await timedUp("release with the app's Dockerfile");
    assert.equal(r.code, 0, r.out.slice(-6000));
    const rel = await served("/health");
    assert.match(rel, /^v\d+$/);
    assert.notEqual(rel, "v1");
    for (const role of ["web", "api", "celery"]) {
      const marker = await sh(host, `sudo docker exec ${project}-${role} cat /etc/app-marker`);
      assert.equal(marker.trim(), "made-by-the-app-dockerfile", role);
    }
    const sha = JSON.parse((await stack.ok(["stack", "output", "hosts", "--json"])).stdout) as { sha: string }[];
    assert.match(
      await sh(host, `sudo docker image ls ${project} --format '{{.Tag}}'`),
      new RegExp(`^sha-${sha[0]!.sha}$`, "m"),
    );
  });

  it("a second up makes 0 changes", async () => {
    const again = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
    process.stderr.write(
      `      docker mode wall times (s): ${Object.entries(times)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(", ")}\n`,
    );
  });
});
