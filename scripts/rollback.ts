// npm run rollback -- --stack STAGE [--to vN] [--config-file FILE]
//
// Rolls a stack back to the release that served before the current one (or
// to --to vN): pins it in the stack config (release.pin) and runs a new
// update with the pulumi CLI, so history stays linear and auditable.
// The hosts switch to the old release directory with its old Python
// environment; nothing is reinstalled. A release no longer on a host, or one
// that failed, is refused, and the stack config is then left byte for byte as
// it was. `make rollback` calls rollback() below. It drives the pulumi CLI
// itself, so it needs no more than the CLI on the machine.
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pulumiBinary, repoRoot } from "./lib/toolchain";

export interface Args {
  stack: string;
  to?: string;
  /** Absolute path of the stack's config file, when it is not Pulumi.<stack>.yaml beside Pulumi.yaml. */
  configFile?: string;
}

const usage = "usage: rollback --stack STACK [--to vN] [--config-file FILE]";

/**
 * Parses the flags the way pulumi spells them (`--stack S`, `--stack=S`, `-s S`).
 * A relative --config-file is relative to where the command was typed: npm
 * runs scripts from the package root and says where it was started in INIT_CWD.
 */
export function parseArgs(argv: string[], cwd = process.env.INIT_CWD ?? process.cwd()): Args {
  const out: Partial<Args> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const value = (): string => {
      const v = eq < 0 ? argv[++i] : arg.slice(eq + 1);
      if (v === undefined || v === "") throw new Error(`${flag} needs a value; ${usage}`);
      return v;
    };
    if (flag === "--stack" || flag === "-s") out.stack = value();
    else if (flag === "--to") out.to = value();
    else if (flag === "--config-file") out.configFile = path.resolve(cwd, value());
    else throw new Error(`unknown argument ${arg}; ${usage}`);
  }
  if (!out.stack) throw new Error(`--stack is required; ${usage}`);
  if (out.to !== undefined && !/^v[1-9][0-9]*$/.test(out.to))
    throw new Error(`--to ${out.to}: expected a release such as v2`);
  // pulumi would create a missing config file holding nothing but the pin, and
  // the update would then fail on a config without project or hosts.
  if (out.configFile !== undefined && !fs.existsSync(out.configFile))
    throw new Error(`--config-file ${out.configFile}: no such file`);
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

/** The file `pulumi config set` writes for these args (the CLI's own rule when no --config-file). */
export function configFileOf(args: Args): string {
  return args.configFile ?? path.join(repoRoot, `Pulumi.${args.stack.split("/").pop()}.yaml`);
}

/** Runs the CLI for its output; a failure carries the CLI's own words. */
function cliOutput(bin: string, args: string[]): string {
  try {
    return execFileSync(bin, args, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`pulumi ${args.join(" ")}: ${(err.stderr ?? "").trim() || err.message}`);
  }
}

/** The hosts output of the stack (non-secret), as the program wrote it. */
function hostsOf(bin: string, stack: string): HostOutput[] {
  const all = JSON.parse(cliOutput(bin, ["stack", "output", "--json", "--stack", stack])) as Record<string, unknown>;
  return (Array.isArray(all["hosts"]) ? all["hosts"] : []) as HostOutput[];
}

/**
 * Rolls back; throws with the reason. The stack config is changed only when the rollback succeeded.
 * The CLI is run directly (outputs, config set, up): the Automation API would add a stack
 * select, a second outputs read and a history read, each a CLI start of its own.
 */
export async function rollback(args: Args): Promise<void> {
  const bin = pulumiBinary();
  process.env.PATH = `${path.dirname(bin)}:${process.env.PATH ?? ""}`;
  process.env.PULUMI_SKIP_UPDATE_CHECK = "true";
  process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION = "true";

  const started = Date.now();
  const hosts = hostsOf(bin, args.stack);
  if (hosts.length === 0) throw new Error(`stack ${args.stack} has no deployed hosts to roll back`);
  const target = chooseTarget(hosts, args.to);
  const now = hosts.map((h) => `${h.name}: ${h.release}`).join(", ");
  process.stdout.write(`rolling ${args.stack} back to ${target} (now ${now})\n`);

  // Kept byte for byte: whatever stops the rollback (a refusal on a host, a
  // failed health check, Ctrl-C) puts the file back as it was.
  const configFile = configFileOf(args);
  const saved = fs.existsSync(configFile) ? fs.readFileSync(configFile) : undefined;
  const fileFlags = args.configFile ? ["--config-file", args.configFile] : [];
  let interrupted = false;
  let child: ChildProcess | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    // The CLI cancels the update cleanly on its first signal and stops at once
    // on a second: it runs in a process group of its own, so a terminal's
    // Ctrl-C reaches it only through here, once.
    if (!interrupted) child?.kill(sig);
    interrupted = true;
  };
  // Kept for the whole update: a second Ctrl-C must not end this process
  // before the config file is put back.
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    // Not `up --config-path --config release.pin=...`: pulumi 3.248 then saves
    // the release map as {pin} alone, dropping every other release.* key.
    execFileSync(
      bin,
      ["config", "set", "--path", "release.pin", target, "--stack", args.stack, "--non-interactive", ...fileFlags],
      { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] },
    );
    const code = await new Promise<number>((resolve, reject) => {
      // --show-secrets stays off: the summary would print them.
      child = spawn(
        bin,
        ["up", "--yes", "--skip-preview", "--stack", args.stack, "--message", `rollback to ${target}`, ...fileFlags],
        { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"], detached: true },
      );
      child.on("error", reject);
      child.on("close", (c, sig) => resolve(c ?? (sig ? 128 : 1)));
    });
    if (code !== 0) throw new Error(`pulumi up exited ${code}`);
    // No outputs read back: the update succeeds only when every host serves the pin.
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stdout.write(
      `rolled back to ${target} in ${seconds}s: ${hosts.map((h) => `${h.name}: ${target}`).join(", ")}\n` +
        `release.pin=${target} stays in the stack config; remove it (pulumi config rm --path release.pin) to deploy the source again.\n`,
    );
  } catch (err) {
    // The update's own output (streamed above) says why.
    const why = interrupted ? "interrupted" : "the update failed (its output is above)";
    if (interrupted) process.exitCode = 130;
    throw new Error(`rollback to ${target} did not complete: ${why}; ${restore(configFile, saved)}`, {
      cause: err,
    });
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

function restore(file: string, saved: Buffer | undefined): string {
  try {
    if (saved === undefined) fs.rmSync(file, { force: true });
    else if (!fs.existsSync(file) || !fs.readFileSync(file).equals(saved)) fs.writeFileSync(file, saved);
    return `the stack config (${file}) is as it was`;
  } catch (e) {
    return `restoring ${file} failed (${e instanceof Error ? e.message : String(e)}): remove release.pin by hand`;
  }
}

if (require.main === module) {
  Promise.resolve()
    .then(() => rollback(parseArgs(process.argv.slice(2))))
    .catch((err: unknown) => {
      process.stderr.write(`rollback failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(process.exitCode || 1);
    });
}
