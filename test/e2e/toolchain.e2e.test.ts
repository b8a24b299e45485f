// The project's plugins as the pulumi CLI finds and starts them: the stand-in
// language host from the CLI's own directory (Pulumi.yaml names none), and the
// provider launcher, which compiles changed sources before it starts. No test
// host is needed.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PulumiStack, pulumiBinary, repoRoot, resourceSummary } from "../support/pulumi";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("toolchain: the language host beside the CLI", () => {
  const cliDir = path.dirname(pulumiBinary());
  const host = path.join(cliDir, "pulumi-language-nodejs");
  let program: string;
  let stack: PulumiStack | undefined;

  before(() => {
    // A program outside the repository, with node_modules of its own (here a
    // link to the repository's), as an operator's project would have.
    program = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-e2e-langhost-"));
    fs.cpSync(path.join(repoRoot, "test", "fixtures", "empty"), program, { recursive: true });
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(program, "node_modules"));
  });

  after(async () => {
    await stack?.remove();
    fs.rmSync(program, { recursive: true, force: true });
  });

  it("is installed by scripts/toolchain.sh as a copy that needs no checkout", () => {
    assert.ok(fs.existsSync(host) && fs.statSync(host).mode & 0o100, `no ${host}: run scripts/toolchain.sh`);
    const installed = [
      host,
      ...fs.readdirSync(path.join(cliDir, "language-nodejs")).map((f) => path.join(cliDir, "language-nodejs", f)),
    ];
    for (const f of installed) {
      assert.ok(!fs.readFileSync(f, "utf8").includes(repoRoot), `${f} refers to the checkout ${repoRoot}`);
    }
  });

  it("is what the CLI runs for this repository's Pulumi.yaml, which names none", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-e2e-about-"));
    try {
      // As scripts/lib.sh's use_toolchain sets it up: the CLI's directory first on PATH.
      const r = await run(
        pulumiBinary(),
        ["about", "--json", "--logtostderr", "-v=6"],
        {
          ...process.env,
          PATH: `${cliDir}:${process.env.PATH ?? ""}`,
          PULUMI_HOME: home,
          PULUMI_BACKEND_URL: `file://${home}`,
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        },
        repoRoot,
      );
      assert.equal(r.code, 0, r.stderr.slice(-4000));
      const about = JSON.parse(r.stdout) as { plugins: { kind: string; name: string; version: string }[] };
      const ownVersion = (
        JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string }
      ).version;
      // The engine's own host would report the CLI's version (3.248.0).
      assert.deepEqual(
        about.plugins.filter((p) => p.kind === "language"),
        [{ kind: "language", name: "nodejs", version: ownVersion }],
      );
      assert.ok(r.stderr.includes(`GetPluginPath(language, nodejs, <nil>, ): found on $PATH ${host}`));
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it("runs a preview and an update when PATH has no language host, found beside the CLI", async () => {
    stack = await PulumiStack.create(`langhost${process.pid}`, program);
    // PATH keeps node (the host is a Node.js script) but neither the CLI's
    // directory, nor plugins/bin, nor any other that holds a language host.
    const dropped = [cliDir, path.join(repoRoot, "plugins", "bin")];
    const PATH = [path.dirname(process.execPath), ...(process.env.PATH ?? "").split(":")]
      .filter((d) => d !== "" && !dropped.includes(d) && !fs.existsSync(path.join(d, "pulumi-language-nodejs")))
      .join(":");
    stack.env.PATH = PATH;

    const preview = await stack.run(["preview", "--logtostderr", "-v=6"]);
    assert.equal(preview.code, 0, `${preview.stdout}\n${preview.stderr.slice(-4000)}`);
    const found = `GetPluginPath(language, nodejs, <nil>, ): found next to current executable ${host}`;
    assert.ok(preview.stderr.includes(found), "the CLI did not report finding the host beside itself");
    assert.ok(!/GetPluginPath\(language, nodejs[^\n]*found on \$PATH/.test(preview.stderr));

    const up = await stack.ok(["up", "--yes"]);
    assert.deepEqual(resourceSummary(up.stdout), { created: 1 });
  });
});

describe("toolchain: the provider launcher compiles changed sources", () => {
  let root: string;
  let launcher: string;
  const marker = (v: string) => `process.stdout.write(${JSON.stringify(`${v}\n`)});\n`;
  const write = (rel: string, text: string) => fs.writeFileSync(path.join(root, rel), text);
  const start = () => run(launcher, []);
  const compiled = (r: Run) => r.stderr.includes("compiling them");

  before(() => {
    // A copy of the launcher and the build config over a provider of its own:
    // what it builds, and what it starts, are visible on stdout.
    root = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-e2e-launcher-"));
    for (const d of ["plugins/bin", "plugins/provider", "builders", "standard"]) {
      fs.mkdirSync(path.join(root, d), { recursive: true });
    }
    launcher = path.join(root, "plugins", "bin", "pulumi-resource-ayna");
    fs.copyFileSync(path.join(repoRoot, "plugins", "bin", "pulumi-resource-ayna"), launcher);
    fs.chmodSync(launcher, 0o755);
    for (const f of ["tsconfig.json", "tsconfig.build.json", "builders/ayna-release.sh"]) {
      fs.copyFileSync(path.join(repoRoot, f), path.join(root, f));
    }
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"));
    write("plugins/provider/main.ts", marker("v1"));
    write("standard/extra.ts", "export const extra = 1;\n");
  });

  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("compiles before the first start, with the release tool next to the compiled builders", async () => {
    const r = await start();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "v1\n");
    assert.ok(compiled(r), r.stderr);
    assert.equal(
      fs.readFileSync(path.join(root, "dist", "builders", "ayna-release.sh"), "utf8"),
      fs.readFileSync(path.join(repoRoot, "builders", "ayna-release.sh"), "utf8"),
    );
  });

  it("starts without compiling while the sources' content is unchanged, even when touched", async () => {
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(path.join(root, "plugins", "provider", "main.ts"), later, later);
    const r = await start();
    assert.equal(r.stdout, "v1\n");
    assert.equal(r.stderr, "");
  });

  it("compiles an edited provider source before the next start, and drops what a deleted one left", async () => {
    write("plugins/provider/main.ts", marker("v2"));
    fs.rmSync(path.join(root, "standard", "extra.ts"));
    const r = await start();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "v2\n");
    assert.ok(compiled(r));
    assert.ok(!fs.existsSync(path.join(root, "dist", "standard", "extra.js")));
  });

  it("compiles once when several providers start at once, and all of them run the new code", async () => {
    write("plugins/provider/main.ts", marker("v3"));
    const runs = await Promise.all([start(), start(), start(), start()]);
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "v3\n");
    }
    assert.equal(runs.filter(compiled).length, 1);
  });

  it("refuses to start code that does not compile, and keeps the last good build", async () => {
    write("plugins/provider/main.ts", `const n: number = "not a number";\n${marker("v4")}`);
    const bad = await start();
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stdout, "", "nothing may reach stdout, where the engine reads the port");
    assert.match(bad.stderr, /error TS2322/);
    assert.match(bad.stderr, /do not compile/);
    const kept = await run(process.execPath, [path.join(root, "dist", "plugins", "provider", "main.js")]);
    assert.equal(kept.stdout, "v3\n");

    write("plugins/provider/main.ts", marker("v5"));
    assert.equal((await start()).stdout, "v5\n");
  });
});
