// Exact command lines for what runs on a host (golden files, reviewed as diffs).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { bootstrapCommand, pythonCheck } from "../../builders/bootstrap";
import { buildEnvCommand, installUvCommand } from "../../builders/python";
import { activateUnitCommand, deactivateUnitCommand } from "../../builders/systemd";
import { parseToolResult, toolCommand } from "../../components/release";
import { renderReleaseTool } from "../../builders/releaseTool";
import { assertGolden } from "../support/golden";

describe("host command builders (golden files)", () => {
  it("bootstrap: Python check first, then only missing packages, user, the standard's tree", () => {
    const cmd = bootstrapCommand({
      project: "demoapp",
      user: "demoapp",
      group: "demoapp",
      python: "3.13",
      packages: ["redis-server"],
    });
    assertGolden("bootstrap.sh", cmd + "\n");
    assert.ok(
      cmd.indexOf("command -v python3.13") < cmd.indexOf("apt-get"),
      "nothing is installed on a host with the wrong Python",
    );
  });

  it("the Python check names what the host has and the fix, and exits 3", () => {
    const r = spawnSync("sh", ["-c", pythonCheck("3.99")], { encoding: "utf8" });
    assert.equal(r.status, 3);
    assert.match(
      r.stderr,
      /^this host has no python3\.99; it has: Python 3\.\d+\.\d+ \(Debian GNU\/Linux \d+ \(\w+\)\)\n/,
    );
    assert.match(r.stderr, /Fix: set the stack config key python to a version the host has/);
  });

  it("uv and the lockfile-keyed environment", () => {
    assertGolden("install-uv.sh", installUvCommand("0.13.9") + "\n");
    assertGolden(
      "build-env.sh",
      buildEnvCommand({ project: "demoapp", hash: "0123456789abcdef01234567", python: "3.13", uvVersion: "0.13.9" }) +
        "\n",
    );
    assert.throws(
      () => buildEnvCommand({ project: "demoapp", hash: "../x", python: "3.13", uvVersion: "0.13.9" }),
      /invalid environment hash/,
    );
  });

  it("systemd activation reloads the manager only when the unit changed", () => {
    assertGolden(
      "activate-web.sh",
      activateUnitCommand("demoapp", "web") + "\n" + deactivateUnitCommand("demoapp", "web") + "\n",
    );
  });

  it("the release tool runs as a transient unit with the actor set", () => {
    assert.equal(
      toolCommand("/opt/ayna/demoapp/bin/ayna-release", ["deploy", "--sha", "abc", "--checksum", "0f", "--venv", "01"]),
      'sudo -n systemd-run --quiet --wait --pipe --collect --service-type=exec "--setenv=AYNA_ACTOR=$AYNA_ACTOR" ' +
        "/opt/ayna/demoapp/bin/ayna-release deploy --sha abc --checksum 0f --venv 01",
    );
    assert.deepEqual(parseToolResult("noise\nrelease=v3 previous=v2\n"), { release: "v3", previous: "v2" });
    assert.deepEqual(parseToolResult("release=v1 previous=\n"), { release: "v1", previous: "" });
    assert.deepEqual(parseToolResult(undefined), { release: "", previous: "" });
  });

  it("renders the host-side release tool with its settings quoted (golden)", () => {
    const tool = renderReleaseTool({
      project: "demoapp",
      stage: "production",
      user: "demoapp",
      group: "demoapp",
      services: [
        {
          role: "web",
          port: 8150,
          reload: "hup",
          candidatePort: 8155,
          candidateCommand: ["@RELEASE@/.venv/bin/gunicorn", "--bind", "127.0.0.1:8155", "config.wsgi:application"],
        },
        { role: "celery", reload: "restart" },
      ],
      keep: 5,
      healthPath: "/health",
      healthTimeoutSeconds: 60,
      healthPasses: 2,
    });
    assertGolden("ayna-release.sh", tool);
    assert.match(tool, /^SERVICES=\(web:8150:hup:8155 celery::restart:\)$/m);
    assert.match(
      tool,
      /^CANDIDATE_web=\(@RELEASE@\/\.venv\/bin\/gunicorn --bind 127\.0\.0\.1:8155 config\.wsgi:application\)$/m,
    );
  });
});
