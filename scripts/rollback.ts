// npm run rollback -- --stack STAGE [--to vN] [--config-file FILE]
//
// Rolls a stack back to the release that served before the current one (or
// to --to vN): pins it in the stack config (release.pin) and runs a new
// update through the Automation API, so history stays linear and auditable.
// The hosts switch to the old release directory with its old Python
// environment; nothing is reinstalled. A release no longer on a host is refused.
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { pulumiBinary, repoRoot } from "./lib/toolchain";

interface Args {
  stack: string;
  to?: string;
  configFile?: string;
}

export function parseArgs(argv: string[]): Args {
  const out: Partial<Args> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--stack") out.stack = next();
    else if (a === "--to") out.to = next();
    else if (a === "--config-file") out.configFile = path.resolve(next());
    else throw new Error(`unknown argument ${a}; usage: rollback --stack STAGE [--to vN] [--config-file FILE]`);
  }
  if (!out.stack) throw new Error("--stack is required; usage: rollback --stack STAGE [--to vN]");
  if (out.to !== undefined && !/^v[1-9][0-9]*$/.test(out.to))
    throw new Error(`--to ${out.to}: expected a release such as v2`);
  return out as Args;
}

interface HostOutput {
  name: string;
  release: string;
  previousRelease: string;
}

/** The release to go back to: --to, or the one every host served before. */
export function chooseTarget(hosts: HostOutput[], to?: string): string {
  if (to) return to;
  const previous = [...new Set(hosts.map((h) => h.previousRelease))];
  if (previous.length !== 1 || !previous[0]) {
    throw new Error(
      `the hosts do not agree on one previous release (${hosts.map((h) => `${h.name}: ${h.previousRelease || "none"}`).join(", ")}); name it with --to`,
    );
  }
  return previous[0];
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const bin = pulumiBinary();
  process.env.PATH = `${path.dirname(bin)}:${process.env.PATH ?? ""}`;
  process.env.PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK = "true";
  process.env.PULUMI_SKIP_UPDATE_CHECK = "true";
  process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION = "true";

  const started = Date.now();
  const ws = await LocalWorkspace.create({ workDir: repoRoot });
  const stack = await Stack.select(args.stack, ws);
  const outputs = await stack.outputs();
  const hosts = (outputs["hosts"]?.value ?? []) as HostOutput[];
  if (hosts.length === 0) throw new Error(`stack ${args.stack} has no deployed hosts to roll back`);
  const target = chooseTarget(hosts, args.to);
  const now = hosts.map((h) => `${h.name}: ${h.release}`).join(", ");
  process.stdout.write(`rolling ${args.stack} back to ${target} (now ${now})\n`);

  // The config file may live outside the workspace (--config-file), which the
  // Automation API's setConfig cannot address: the CLI sets the pin.
  execFileSync(
    bin,
    [
      "config",
      "set",
      "--path",
      "release.pin",
      target,
      "--stack",
      args.stack,
      "--non-interactive",
      ...(args.configFile ? ["--config-file", args.configFile] : []),
    ],
    { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] },
  );
  const res = await stack.up({
    configFile: args.configFile,
    message: `rollback to ${target}`,
    onOutput: (s) => process.stdout.write(s),
  });
  const after = (res.outputs["hosts"]?.value ?? []) as HostOutput[];
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `rolled back to ${target} in ${seconds}s: ${after.map((h) => `${h.name}: ${h.release}`).join(", ")}\n` +
      `release.pin=${target} stays in the stack config; remove it (pulumi config rm --path release.pin) to deploy the source again.\n`,
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`rollback failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
