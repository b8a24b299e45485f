// Caddy in front, venv mode (issue 13): Debian's caddy under systemd on a
// real test host, the sample app's web at / and api at /api through 443 with
// `tls internal`, Caddy the only listener beyond 127.0.0.1 besides sshd; a
// release under 8 clients per URL through Caddy loses nothing; a site Caddy
// refuses changes nothing; two projects on one host, each by its own name.
import { strict as assert } from "node:assert";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { startHost, stopHost, TestHost } from "../support/testhost";
import {
  caddyRootCa,
  curlThroughCaddy,
  headersThroughCaddy,
  publicListeners,
  servedRelease,
  sh,
  throughCaddy,
  touchCode,
} from "../support/sampleApp";
import { assertNoLoss, describeLoad, startLoad } from "../support/load";

describe("Caddy in front (venv mode): the only public listener, / to web and /api to api, releases through it lose nothing", function () {
  this.timeout(900_000);
  let host: TestHost;
  let demo: PulumiStack;
  let other: PulumiStack | undefined;
  let demoApp: string;

  const through = (domain: string, urlPath: string) => throughCaddy(host, domain, urlPath);

  async function deploy(
    project: string,
    portBase: number,
    domain: string,
  ): Promise<{ stack: PulumiStack; app: string }> {
    const stack = await PulumiStack.create(`${project}${process.pid}`);
    await stack.configureHost(project, host);
    const app = await stack.configureSampleApp(project, { portBase });
    // Django answers only the names it is told of: the proxy passes the client's Host on.
    await stack.setConfig("env.ALLOWED_HOSTS", `127.0.0.1,localhost,${domain}`, { path: true });
    await stack.setConfig("proxy.enabled", "true", { path: true });
    await stack.setConfig("proxy.domains[0]", domain, { path: true });
    await stack.setConfig("proxy.tls", "internal", { path: true });
    return { stack, app };
  }

  before(async () => {
    host = await startHost();
    // The load's clients on the host reach Caddy by name.
    await sh(host, "echo '127.0.0.1 demo.test other.test' | sudo tee -a /etc/hosts >/dev/null");
    ({ stack: demo, app: demoApp } = await deploy("demo", 8150, "demo.test"));
  });

  after(async () => {
    await other?.remove();
    await demo?.remove();
    if (host) await stopHost(host);
  });

  it("deploys from nothing with Caddy: / reaches web and /api/ the api through 443, on a certificate of Caddy's local CA", async () => {
    touchCode(demoApp, "proxy-v1");
    const r = await demo.ok(["up", "--yes", "--skip-preview"]);
    assert.match(r.stdout + r.stderr, /ayna:components:Proxy/);
    const web = await through("demo.test", "/health");
    assert.equal(web.code, "200", web.body);
    assert.equal((JSON.parse(web.body) as { service: string }).service, "web");
    const api = await through("demo.test", "/api/health");
    assert.equal(api.code, "200", api.body);
    assert.equal((JSON.parse(api.body) as { service: string; release: string }).service, "api");
    assert.equal((await through("demo.test", "/api/")).code, "200");
    // Port 80 sends clients to HTTPS.
    assert.match(
      await sh(host, "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: demo.test' http://127.0.0.1/x"),
      /^308 https:\/\/demo\.test\/x$/,
    );
    assert.equal(
      (await sh(host, "sudo stat -c '%a %U' /etc/caddy/sites/demo.caddy")).trim(),
      "644 root",
      "the site file is root's, 0644",
    );
  });

  it("Caddy answers /static/ itself from the serving release's staticfiles/ (Server: Caddy, no gunicorn; the file's bytes; gzip precompressed when asked; hashed names cached for good); a name the build did not make, or one Caddy may not reach, goes to web, path unchanged", async () => {
    const dir = "/opt/ayna/demo/releases/current/staticfiles/admin/css";
    const hashed = (await sh(host, `sudo ls ${dir} | grep -E '^base\\.[0-9a-f]{12}\\.css$'`)).trim();
    assert.match(hashed, /^base\.[0-9a-f]{12}\.css$/, "collectstatic made a hashed name");
    const headers = (urlPath: string, ...flags: string[]) =>
      headersThroughCaddy(host, "demo.test", urlPath, caddyRootCa, ...flags);
    const plain = await headers("/static/admin/css/base.css");
    assert.match(plain, /^HTTP\/\S+ 200/, plain);
    assert.match(plain, /^server: Caddy\r?$/im, plain);
    assert.doesNotMatch(plain, /gunicorn/i, `answered by the app, not by Caddy:\n${plain}`);
    assert.equal(
      await sh(host, `${curlThroughCaddy("demo.test", "/static/admin/css/base.css", caddyRootCa)} | sha256sum`),
      await sh(host, `sudo sha256sum <${dir}/base.css`),
      "the bytes of the serving release's file",
    );
    const gz = await headers(`/static/admin/css/${hashed}`, "-H 'Accept-Encoding: gzip'");
    assert.match(gz, /^content-encoding: gzip\r?$/im, gz);
    assert.match(gz, /^cache-control: public, max-age=315360000, immutable\r?$/im, gz);
    assert.doesNotMatch(plain, /^cache-control: .*immutable/im, "an unhashed name is not cached for good");
    const missing = await headers("/static/admin/css/not-built.css");
    assert.match(missing, /^HTTP\/\S+ 404/, missing);
    assert.match(missing, /^server: gunicorn\r?$/im, `the app's own answer:\n${missing}`);
    // Out of Caddy's reach (others may not enter the folder) but not of web's
    // (its group may): web serves the file, so it got the path as it came.
    await sh(host, `sudo chmod o-x ${dir}`);
    try {
      const viaWeb = await headers("/static/admin/css/base.css");
      assert.match(viaWeb, /^HTTP\/\S+ 200/, viaWeb);
      assert.match(viaWeb, /^server: gunicorn\r?$/im, viaWeb);
    } finally {
      await sh(host, `sudo chmod o+x ${dir}`);
    }
  });

  it("beyond 127.0.0.1 only Caddy (80, 443) and sshd listen; the app's ports are on loopback", async () => {
    const { listeners, all } = await publicListeners(host);
    assert.deepEqual(listeners, ["22 sshd", "443 caddy", "80 caddy"], all);
    for (const port of [8150, 8151]) {
      assert.match(all, new RegExp(`127\\.0\\.0\\.1:${port} `), `port ${port} on loopback`);
    }
  });

  it("a release under 8 clients per URL through Caddy (https, web and api): the new code answers, nothing lost", async () => {
    touchCode(demoApp, "proxy-v2");
    const load = await startLoad(host, { urls: ["https://demo.test/", "https://demo.test/api/"] });
    await demo.ok(["up", "--yes", "--skip-preview"]);
    const res = await load.stop();
    process.stderr.write(`      load through Caddy during the release: ${describeLoad(res)}\n`);
    assert.equal(await servedRelease(host), "v2");
    assert.equal((JSON.parse((await through("demo.test", "/api/health")).body) as { release: string }).release, "v2");
    assertNoLoss(res);
    assert.ok((res.releases["v2"] ?? 0) > 0, `some answers came from v2: ${JSON.stringify(res.releases)}`);
  });

  it("a second up makes 0 changes", async () => {
    const again = await demo.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
  });

  it("another project claiming demo.test is refused with Caddy's words; demo.test still reaches demo", async () => {
    ({ stack: other } = await deploy("other", 8170, "demo.test"));
    const before = await sh(host, "sudo ls /etc/caddy/sites");
    const r = await other.run(["up", "--yes", "--skip-preview"]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stdout + r.stderr, /Caddy refused the new configuration; nothing changed:[\s\S]*demo\.test/);
    assert.equal(await sh(host, "sudo ls /etc/caddy/sites"), before);
    assert.equal((JSON.parse((await through("demo.test", "/health")).body) as { release: string }).release, "v2");
  });

  it("with its own name, the second project is reached by it, and demo by its own", async () => {
    await other!.setConfig("proxy.domains[0]", "other.test", { path: true });
    await other!.setConfig("env.ALLOWED_HOSTS", "127.0.0.1,localhost,other.test", { path: true });
    await other!.ok(["up", "--yes", "--skip-preview"]);
    const o = await through("other.test", "/health");
    assert.equal(o.code, "200", o.body);
    // Each name reaches its own project's web port: other's runs on 8170.
    assert.equal(await servedRelease(host, 8170), (JSON.parse(o.body) as { release: string }).release);
    assert.equal((await through("demo.test", "/health")).code, "200");
    assert.equal(
      (await sh(host, "sudo ls /etc/caddy/sites")).trim().split("\n").sort().join(" "),
      "demo.caddy other.caddy",
    );
  });

  it("turning the proxy off for one project removes only its site; the other keeps its name", async () => {
    await other!.setConfig("proxy.enabled", "false", { path: true });
    await other!.ok(["up", "--yes", "--skip-preview"]);
    assert.equal((await sh(host, "sudo ls /etc/caddy/sites")).trim(), "demo.caddy");
    assert.equal((await through("demo.test", "/health")).code, "200");
  });
});
