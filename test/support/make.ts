// `make TARGET STACK=... CONFIG_FILE=...` run from the repo the way an
// operator types it, with a test stack's private backend and passphrase.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { PulumiStack, repoRoot } from "./pulumi";

export interface MakeResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they came. */
  out: string;
}

/** `make -s TARGET STACK=<stack> CONFIG_FILE=<its file> VARS...`; `stack: false` leaves both out. */
export function runMake(
  stack: PulumiStack,
  target: string,
  vars: string[] = [],
  opts: { input?: string; stack?: boolean } = {},
): Promise<MakeResult> {
  const stackVars = opts.stack === false ? [] : [`STACK=${stack.name}`, `CONFIG_FILE=${stack.configFile}`];
  return new Promise<MakeResult>((resolve, reject) => {
    const child = spawn("make", ["-s", target, ...stackVars, ...vars], {
      cwd: repoRoot,
      env: stack.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      out += d;
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      out += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", reject);
    const started = Date.now();
    child.on("close", (code) => {
      clearTimeout(timer);
      process.stderr.write(`      make ${target} ${vars.join(" ")}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      resolve({ code: code ?? -1, stdout, stderr, out });
    });
    child.stdin?.end(opts.input);
  });
}

/** runMake, asserting exit 0 (the output in the message otherwise). */
export async function makeOk(
  stack: PulumiStack,
  target: string,
  vars: string[] = [],
  opts: { input?: string } = {},
): Promise<MakeResult> {
  const r = await runMake(stack, target, vars, opts);
  assert.equal(r.code, 0, `make ${target} ${vars.join(" ")} exited ${r.code}:\n${r.out}`);
  return r;
}
