// Exact command lines for what runs on a host (golden files, reviewed as diffs).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { bootstrapCommand, directories, pythonCheck } from "../../builders/bootstrap";
import { buildEnvCommand, installUvCommand, installUvOfflineCommand } from "../../builders/python";
import { deactivateUnitCommand, enableUnitCommand, unitHealthyCommand } from "../../builders/systemd";
import { parseToolResult, toolCommand } from "../../components/release";
import {
  encodeUnits,
  ReleaseToolSpec,
  renderReleaseSettings,
  renderReleaseTool,
  verifyCommand,
} from "../../builders/releaseTool";
import { commandStep, djangoMigrate } from "../../builders/appSteps";
import { assertGolden } from "../support/golden";

const envSpec = {
  project: "demoapp",
  hash: "0123456789abcdef01234567",
  python: "3.13",
  uvVersion: "0.13.9",
  archiveSha256: "ab".repeat(32),
  user: "demoapp",
  group: "demoapp",
};

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

  it("bootstrap with Caddy serving static files: the project's directory and releases/ may be entered by others (0751), never listed; Docker mode's traversable alone opens only the project's directory", () => {
    const base = { project: "demoapp", user: "demoapp", group: "demoapp", python: "3.13", packages: [] };
    const tree = (extra: object) => directories({ ...base, ...extra });
    assert.match(
      tree({ staticServed: true }),
      / && chmod 0751 \/opt\/ayna\/demoapp \/opt\/ayna\/demoapp\/releases && /,
    );
    assert.ok(
      tree({ staticServed: true }).indexOf("chmod 0751") > tree({ staticServed: true }).indexOf("-m 0750"),
      "after install -d has set 0750 (which it also does to a tree that exists)",
    );
    assert.match(tree({ traversable: true }), / && chmod 0751 \/opt\/ayna\/demoapp && /);
    assert.doesNotMatch(tree({}), /chmod/);
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
    assertGolden("build-env.sh", buildEnvCommand({ ...envSpec, hash: "0123456789abcdef01234567" }) + "\n");
    assert.throws(() => buildEnvCommand({ ...envSpec, hash: "../x" }), /invalid environment hash/);
    assert.throws(() => buildEnvCommand({ ...envSpec, archiveSha256: "$(reboot)" }), /invalid archive checksum/);
  });

  it("offline: uv from its uploaded wheel, the environment from the uploaded wheels with no index, each checked", () => {
    const sha = "c".repeat(64);
    assertGolden("install-uv-offline.sh", installUvOfflineCommand("0.13.9", sha) + "\n");
    assertGolden(
      "build-env-offline.sh",
      buildEnvCommand({ ...envSpec, hash: "0123456789abcdef01234567", offline: true }) + "\n",
    );
    assert.throws(() => installUvOfflineCommand("0.13.9", "$(reboot)"), /invalid archive checksum/);
  });

  it("the unit check for refresh fails on a pending daemon-reload or, once released, a stopped service", () => {
    assert.equal(
      unitHealthyCommand("demoapp", "web"),
      "sudo -n sh -c 'test \"$(systemctl show -P NeedDaemonReload demoapp-web.service)\" != yes && { [ ! -e /opt/ayna/demoapp/releases/current ] || systemctl is-active --quiet demoapp-web.service; }'",
    );
  });

  it("a role's units are enabled with their socket, and a role turned off is stopped and disabled with it", () => {
    assertGolden(
      "enable-web.sh",
      [
        enableUnitCommand("demoapp", "web", true),
        deactivateUnitCommand("demoapp", "web", true),
        enableUnitCommand("demoapp", "celery", false),
        "",
      ].join("\n"),
    );
  });

  it("with a bundle, the host's shell puts the env file and units lines before the archive; no value in argv", () => {
    assert.equal(
      toolCommand("/opt/ayna/demoapp/bin/ayna-release", ["rollback", "--to", "v2"], { bundle: true }),
      `{ printf '%s\\n' "$AYNA_ENV_B64" "$AYNA_UNITS_B64"; cat; } | ` +
        'sudo -n systemd-run --quiet --wait --pipe --collect --service-type=exec "--setenv=AYNA_ACTOR=$AYNA_ACTOR" ' +
        "/opt/ayna/demoapp/bin/ayna-release rollback --to v2 --bundle",
    );
    assert.equal(
      verifyCommand("/opt/ayna/demoapp/bin/ayna-release"),
      "sudo -n /opt/ayna/demoapp/bin/ayna-release verify",
    );
  });

  it("encodes the units line as base64 of name<TAB>base64 lines, and refuses a name that could leave the unit directory", () => {
    const line = encodeUnits([
      { name: "demoapp-web.service", content: "[Service]\n" },
      { name: "demoapp-web.socket", content: "[Socket]\n" },
    ]);
    assert.equal(
      Buffer.from(line, "base64").toString("utf8"),
      "demoapp-web.service\tW1NlcnZpY2VdCg==\ndemoapp-web.socket\tW1NvY2tldF0K\n",
    );
    assert.throws(() => encodeUnits([{ name: "../x.service", content: "" }]), /invalid unit file name/);
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

  it("renders the release tool's settings block quoted (golden) in place of the template's marker", () => {
    const spec: ReleaseToolSpec = {
      project: "demoapp",
      stage: "production",
      user: "demoapp",
      group: "demoapp",
      services: [
        {
          role: "web",
          port: 8150,
          reload: "handover",
          candidatePort: 8155,
          candidateCommand: ["@RELEASE@/.venv/bin/gunicorn", "--bind", "127.0.0.1:8155", "config.wsgi:application"],
        },
        { role: "celery", reload: "restart" },
      ],
      keep: 5,
      healthPath: "/health",
      healthTimeoutSeconds: 60,
      healthPasses: 2,
      migrate: djangoMigrate,
      static: commandStep("npm run build && cp -r dist staticfiles/"),
    };
    // The script's steps are tested by running them (releaseTool.test.ts); only the settings are golden.
    assertGolden("ayna-release-settings.sh", renderReleaseSettings(spec));
    const tool = renderReleaseTool(spec);
    assert.ok(tool.includes(`\n${renderReleaseSettings(spec)}`) && !tool.includes("#@SETTINGS@"));
    assert.match(tool, /^SERVICES=\(web:8150:handover:8155:fork celery::restart::fork\)$/m);
    assert.match(
      tool,
      /^CANDIDATE_web=\(@RELEASE@\/\.venv\/bin\/gunicorn --bind 127\.0\.0\.1:8155 config\.wsgi:application\)$/m,
    );
  });
});
