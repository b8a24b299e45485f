import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { loadProtocol } from "../../plugins/language-nodejs/protocol";
import { buildRunInvocation, runOutcome, RunSettings } from "../../plugins/language-nodejs/run";
import { repoRoot } from "../../scripts/lib/toolchain";
import { outlivesKilledParent } from "../support/procs";

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
  it("exits when its engine is killed outright (SIGKILL), instead of lingering as init's child", async function () {
    this.timeout(60_000);
    const main = path.join(repoRoot, "plugins", "language-nodejs", "main.ts");
    // A shell stands in for the engine; the host is its child as under the CLI.
    const { gone } = await outlivesKilledParent(process.execPath, ["-r", "ts-node/register", main, "127.0.0.1:1"], {
      cwd: repoRoot,
      withinMs: 10_000,
    });
    assert.ok(gone, "the host was still running 10 s after its engine died");
  });

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

  describe("where it gets gRPC and the protocol stubs", () => {
    let scratch: string;
    beforeEach(() => (scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-langhost-"))));
    afterEach(() => fs.rmSync(scratch, { recursive: true, force: true }));

    it("loads them from the program's @pulumi/pulumi, all from one copy", () => {
      const program = path.join(scratch, "program");
      fs.mkdirSync(program);
      fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(program, "node_modules"));
      const p = loadProtocol([program]);
      assert.equal(p.source, require.resolve("@pulumi/pulumi/proto/language_grpc_pb"));
      // The stubs' serializers check instanceof against their own classes: a
      // second google-protobuf would fail here.
      const cancel = p.langrpc.LanguageRuntimeService.cancel;
      assert.ok(cancel.responseSerialize(new p.emptyproto.Empty()) instanceof Buffer);
      assert.ok(new p.grpc.Server() instanceof p.grpc.Server);
    });

    it("tries the next place when the program has none, and says what is missing when no place has", () => {
      assert.ok(loadProtocol([scratch, repoRoot]).source.startsWith(path.join(repoRoot, "node_modules")));
      assert.throws(
        () => loadProtocol([scratch]),
        (err: Error) => {
          assert.match(err.message, /@pulumi\/pulumi is not installed for the program in /);
          assert.ok(err.message.includes(scratch));
          assert.match(err.message, /npm install/);
          return true;
        },
      );
    });
  });

  it("is not named by the project: the CLI picks it (an ordinary install gets the engine's own)", () => {
    for (const dir of [".", "test/fixtures/empty", "test/fixtures/smoke"]) {
      const project = yaml.load(fs.readFileSync(path.join(repoRoot, dir, "Pulumi.yaml"), "utf8")) as {
        plugins?: { languages?: unknown };
      };
      assert.equal(project.plugins?.languages, undefined, `${dir}/Pulumi.yaml names a language host`);
    }
    const root = yaml.load(fs.readFileSync(path.join(repoRoot, "Pulumi.yaml"), "utf8")) as {
      plugins: { providers: { name: string; path: string }[] };
    };
    assert.deepEqual(root.plugins.providers, [{ name: "ayna", path: "./plugins/bin" }]);
  });
});
