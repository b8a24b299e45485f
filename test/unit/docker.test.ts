// Docker mode's pure parts (issue 13): config rules, the engine's daemon.json,
// the release image's Dockerfile, the containers' options, commands and
// health checks, the env-file launcher run for real by python3, and the
// release tool rendered with Docker mode's steps.
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  containerCommand,
  containerOptions,
  envLauncherSource,
  healthCommand,
  renderDaemonConfig,
  renderDockerfile,
  ensureBaseImageCommand,
} from "../../builders/docker";
import { renderEnvFile } from "../../builders/envFile";
import { renderReleaseTool } from "../../builders/releaseTool";
import { renderSite } from "../../builders/caddy";
import { ConfigError } from "../../stacks";
import { planHosts, releaseToolSpec, siteSpec, unitSpec } from "../../stacks/plan";
import { appDockerfile } from "../../stacks/app";
import { stackConfig } from "../support/config";
import { assertGolden } from "../support/golden";

const docker = {
  runtime: "docker",
  docker: { baseImage: "ayna/debian-python:trixie" },
  proxy: { enabled: true, domains: ["demo.example.com"], tls: "internal" },
};

function configError(extra: Record<string, unknown>): string {
  try {
    stackConfig(extra);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return assert.fail("no ConfigError");
}

describe("Docker mode: config", () => {
  it("runtime defaults to venv; docker is chosen per stack", () => {
    assert.equal(stackConfig().runtime, "venv");
    assert.equal(stackConfig(docker).runtime, "docker");
  });

  it("needs Caddy in front (the standard: only the reverse proxy publishes ports), naming the keys to set", () => {
    assert.match(
      configError({ ...docker, proxy: undefined }),
      /ayna-deploy:proxy\.enabled: runtime: docker serves only through Caddy .*; set proxy\.enabled: true and proxy\.domains/,
    );
  });

  it("needs a base image, and says what it must hold", () => {
    assert.match(
      configError({ ...docker, docker: {} }),
      /ayna-deploy:docker\.baseImage: needed with runtime: docker; name a Debian image with Python 3\.13/,
    );
  });

  it("refuses docker keys in venv mode, a missing base image file, and a local database it cannot reach yet", () => {
    assert.match(
      configError({ docker: { baseImage: "x:y" } }),
      /ayna-deploy:docker\.baseImage: only used with runtime: docker; remove it, or set runtime: docker/,
    );
    assert.match(
      configError({ ...docker, docker: { baseImage: "x:y", baseImageFile: "/nonexistent/base.tar.gz" } }),
      /ayna-deploy:docker\.baseImageFile: \/nonexistent\/base\.tar\.gz does not exist on this machine/,
    );
    assert.match(
      configError({ ...docker, database: { local: true }, secretEnv: {} }),
      /ayna-deploy:database\.local: not available with runtime: docker yet/,
    );
  });

  it("gives the project its own Redis container: REDIS_URL by the container's name, database 0; redis.db refused", () => {
    assert.equal(stackConfig(docker).env["REDIS_URL"], "redis://demoapp-redis:6379/0");
    assert.match(configError({ ...docker, redis: { db: 3 } }), /redis\.db: with runtime: docker .*; remove it/);
  });

  it("plans docker.io on the host (Caddy is a container: no caddy package), no units, no host Redis, and Docker steps in the release tool", () => {
    const [plan] = planHosts(stackConfig(docker));
    assert.deepEqual(plan!.packages, ["docker.io", "docker-cli"]);
    assert.equal(
      plan!.site?.containerBase,
      "ayna/debian-python:trixie",
      "the proxy container is built FROM the base image",
    );
    assert.deepEqual(plan!.units, []);
    const tool = plan!.releaseTool.docker!;
    assert.equal(tool.baseImage, "ayna/debian-python:trixie");
    assert.deepEqual(Object.keys(tool.commands), ["web", "api", "celery", "beat"]);
    assert.ok(tool.redisDockerfile?.includes("redis-server"));
  });

  it("Caddy proxies each role to its socket symlink, which the release tool moves at each switch (no reload)", () => {
    assertGolden("docker-site.caddy", renderSite(siteSpec(stackConfig(docker))!));
  });

  it("Caddy's container reads the static files under /opt/ayna (mounted as on the host); what is not there goes to web's socket", () => {
    const site = renderSite(siteSpec(stackConfig(docker), true)!);
    assert.ok(
      site.includes("\thandle_path /static/* {\n\t\troot * /opt/ayna/demoapp/releases/current/staticfiles\n"),
      site,
    );
    assert.ok(
      site.includes("\t\t\trewrite * /static{path}\n\t\t\treverse_proxy unix//opt/ayna/demoapp/sockets/web.sock {\n"),
      site,
    );
    assert.match(
      fs.readFileSync(path.join(__dirname, "..", "..", "builders", "ayna-proxy.sh"), "utf8"),
      /--mount "type=bind,src=\/opt\/ayna,dst=\/opt\/ayna,readonly"/,
    );
  });
});

describe("Docker mode: the engine and the image", () => {
  it("daemon.json: json-file logs rotated by config, live-restore", () => {
    assert.equal(
      renderDaemonConfig({ logMaxSize: "20m", logMaxFiles: 5 }),
      `{
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "20m",
    "max-file": "5"
  },
  "live-restore": true
}
`,
    );
  });

  it("the base image is kept when present, imported from stdin when a file is given, else a clear error", () => {
    assert.equal(
      ensureBaseImageCommand("ayna/base:t", true),
      "sudo -n sh -c 'if docker image inspect --format '\\''{{.Id}}'\\'' ayna/base:t >/dev/null 2>&1; then cat >/dev/null; echo '\\''ayna/base:t present'\\''; else docker import - ayna/base:t >/dev/null && echo '\\''imported ayna/base:t'\\''; fi'",
    );
    assert.match(
      ensureBaseImageCommand("ayna/base:t", false),
      /docker\.baseImage: %s is not on %s; load it there \(docker load or docker import\), or set docker\.baseImageFile/,
    );
  });

  it("the release image: the host's venv at its own path, the app in /app, a non-root user, the launcher as entrypoint", () => {
    assertGolden(
      "docker-release.Dockerfile",
      renderDockerfile({ project: "demoapp", stage: "staging", baseImage: "b:1" }),
    );
  });
});

describe("Docker mode: containers", () => {
  it("every container gets the standard's hardening and the configured limits", () => {
    assert.deepEqual(containerOptions({ memory: "256m", cpus: "0.5", pidsLimit: 128 }), [
      "--restart",
      "unless-stopped",
      "--read-only",
      "--tmpfs",
      "/tmp:rw,nosuid,nodev,size=64m",
      "--security-opt",
      "no-new-privileges",
      "--cap-drop",
      "ALL",
      "--memory",
      "256m",
      "--cpus",
      "0.5",
      "--pids-limit",
      "128",
      "--log-driver",
      "json-file",
    ]);
  });

  it("a role's container runs its unit's server command from /app; web and api on a socket of their own, no port", () => {
    const c = stackConfig(docker);
    assert.deepEqual(containerCommand(unitSpec(c, "web")), [
      "/opt/venv/bin/gunicorn",
      "--bind",
      "unix:/run/ayna/sockets/@SOCKET@.sock",
      "--workers",
      "4",
      "--preload",
      "--timeout",
      "120",
      "--chdir",
      "/app",
      "config.wsgi:application",
    ]);
    assert.deepEqual(
      containerCommand(unitSpec(stackConfig({ ...docker, services: { api: { server: "uvicorn" } } }), "api")),
      [
        "/opt/venv/bin/uvicorn",
        "--uds",
        "/run/ayna/sockets/@SOCKET@.sock",
        "--workers",
        "2",
        "--app-dir",
        "/app",
        "api.main:app",
      ],
    );
    assert.deepEqual(containerCommand(unitSpec(c, "celery")), [
      "/opt/venv/bin/celery",
      "--workdir",
      "/app",
      "-A",
      "config",
      "worker",
      "-l",
      "INFO",
      "--concurrency=4",
    ]);
  });

  it("health checks: web and api answer 200 on their path through their socket; a worker's main process is alive", () => {
    assert.equal(
      healthCommand("api", "/healthz"),
      `/opt/venv/bin/python -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect("/run/ayna/sockets/@SOCKET@.sock"); s.sendall(b"GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n"); sys.exit(0 if s.recv(64).split(b" ")[1:2] == [b"200"] else 1)'`,
    );
    assert.equal(healthCommand("celery", "/health"), `/opt/venv/bin/python -c 'import os; os.kill(1, 0)'`);
  });

  it("the web health check works for real: exit 0 on a 200 from a unix socket, 1 on a 500", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-hc-"));
    try {
      const sock = path.join(dir, "s.sock");
      const server = [
        "import socket, sys",
        "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)",
        "for code in (b'200', b'500'):",
        "    c, _ = s.accept(); c.recv(1024); c.sendall(b'HTTP/1.0 ' + code + b' X\\r\\n\\r\\n'); c.close()",
      ].join("\n");
      const srv = spawn("python3", ["-c", server, sock], { stdio: "ignore" });
      const probe = healthCommand("web", "/health")
        .replace("/run/ayna/sockets/@SOCKET@.sock", sock)
        .replace("/opt/venv/bin/python", "python3");
      const wait = spawnSync("sh", ["-c", `for i in $(seq 50); do [ -S ${sock} ] && exit 0; sleep 0.1; done; exit 1`]);
      assert.equal(wait.status, 0, "the test server listens");
      assert.equal(spawnSync("sh", ["-c", probe]).status, 0, "200 passes");
      assert.equal(spawnSync("sh", ["-c", probe]).status, 1, "500 fails");
      srv.kill();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the launcher gives the command exactly the env file's values (quotes, backslashes, $, newlines), and a candidate the .next file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-launcher-"));
    try {
      const values = { PLAIN: "x", TRICKY: 'a "q" \\ $HOME `cmd` \'s', MULTI: 'line1\nline2="x"\nNOT_A_KEY="y"' };
      fs.writeFileSync(path.join(dir, "launcher.py"), envLauncherSource);
      fs.writeFileSync(path.join(dir, ".env"), renderEnvFile(values, "header"));
      fs.writeFileSync(path.join(dir, ".env.next"), renderEnvFile({ PLAIN: "next" }));
      const show = [
        "-c",
        "import json, os; print(json.dumps({k: os.environ.get(k) for k in ['PLAIN', 'TRICKY', 'MULTI', 'NOT_A_KEY']}))",
      ];
      const run = (env: NodeJS.ProcessEnv) =>
        spawnSync("python3", [path.join(dir, "launcher.py"), path.join(dir, ".env"), "python3", ...show], {
          encoding: "utf8",
          env: { PATH: process.env["PATH"], ...env },
        });
      const plain = run({});
      assert.equal(plain.status, 0, plain.stderr);
      assert.deepEqual(JSON.parse(plain.stdout), { ...values, NOT_A_KEY: null });
      const candidate = run({ AYNA_ENV_CANDIDATE: "1" });
      assert.equal((JSON.parse(candidate.stdout) as { PLAIN: string }).PLAIN, "next");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the release tool in Docker mode: venv mode's steps with Docker's after them, before main runs; valid bash", () => {
    const tool = renderReleaseTool(releaseToolSpec(stackConfig(docker)));
    assert.match(tool, /^RUNTIME=docker$/m);
    assert.match(
      tool,
      /^CONTAINER_web=\(\/opt\/venv\/bin\/gunicorn --bind unix:\/run\/ayna\/sockets\/@SOCKET@\.sock /m,
    );
    const dockerSteps = tool.indexOf("\nswitch_container() {");
    assert.ok(dockerSteps > tool.indexOf("\napply_release() {"), "Docker's steps come after venv mode's");
    assert.ok(tool.lastIndexOf("\napply_release() {") > dockerSteps - 2000, "and redefine apply_release");
    assert.ok(tool.trimEnd().endsWith('then main "$@"; fi'));
    const check = spawnSync("bash", ["-n"], { input: tool, encoding: "utf8" });
    assert.equal(check.status, 0, check.stderr);
    assert.doesNotMatch(renderReleaseTool(releaseToolSpec(stackConfig())), /RUNTIME=docker|switch_container/);
  });
});

describe("Docker mode: the app's own Dockerfile", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-dockerfile-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const found = (dockerfile?: string, runtime: "docker" | "venv" = "docker") => {
    const problems: string[] = [];
    const at = appDockerfile("ayna-deploy", dir, { ...stackConfig(), runtime, docker: { dockerfile } }, problems);
    return { at, problems };
  };

  it("is found as Dockerfile in the app; none ignores it; without one the image is built FROM docker.baseImage", () => {
    assert.deepEqual(found(), { at: undefined, problems: [] });
    fs.writeFileSync(path.join(dir, "Dockerfile"), "FROM x\n");
    assert.deepEqual(found(), { at: "Dockerfile", problems: [] });
    assert.deepEqual(found("none"), { at: undefined, problems: [] });
    assert.deepEqual(found(undefined, "venv"), { at: undefined, problems: [] }, "venv mode never builds one");
  });

  it("docker.dockerfile names another file in the app; a missing one or one outside the app is refused with the fix", () => {
    fs.mkdirSync(path.join(dir, "deploy"));
    fs.writeFileSync(path.join(dir, "deploy", "Dockerfile.prod"), "FROM x\n");
    assert.deepEqual(found("deploy/Dockerfile.prod"), { at: "deploy/Dockerfile.prod", problems: [] });
    for (const bad of ["deploy/Dockerfile.missing", "../Dockerfile"]) {
      const { at, problems } = found(bad);
      assert.equal(at, undefined);
      assert.equal(problems.length, 1);
      assert.match(
        problems[0]!,
        /^ayna-deploy:docker\.dockerfile: \S+ is not a file inside \S+; give the Dockerfile's path inside app\.path, or none to build FROM docker\.baseImage$/,
      );
    }
    assert.match(
      configError({ docker: { dockerfile: "Dockerfile" } }),
      /docker\.dockerfile: only used with runtime: docker/,
    );
    assert.match(
      configError({ ...docker, docker: { ...docker.docker, dockerfile: "/etc/passwd" } }),
      /docker\.dockerfile/,
    );
  });

  it("the release tool builds it first and its image is FROM what it made; without it, FROM the base image", () => {
    const withIt = renderReleaseTool(releaseToolSpec(stackConfig(docker), { dockerfile: "deploy/Dockerfile.prod" }));
    assert.match(withIt, /^APP_DOCKERFILE=deploy\/Dockerfile\.prod$/m);
    assert.match(withIt, /^BASE_IMAGE=ayna\/debian-python:trixie$/m);
    assert.match(renderReleaseTool(releaseToolSpec(stackConfig(docker))), /^APP_DOCKERFILE=''$/m);
    const dockerfile = renderDockerfile({ project: "demoapp", stage: "staging", baseImage: "b:1" });
    assert.deepEqual(dockerfile.split("\n").slice(1, 3), ["FROM @FROM_IMAGE@", "USER 0:0"]);
  });
});
