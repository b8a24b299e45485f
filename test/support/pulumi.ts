// Runs the real pulumi CLI (built by scripts/toolchain.sh) for end-to-end
// tests: a private PULUMI_HOME, a file state backend and a passphrase secrets
// provider in a temp dir of the test's own, so the user's login is never touched.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pulumiBinary, repoRoot } from "../../scripts/lib/toolchain";
import type { TestHost } from "./testhost";

export { pulumiBinary, repoRoot };

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export class PulumiStack {
  readonly dir: string;
  readonly configFile: string;
  readonly env: NodeJS.ProcessEnv;
  /** The pulumi CLI this stack runs. */
  readonly pulumi = pulumiBinary();

  private constructor(
    readonly name: string,
    readonly cwd: string,
    backendUrl?: string,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `ayna-e2e-${name}-`));
    this.configFile = path.join(this.dir, `Pulumi.${name}.yaml`);
    fs.mkdirSync(path.join(this.dir, "state"));
    this.env = {
      ...process.env,
      PATH: `${path.dirname(this.pulumi)}:${process.env.PATH ?? ""}`,
      PULUMI_HOME: path.join(this.dir, "home"),
      PULUMI_BACKEND_URL: backendUrl ?? `file://${path.join(this.dir, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: `e2e-passphrase-${name}`,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_SKIP_CONFIRMATIONS: "true",
      NO_COLOR: "1",
    };
  }

  /**
   * Creates a stack of the program in `cwd` (default: the repo), its state in
   * a file backend of its own unless `backendUrl` names another.
   */
  static async create(name: string, cwd = repoRoot, opts: { backendUrl?: string } = {}): Promise<PulumiStack> {
    const s = new PulumiStack(name, cwd, opts.backendUrl);
    // `stack init` takes no --config-file and writes Pulumi.<stack>.yaml (its
    // secrets salt) beside the Pulumi.yaml it runs with: run it on a copy of
    // the project file in the stack's temp dir, never in the repo, and keep
    // that file as the stack's config file.
    const project = path.join(s.dir, "project");
    fs.mkdirSync(project);
    fs.copyFileSync(path.join(cwd, "Pulumi.yaml"), path.join(project, "Pulumi.yaml"));
    await s.ok(["stack", "init"], { cwd: project });
    fs.renameSync(path.join(project, `Pulumi.${name}.yaml`), s.configFile);
    fs.rmSync(project, { recursive: true, force: true });
    return s;
  }

  /**
   * The same stack as a second operator sees it: a PULUMI_HOME and a copy of
   * the config file of its own, the same backend and passphrase.
   */
  secondOperator(): PulumiStack {
    const other = new PulumiStack(this.name, this.cwd, this.env["PULUMI_BACKEND_URL"]);
    fs.copyFileSync(this.configFile, other.configFile);
    return other;
  }

  run(
    args: string[],
    opts: { input?: string; timeoutMs?: number; configFile?: string; cwd?: string } = {},
  ): Promise<CliResult> {
    const started = Date.now();
    const needsConfigFile = ["up", "preview", "destroy", "refresh", "config"].includes(args[0] ?? "");
    const flags = [
      "--stack",
      this.name,
      "--non-interactive",
      ...(needsConfigFile ? ["--config-file", opts.configFile ?? this.configFile] : []),
    ];
    // Flags must come before a `--` that ends option parsing.
    const dd = args.indexOf("--");
    const full = dd < 0 ? [...args, ...flags] : [...args.slice(0, dd), ...flags, ...args.slice(dd)];
    return new Promise((resolve, reject) => {
      const child = spawn(this.pulumi, full, {
        cwd: opts.cwd ?? this.cwd,
        env: this.env,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started });
      });
      child.stdin.end(opts.input ?? "");
    });
  }

  async ok(
    args: string[],
    opts: { input?: string; timeoutMs?: number; configFile?: string; cwd?: string } = {},
  ): Promise<CliResult> {
    const r = await this.run(args, opts);
    if (r.code !== 0) throw new Error(`pulumi ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /** Sets a config value; secrets go through stdin, never argv. */
  async setConfig(
    key: string,
    value: string,
    opts: { secret?: boolean; path?: boolean; configFile?: string } = {},
  ): Promise<void> {
    const args = ["config", "set", key];
    if (opts.path) args.push("--path");
    if (opts.secret) {
      await this.ok([...args, "--secret"], { input: value, configFile: opts.configFile });
    } else {
      await this.ok([...args, "--", value], { configFile: opts.configFile });
    }
  }

  /** A copy of the stack's config file, for a variant that must not touch the real one. */
  copyConfig(tag: string): string {
    const copy = path.join(this.dir, `Pulumi.${this.name}.${tag}.yaml`);
    fs.copyFileSync(this.configFile, copy);
    return copy;
  }

  /** Points the stack at one test host with the standard demo settings. */
  async configureHost(project: string, host: TestHost): Promise<void> {
    await this.setConfig("project", project);
    await this.setConfig("stage", "staging");
    await this.setConfig("hosts[0].name", "web1", { path: true });
    await this.setConfig("hosts[0].address", host.address, { path: true });
    await this.setConfig("hosts[0].port", String(host.port), { path: true });
    await this.setConfig("hosts[0].user", host.user, { path: true });
    await this.setConfig("hosts[0].hostKey", host.hostKey, { path: true });
    await this.setConfig("sshPrivateKey", host.privateKey, { secret: true });
  }

  /**
   * The sample app's settings: a declared port range, sqlite in shared/, local
   * Redis, and a private copy of sample-app/ (returned) that a test may change.
   */
  async configureSampleApp(project: string, opts: { portBase?: number } = {}): Promise<string> {
    const app = path.join(this.dir, "app");
    fs.cpSync(path.join(repoRoot, "sample-app"), app, {
      recursive: true,
      filter: (src) => !/(__pycache__|\.venv|\.pytest_cache)$/.test(src),
    });
    await this.setConfig("ports.base", String(opts.portBase ?? 8150), { path: true });
    // 5 s instead of the default 15 s of watch after each release's switch:
    // the window's own test (faults.e2e.test.ts) runs with the default.
    await this.setConfig("release.watchSeconds", "5", { path: true });
    await this.setConfig("app.path", app, { path: true });
    await this.setConfig("env.DJANGO_SETTINGS_MODULE", "config.settings", { path: true });
    await this.setConfig("secretEnv.DATABASE_URL", `sqlite:////opt/ayna/${project}/shared/db.sqlite3`, {
      path: true,
      secret: true,
    });
    return app;
  }

  async exportState(): Promise<string> {
    return (await this.ok(["stack", "export", "--show-secrets=false"])).stdout;
  }

  async remove(): Promise<void> {
    // --preserve-config: the stack's config file is in this.dir, removed below;
    // `stack rm` would otherwise delete Pulumi.<stack>.yaml beside the program.
    await this.run(["stack", "rm", "--force", "--yes", "--preserve-config"]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The counts in pulumi's "Resources:" summary. */
export function resourceSummary(out: string): Record<string, number> {
  // The last block is the update's own; an earlier one is the preview's.
  const blocks = [...(out + "\n\n").matchAll(/Resources:\n([\s\S]*?)\n\n/g)];
  const counts: Record<string, number> = {};
  for (const line of (blocks[blocks.length - 1]?.[1] ?? "").split("\n")) {
    const x = /(\d+) (created|updated|deleted|replaced|unchanged|to create|to update|to delete|to replace)/.exec(line);
    if (x) counts[x[2]!] = Number(x[1]);
  }
  return counts;
}
