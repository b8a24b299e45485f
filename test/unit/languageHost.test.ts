import { strict as assert } from "node:assert";
import { buildRunInvocation, runOutcome, RunSettings } from "../../plugins/language-nodejs/run";

const base: RunSettings = {
  engineAddress: "127.0.0.1:4000",
  monitorAddress: "127.0.0.1:5000",
  project: "ayna-deploy",
  stack: "staging",
  organization: "organization",
  pwd: "/work/app",
  rootDirectory: "/work/app",
  program: ".",
  args: [],
  dryRun: true,
  queryMode: false,
  parallel: 16,
  config: { "ayna-deploy:project": "demoapp" },
  configSecretKeys: ["ayna-deploy:sshPrivateKey"],
  options: {},
};

describe("language host", () => {
  it("runs the SDK's run script with the engine's settings as flags", () => {
    const inv = buildRunInvocation(base, "/n/run", "/usr/bin/node", { PATH: "/bin" });
    assert.equal(inv.command, "/usr/bin/node");
    assert.deepEqual(inv.args, [
      "/n/run",
      "--monitor=127.0.0.1:5000",
      "--engine=127.0.0.1:4000",
      "--project=ayna-deploy",
      "--stack=staging",
      "--pwd=/work/app",
      "--organization=organization",
      "--root-directory=/work/app",
      "--dry-run",
      "--parallel=16",
      ".",
    ]);
    assert.equal(inv.cwd, "/work/app");
  });

  it("passes config through the environment, never argv", () => {
    const inv = buildRunInvocation(base, "/n/run", "node", { PATH: "/bin" });
    assert.equal(inv.env.PULUMI_CONFIG, JSON.stringify({ "ayna-deploy:project": "demoapp" }));
    assert.equal(inv.env.PULUMI_CONFIG_SECRET_KEYS, '["ayna-deploy:sshPrivateKey"]');
    assert.equal(inv.env.PULUMI_NODEJS_TYPESCRIPT, "true");
    assert.equal(inv.env.PATH, "/bin");
    assert.ok(!inv.args.some((a) => a.includes("demoapp")));
  });

  it("honours runtime options", () => {
    const inv = buildRunInvocation(
      {
        ...base,
        dryRun: false,
        options: {
          typescript: false,
          nodeargs: "--max-old-space-size=512  --trace-warnings",
          tsconfig: "tsconfig.x.json",
        },
      },
      "/n/run",
      "node",
      {},
    );
    assert.deepEqual(inv.args.slice(0, 3), ["--max-old-space-size=512", "--trace-warnings", "/n/run"]);
    assert.ok(!inv.args.includes("--dry-run"));
    assert.equal(inv.env.PULUMI_NODEJS_TYPESCRIPT, "false");
    assert.equal(inv.env.PULUMI_NODEJS_TSCONFIG_PATH, "tsconfig.x.json");
    assert.equal(inv.env.PULUMI_NODEJS_TRANSPILE_ONLY, undefined);
    const fast = buildRunInvocation({ ...base, options: { transpileOnly: true } }, "/n/run", "node", {});
    assert.equal(fast.env.PULUMI_NODEJS_TRANSPILE_ONLY, "true");
  });

  it("maps exits to run results", () => {
    assert.deepEqual(runOutcome(0, null), {});
    assert.deepEqual(runOutcome(32, null), { bail: true });
    assert.deepEqual(runOutcome(1, null), { error: "Program exited with non-zero exit code: 1" });
    assert.deepEqual(runOutcome(null, "SIGKILL"), { error: "Program was terminated by signal SIGKILL" });
  });
});
