// The make targets' Docker-mode commands (scripts/lib/dockerOps.ts): exact
// words, as Kamal tests its commands, and the parser of what docker inspect prints.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import {
  containerProbeFormat,
  dockerAppCommand,
  dockerLogsScript,
  parseContainers,
  socketHealthCommand,
} from "../../scripts/lib/dockerOps";
import type { OpsStack } from "../../scripts/lib/stackConfig";

const s: Pick<OpsStack, "project" | "services" | "stage"> = {
  project: "dock",
  stage: "staging",
  services: [
    { role: "web", unit: "dock-web.service", port: 8180 },
    { role: "api", unit: "dock-api.service", port: 8181 },
    { role: "celery", unit: "dock-celery.service" },
  ],
};

describe("make targets in Docker mode: the commands", () => {
  it("migrate and shell run in the first serving container, through the image's env launcher, from /app", () => {
    assert.deepEqual(dockerAppCommand(s, ["@RELEASE@/.venv/bin/python", "manage.py", "migrate", "--noinput"], false), [
      "docker",
      "exec",
      "-i",
      "-w",
      "/app",
      "dock-web",
      "/opt/venv/bin/python",
      "/usr/local/lib/ayna-env.py",
      "/run/ayna/shared/.env.staging",
      "/app/.venv/bin/python",
      "manage.py",
      "migrate",
      "--noinput",
    ]);
    assert.deepEqual(dockerAppCommand(s, ["python"], true).slice(0, 4), ["docker", "exec", "-i", "-t"]);
    assert.throws(() => dockerAppCommand({ ...s, services: [] }, ["python"], false), /no service is enabled/);
  });

  it("logs: every container's docker logs side by side, each line led by its name; valid sh", () => {
    const script = dockerLogsScript(s, 50, true);
    assert.equal(
      script,
      `for c in dock-web dock-api dock-celery; do docker logs --timestamps --tail 50 --follow "$c" 2>&1 | sed -u "s/^/$c  /" & done; wait`,
    );
    assert.doesNotMatch(dockerLogsScript(s, 5, false), /--follow/);
    assert.equal(spawnSync("sh", ["-n"], { input: script }).status, 0);
  });

  it("health through the role's socket symlink, the way Caddy reaches it", () => {
    assert.equal(
      socketHealthCommand(s, "api", "/health"),
      "curl -sS --max-time 5 -w '\\n%{http_code}' --unix-socket /opt/ayna/dock/sockets/api.sock http://localhost/health",
    );
  });

  it("reads docker inspect's lines; a container that is gone has none", () => {
    assert.match(containerProbeFormat, /^\{\{\.Name\}\}\|\{\{\.State\.Status\}\}\|/);
    const cs = parseContainers(
      [
        "/dock-web|running|healthy|999:999|true|ALL|no-new-privileges|v3",
        "/dock-celery|exited||999:999|true|ALL|no-new-privileges|v3",
        "Error: No such object: dock-beat",
      ].join("\n"),
    );
    assert.deepEqual([...cs.keys()], ["dock-web", "dock-celery"]);
    assert.deepEqual(cs.get("dock-web"), {
      name: "dock-web",
      status: "running",
      health: "healthy",
      user: "999:999",
      readOnly: true,
      capDrop: "ALL",
      securityOpt: "no-new-privileges",
      release: "v3",
    });
    assert.equal(cs.get("dock-celery")!.health, "");
  });
});
