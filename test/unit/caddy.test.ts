// Caddy in front (issue 13, venv mode): the site file rendered from config,
// the checks made through Caddy, and ayna-proxy's apply / remove / verify run
// for real by bash against a scratch /etc/caddy, with caddy, systemctl and
// curl stubbed (the e2e test runs the real ones).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { applySiteCommand, renderSite, siteChecks, SiteSpec } from "../../builders/caddy";
import { createHash } from "node:crypto";
import { planHosts, siteSpec } from "../../stacks/plan";
import { stackConfig } from "../support/config";

const sample: SiteSpec = {
  project: "demoapp",
  stage: "staging",
  domains: ["demo.example.com", "www.demo.example.com"],
  tls: "internal",
  webPort: 8150,
  api: { port: 8151, path: "/api" },
  healthPaths: { web: "/health", api: "/health" },
};

describe("Caddy: the project's site", () => {
  it("routes the api under its path (stripped) and web at the root, each on its 127.0.0.1 port, retrying a refused upstream", () => {
    assert.equal(
      renderSite(sample),
      `# ayna-deploy: demoapp (staging), written from its stack config; change it there.
demo.example.com, www.demo.example.com {
	tls internal
	encode zstd gzip

	@api path /api /api/*
	handle @api {
		uri strip_prefix /api
		reverse_proxy 127.0.0.1:8151 {
			lb_try_duration 5s
		}
	}

	handle {
		reverse_proxy 127.0.0.1:8150 {
			lb_try_duration 5s
		}
	}
}
`,
    );
  });

  it("an api-only project at the root with public certificates and an account e-mail", () => {
    assert.equal(
      renderSite({
        project: "items",
        stage: "production",
        domains: ["items.example.com"],
        tls: "auto",
        email: "ops@example.com",
        api: { port: 8171, path: "/" },
        healthPaths: { api: "/healthz" },
      }),
      `# ayna-deploy: items (production), written from its stack config; change it there.
items.example.com {
	tls ops@example.com
	encode zstd gzip

	handle {
		reverse_proxy 127.0.0.1:8171 {
			lb_try_duration 5s
		}
	}
}
`,
    );
  });

  it("with staticFiles, Caddy answers that path from the release's files (precompressed, hashed names cached for good) and sends what is not there to web, path unchanged", () => {
    const site = renderSite({
      ...sample,
      api: undefined,
      healthPaths: { web: "/health" },
      staticFiles: { path: "/static/", root: "/opt/ayna/demoapp/releases/current/staticfiles" },
    });
    assert.equal(
      site,
      `# ayna-deploy: demoapp (staging), written from its stack config; change it there.
demo.example.com, www.demo.example.com {
	tls internal
	encode zstd gzip

	handle_path /static/* {
		root * /opt/ayna/demoapp/releases/current/staticfiles
		@file file
		handle @file {
			@hashed path_regexp \\.[0-9a-f]{12}\\.[A-Za-z0-9]+$
			header @hashed Cache-Control "public, max-age=315360000, immutable"
			file_server {
				precompressed br gzip
			}
		}
		handle {
			rewrite * /static{path}
			reverse_proxy 127.0.0.1:8150 {
				lb_try_duration 5s
			}
		}
	}

	handle {
		reverse_proxy 127.0.0.1:8150 {
			lb_try_duration 5s
		}
	}
}
`,
    );
    // Django's ManifestStaticFilesStorage names: 12 hex digits before the extension.
    const hashed = new RegExp(/@hashed path_regexp (\S+)/.exec(site)![1]!);
    assert.ok(hashed.test("/css/site.4f2a9c0b1d3e.css"));
    assert.ok(!hashed.test("/css/site.css"));
    assert.ok(!hashed.test("/css/site.4f2a9c0b1d3e.css.map.x/y"));
  });

  it("checks each domain's web and api health through Caddy after a reload", () => {
    assert.deepEqual(siteChecks(sample), [
      "demo.example.com|/health|internal",
      "demo.example.com|/api/health|internal",
      "www.demo.example.com|/health|internal",
      "www.demo.example.com|/api/health|internal",
    ]);
  });

  it("the apply command runs ayna-proxy through sudo with the checks as arguments, the site itself on stdin", () => {
    const cmd = applySiteCommand(sample);
    assert.match(cmd, /^sudo -n bash -c '#!\/bin\/bash\n/);
    assert.ok(
      cmd.endsWith(
        "' ayna-proxy apply demoapp 'demo.example.com|/health|internal' 'demo.example.com|/api/health|internal' 'www.demo.example.com|/health|internal' 'www.demo.example.com|/api/health|internal'",
      ),
      cmd.slice(-300),
    );
    assert.ok(!cmd.includes("demo.example.com, www.demo.example.com {"), "the site is not in the command");
    assert.doesNotMatch(cmd, /reverse_proxy 127\.0\.0\.1:815/);
  });

  it("in Docker mode the same tool runs with --container and the base image the proxy image is built FROM", () => {
    const cmd = applySiteCommand({ ...sample, containerBase: "ayna/debian-python:trixie" });
    assert.ok(
      cmd.endsWith(
        "' ayna-proxy --container ayna/debian-python:trixie apply demoapp 'demo.example.com|/health|internal'".replace(
          /'$/,
          "",
        ) +
          "' 'demo.example.com|/api/health|internal' 'www.demo.example.com|/health|internal' 'www.demo.example.com|/api/health|internal'",
      ),
      cmd.slice(-300),
    );
  });
});

describe("Caddy: config", () => {
  it("derives the site from the registry's ports and the health paths, and asks for Debian's caddy", () => {
    const c = stackConfig({ proxy: { enabled: true, domains: ["demo.test"], tls: "internal" } });
    assert.deepEqual(siteSpec(c), {
      project: c.project,
      stage: c.stage,
      domains: ["demo.test"],
      tls: "internal",
      webPort: c.services.web.port,
      api: { port: c.services.api.port, path: "/api" },
      healthPaths: { web: "/health", api: "/health" },
    });
    assert.ok(planHosts(c)[0]!.packages.includes("caddy"));
    assert.ok(!planHosts(stackConfig())[0]!.packages.includes("caddy"), "no caddy with the proxy off");
  });

  it("proxy.staticPath auto: Caddy serves /static/ from the serving release when the release builds static files; none, or no build, leaves it to the app; a path of one's own is used as given", () => {
    const root = "/opt/ayna/demoapp/releases/current/staticfiles";
    const on = stackConfig({ proxy: { enabled: true, domains: ["demo.test"] } });
    assert.deepEqual(siteSpec(on, true)?.staticFiles, { path: "/static/", root });
    assert.equal(siteSpec(on, false)?.staticFiles, undefined);
    const off = stackConfig({ proxy: { enabled: true, domains: ["demo.test"], staticPath: "none" } });
    assert.equal(siteSpec(off, true)?.staticFiles, undefined);
    const own = stackConfig({ proxy: { enabled: true, domains: ["demo.test"], staticPath: "/assets/v2/" } });
    assert.deepEqual(siteSpec(own, false)?.staticFiles, { path: "/assets/v2/", root });
  });

  for (const [name, proxy, services, error] of [
    [
      "a staticPath without a trailing slash",
      { enabled: true, domains: ["a.test"], staticPath: "/static" },
      undefined,
      "proxy.staticPath",
    ],
    [
      "a staticPath under the api's path",
      { enabled: true, domains: ["a.test"], staticPath: "/api/static/" },
      undefined,
      "ayna-deploy:proxy.staticPath: /api/static/ lies under the api's /api; use a path of web's such as /static/",
    ],
    [
      "a staticPath while web is off",
      { enabled: true, domains: ["a.test"], apiPath: "/", staticPath: "/static/" },
      { web: { enabled: false } },
      "ayna-deploy:proxy.staticPath: web does not run, so no static files are built for it; remove it, or turn web on",
    ],
    [
      "no domain",
      { enabled: true },
      undefined,
      "ayna-deploy:proxy.domains: needed with proxy.enabled; set proxy.domains[0] to the name the project answers to",
    ],
    [
      'apiPath "/" while web runs',
      { enabled: true, domains: ["a.test"], apiPath: "/" },
      undefined,
      'ayna-deploy:proxy.apiPath: "/" sends every request to the api and leaves web unreachable; use a prefix such as /api',
    ],
    [
      "an e-mail with tls internal",
      { enabled: true, domains: ["a.test"], tls: "internal", email: "ops@example.com" },
      undefined,
      "ayna-deploy:proxy.email: only used with proxy.tls: auto; remove it",
    ],
    [
      "no web and no api",
      { enabled: true, domains: ["a.test"] },
      { web: { enabled: false }, api: { enabled: false } },
      "ayna-deploy:proxy.enabled: neither web nor api runs, so Caddy has nothing to serve; turn one on, or the proxy off",
    ],
    ["a domain with a space", { enabled: true, domains: ["a b.test"] }, undefined, "ayna-deploy:proxy.domains[0]"],
    [
      "a trailing slash on apiPath",
      { enabled: true, domains: ["a.test"], apiPath: "/api/" },
      undefined,
      "proxy.apiPath",
    ],
  ] as const) {
    it(`refuses ${name}, naming the key and the fix`, () => {
      assert.throws(
        () => stackConfig({ proxy, ...(services ? { services } : {}) }),
        (e: Error) => e.message.includes(error),
      );
    });
  }
});

describe("ayna-proxy on a host (bash, caddy/systemctl/curl stubbed)", function () {
  this.timeout(30_000);
  const script = path.join(__dirname, "..", "..", "builders", "ayna-proxy.sh");
  let dir: string;
  let etc: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-proxy-"));
    etc = path.join(dir, "etc");
    fs.mkdirSync(path.join(dir, "bin"));
    fs.mkdirSync(etc);
    const stub = (name: string, body: string) =>
      fs.writeFileSync(path.join(dir, "bin", name), `#!/bin/bash\necho "${name} $*" >>"$STUB_DIR/calls"\n${body}\n`, {
        mode: 0o755,
      });
    // validate fails when the staged config holds the word BROKEN, as Caddy would on a bad site.
    stub(
      "caddy",
      `if [ "$1" = validate ]; then cfg=\${@: -1}; if grep -rq BROKEN "$(dirname "$cfg")"; then echo 'Error: adapting config using caddyfile: unrecognized directive: BROKEN' >&2; exit 1; fi; fi; exit 0`,
    );
    stub("systemctl", `[ "$1" = is-active ] && exit 0; exit 0`);
    stub("curl", `cat "$STUB_DIR/answer" 2>/dev/null || printf 200`);
    stub("journalctl", "echo 'caddy: last words'");
    stub("id", "echo 995");
    // A Docker engine in files: images, one container's state and its label, validation as Caddy's stub.
    stub(
      "docker",
      [
        'case "$1 $2" in',
        '"image inspect") [ -f "$STUB_DIR/image" ] ;;',
        '"container inspect") [ -f "$STUB_DIR/running" ] || exit 1; case "$4" in *Running*) echo true ;; *) cat "$STUB_DIR/spec" ;; esac ;;',
        '"build --network") cat >"$STUB_DIR/Dockerfile"; touch "$STUB_DIR/image" ;;',
        '"rm -f") rm -f "$STUB_DIR/running" ;;',
        '"exec ayna-proxy") ;;',
        '"logs --tail") echo "proxy: last words" ;;',
        '"run --rm") src=$(printf "%s\\n" "$@" | sed -n "s/^type=bind,src=\\([^,]*\\),dst=\\/etc\\/caddy,readonly$/\\1/p"); if grep -rq BROKEN "$src"; then echo "Error: unrecognized directive: BROKEN"; exit 1; fi ;;',
        '"run -d") printf "%s\\n" "$@" | sed -n "s/^ayna.spec=//p" >"$STUB_DIR/spec"; touch "$STUB_DIR/running" ;;',
        "esac",
      ].join("\n"),
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], input = "") =>
    spawnSync("bash", [script, ...args], {
      input,
      encoding: "utf8",
      env: {
        PATH: `${path.join(dir, "bin")}:${process.env["PATH"]}`,
        STUB_DIR: dir,
        AYNA_CADDY_DIR: etc,
        AYNA_PROXY_ANSWER_SECONDS: "1",
      },
    });
  const calls = () =>
    fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n") : [];
  const site = (s: string) => fs.readFileSync(path.join(etc, "sites", `${s}.caddy`), "utf8");

  it("apply: validates a staged copy, then puts the main Caddyfile and the site in place (0644) and reloads once", () => {
    const r = run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(site("demoapp"), "demo.test { }\n");
    assert.equal(fs.statSync(path.join(etc, "sites", "demoapp.caddy")).mode & 0o777, 0o644);
    assert.match(fs.readFileSync(path.join(etc, "Caddyfile"), "utf8"), /^import sites\/\*\.caddy$/m);
    const c = calls();
    assert.match(c[0]!, /^caddy validate --adapter caddyfile --config \S+\/etc\/Caddyfile$/);
    assert.doesNotMatch(c[0]!, new RegExp(`${etc}/Caddyfile$`), "validated a copy, not the live file");
    assert.deepEqual(c.slice(1, 3), ["systemctl is-active --quiet caddy", "systemctl reload caddy"]);
    assert.equal(
      c[3],
      "curl -sk -o /dev/null -w %{http_code} --max-time 5 --resolve demo.test:443:127.0.0.1 https://demo.test/health",
    );
    assert.match(r.stderr, /ayna-proxy: site demoapp: serving demo\.test/);
  });

  it("apply with a site Caddy refuses: Caddy's words, nothing written, no reload", () => {
    assert.equal(run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n").status, 0);
    fs.writeFileSync(path.join(dir, "calls"), "");
    const r = run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { BROKEN }\n");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Caddy refused the new configuration; nothing changed:\n.*unrecognized directive: BROKEN/);
    assert.equal(site("demoapp"), "demo.test { }\n");
    assert.ok(!calls().some((l) => l.startsWith("systemctl reload")), calls().join("\n"));
  });

  it("apply whose domain does not answer after the reload: the previous site back, reloaded again, up fails", () => {
    assert.equal(run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n").status, 0);
    fs.writeFileSync(path.join(dir, "answer"), "502");
    fs.writeFileSync(path.join(dir, "calls"), "");
    const r = run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { # new }\n");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /demo\.test did not answer \/health through Caddy within 1s \(last: HTTP 502\)/);
    assert.match(r.stderr, /the new site of demoapp was not kept; the previous one is back/);
    assert.equal(site("demoapp"), "demo.test { }\n");
    assert.equal(calls().filter((l) => l === "systemctl reload caddy").length, 2);
  });

  it("a first apply that fails leaves no site behind", () => {
    fs.writeFileSync(path.join(dir, "answer"), "000");
    const r = run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n");
    assert.equal(r.status, 1);
    assert.ok(!fs.existsSync(path.join(etc, "sites", "demoapp.caddy")));
  });

  it("with public certificates, any answer on port 80 (Caddy's redirect) shows the site is served", () => {
    fs.writeFileSync(path.join(dir, "answer"), "308");
    const r = run(["apply", "demoapp", "demo.example.com|/health|auto"], "demo.example.com { }\n");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      calls().includes(
        "curl -s -o /dev/null -w %{http_code} --max-time 5 -H Host: demo.example.com http://127.0.0.1/health",
      ),
    );
  });

  it("remove takes only this project's site away; another project's stays", () => {
    assert.equal(run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n").status, 0);
    assert.equal(run(["apply", "other", "other.test|/health|internal"], "other.test { }\n").status, 0);
    const r = run(["remove", "demoapp"]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!fs.existsSync(path.join(etc, "sites", "demoapp.caddy")));
    assert.equal(site("other"), "other.test { }\n");
  });

  const container = ["--container", "ayna/base:test"];

  it("--container: a first apply builds the proxy image FROM the base once, validates in it, starts ayna-proxy hardened and publishing 80/443; the next apply reloads it in place", () => {
    let r = run([...container, "apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(site("demoapp"), "demo.test { }\n");
    const dockerfile = fs.readFileSync(path.join(dir, "Dockerfile"), "utf8");
    assert.match(dockerfile, /^FROM ayna\/base:test$/m);
    assert.match(dockerfile, /apt-get install -y -qq --no-install-recommends caddy/);
    assert.match(dockerfile, /^USER 995:995$/m, "the host's caddy user, not root");
    let c = calls().filter((l) => l.startsWith("docker "));
    const build = c.findIndex((l) => l.startsWith("docker build --network host -q -t ayna-proxy:caddy-"));
    const validate = c.findIndex((l) => l.startsWith("docker run --rm --network none --read-only"));
    const start = c.findIndex((l) => l.startsWith("docker run -d --name ayna-proxy"));
    assert.ok(build >= 0 && build < validate && validate < start, c.join("\n"));
    assert.match(c[validate]!, / caddy validate --adapter caddyfile --config \/etc\/caddy\/Caddyfile$/);
    for (const opt of [
      "--user 995:995",
      "--restart unless-stopped --read-only",
      "--security-opt no-new-privileges --cap-drop ALL --sysctl net.ipv4.ip_unprivileged_port_start=80",
      "--memory 256m --cpus 1 --pids-limit 256 --log-driver json-file",
      "--publish 80:80 --publish 443:443 --publish 443:443/udp",
      `--mount type=bind,src=${etc},dst=/etc/caddy,readonly`,
      "--mount type=bind,src=/opt/ayna,dst=/opt/ayna,readonly",
    ]) {
      assert.ok(c[start]!.includes(opt), `${opt} in ${c[start]}`);
    }
    assert.ok(!calls().some((l) => l.startsWith("systemctl reload")), "Debian's caddy is not reloaded");

    fs.writeFileSync(path.join(dir, "calls"), "");
    r = run([...container, "apply", "demoapp", "demo.test|/health|internal"], "demo.test { # two }\n");
    assert.equal(r.status, 0, r.stderr);
    c = calls().filter((l) => l.startsWith("docker "));
    assert.ok(!c.some((l) => l.startsWith("docker build") || l.startsWith("docker run -d")), c.join("\n"));
    assert.ok(
      c.includes("docker exec ayna-proxy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile"),
      c.join("\n"),
    );
  });

  it("--container: a site Caddy refuses changes nothing and leaves the container alone; a stopped container fails verify by name", () => {
    assert.equal(run([...container, "apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n").status, 0);
    fs.writeFileSync(path.join(dir, "calls"), "");
    const r = run([...container, "apply", "demoapp", "demo.test|/health|internal"], "demo.test { BROKEN }\n");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Caddy refused the new configuration; nothing changed:\n.*unrecognized directive: BROKEN/);
    assert.equal(site("demoapp"), "demo.test { }\n");
    assert.ok(!calls().some((l) => /^docker (exec|rm|run -d)/.test(l)), calls().join("\n"));
    const sha = createHash("sha256").update("demo.test { }\n").digest("hex");
    assert.equal(run([...container, "verify", "demoapp", sha]).status, 0);
    fs.rmSync(path.join(dir, "running"));
    const v = run([...container, "verify", "demoapp", sha]);
    assert.equal(v.status, 1);
    assert.match(v.stderr, /the proxy container ayna-proxy is not running/);
  });

  // Sites as the program renders them in each mode.
  const venvSite = renderSite({ ...sample, project: "venvapp", domains: ["venv.test"] });
  const dockerSite = renderSite({
    ...sample,
    project: "dockapp",
    domains: ["dock.test"],
    upstreamSockets: { web: "/opt/ayna/dockapp/run/web.sock", api: "/opt/ayna/dockapp/run/api.sock" },
  });

  it("one kind of Caddy per host: a Docker-mode site is refused beside a venv-mode one, and the reverse, naming the other project and the fix, with nothing changed", () => {
    assert.equal(run(["apply", "venvapp", "venv.test|/health|internal"], venvSite).status, 0);
    fs.rmSync(path.join(dir, "calls"));
    let r = run([...container, "apply", "dockapp", "dock.test|/health|internal"], dockerSite);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /ports 80 and 443 of this host are Debian's caddy's, serving the venv-mode site\(s\) of: venvapp\. The proxy container for dockapp \(runtime: docker\) would take them .* Nothing changed: deploy dockapp to another host, or run one of them without proxy\.enabled/,
    );
    assert.deepEqual(calls(), [], "no build, no container, no systemctl");
    assert.ok(!fs.existsSync(path.join(etc, "sites", "dockapp.caddy")));
    assert.equal(site("venvapp"), venvSite);

    // The other way round, on a host whose proxy container serves a Docker-mode site.
    fs.rmSync(path.join(etc, "sites", "venvapp.caddy"));
    assert.equal(run([...container, "apply", "dockapp", "dock.test|/health|internal"], dockerSite).status, 0);
    fs.rmSync(path.join(dir, "calls"));
    r = run(["apply", "venvapp", "venv.test|/health|internal"], venvSite);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /ports 80 and 443 of this host are the proxy container's \(ayna-proxy\), serving the Docker-mode site\(s\) of: dockapp\. .* Nothing changed/,
    );
    assert.deepEqual(calls(), []);
    assert.ok(fs.existsSync(path.join(dir, "running")), "the proxy container still runs");
  });

  it("a project moved from Docker mode to venv mode takes ports 80 and 443 back from a proxy container no other project uses", () => {
    assert.equal(run([...container, "apply", "dockapp", "dock.test|/health|internal"], dockerSite).status, 0);
    assert.ok(fs.existsSync(path.join(dir, "running")));
    fs.writeFileSync(path.join(dir, "calls"), "");
    const venvAgain = dockerSite.replace(/reverse_proxy unix\/\S+/g, "reverse_proxy 127.0.0.1:8150");
    const r = run(["apply", "dockapp", "dock.test|/health|internal"], venvAgain);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /the proxy container ayna-proxy serves no other project: removing it/);
    const c = calls();
    const rm = c.indexOf("docker rm -f ayna-proxy");
    assert.ok(rm >= 0 && rm < c.indexOf("systemctl is-active --quiet caddy"), c.join("\n"));
    assert.equal(site("dockapp"), venvAgain);
  });

  it("--container: removing the last site removes the proxy container (nothing left to publish); removing one of two reloads it", () => {
    const other = dockerSite.replace(/dockapp/g, "second").replace("dock.test", "second.test");
    assert.equal(run([...container, "apply", "dockapp", "dock.test|/health|internal"], dockerSite).status, 0);
    assert.equal(run([...container, "apply", "second", "second.test|/health|internal"], other).status, 0);
    fs.writeFileSync(path.join(dir, "calls"), "");
    let r = run([...container, "remove", "second"]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      calls().includes("docker exec ayna-proxy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile"),
    );
    assert.ok(fs.existsSync(path.join(dir, "running")));
    fs.writeFileSync(path.join(dir, "calls"), "");
    r = run([...container, "remove", "dockapp"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /no site is left on this host, so the proxy container ayna-proxy is removed too/);
    assert.ok(calls().includes("docker rm -f ayna-proxy"), calls().join("\n"));
    assert.ok(!fs.existsSync(path.join(dir, "running")));
    assert.ok(!fs.existsSync(path.join(etc, "sites", "dockapp.caddy")));
    // Nothing is left to serve: no image looked up or built, no validation run.
    assert.deepEqual(
      calls().filter((c) => /^docker (build|image|run)/.test(c)),
      [],
      calls().join("\n"),
    );
  });

  it("verify: passes as written; names a site edited by hand", () => {
    assert.equal(run(["apply", "demoapp", "demo.test|/health|internal"], "demo.test { }\n").status, 0);
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    assert.equal(run(["verify", "demoapp", sha("demo.test { }\n")]).status, 0);
    fs.appendFileSync(path.join(etc, "sites", "demoapp.caddy"), "# edited\n");
    const r = run(["verify", "demoapp", sha("demo.test { }\n")]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /demoapp\.caddy was changed on the host/);
  });
});
