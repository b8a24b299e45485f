// ayna:remote:Command — a command run on a host over SSH when its inputs change.
import * as fs from "node:fs";
import type * as provider from "@pulumi/pulumi/provider";
import { quote } from "../../builders/shell";
import { Connection, SshPool, validateConnection } from "./ssh";
import { reveal, scrub, secretStrings } from "./secrets";
import { changedKeys, Failure, requireString } from "./util";

export interface CommandInputs {
  connection: Connection;
  /** Run on create, and on update when `update` is absent. */
  create: string;
  update?: string;
  delete?: string;
  /** Sent on stdin; the place for secrets. */
  stdin?: string;
  /** A local file streamed on stdin instead (archives); give its hash in `triggers`. */
  stdinFile?: string;
  /** Non-secret variables exported for the command. Changing only these does not re-run it. */
  environment?: Record<string, string>;
  /** Any change re-runs the command. */
  triggers?: unknown[];
  timeoutSeconds?: number;
  /** Keep (scrubbed) stdout in the outputs. Off by default: state is no place for command output. */
  captureStdout?: boolean;
}

/** Inputs whose change runs the command again; the rest are stored only. */
const rerunKeys = ["create", "update", "stdin", "stdinFile", "triggers"];
const replaceKeys = ["connection.host", "connection.port"];

export function checkCommand(news: Record<string, unknown>): Failure[] {
  const plain = reveal(news) as Partial<CommandInputs>;
  const failures: Failure[] = validateConnection(plain.connection ?? {});
  failures.push(...requireString(plain, "create"));
  for (const k of Object.keys(plain.environment ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      failures.push({ property: `environment.${k}`, reason: "not a variable name" });
  }
  if (plain.stdin !== undefined && plain.stdinFile !== undefined) {
    failures.push({ property: "stdinFile", reason: "give stdin or stdinFile, not both" });
  }
  if (plain.timeoutSeconds !== undefined && !(plain.timeoutSeconds > 0)) {
    failures.push({ property: "timeoutSeconds", reason: "must be a positive number" });
  }
  return failures;
}

export function diffCommand(olds: Record<string, unknown>, news: Record<string, unknown>): provider.DiffResult {
  const changed = changedKeys(olds, news, [
    ...rerunKeys,
    "delete",
    "timeoutSeconds",
    "captureStdout",
    "connection",
    "environment",
  ]);
  const replaces = changedKeys(olds, news, replaceKeys);
  return { changes: changed.length > 0 || replaces.length > 0, replaces: replaces.map((k) => k.split(".")[0]!) };
}

/** `export K=V; ` for each variable, quoted. */
export function exportPrefix(env: Record<string, string> | undefined): string {
  return Object.entries(env ?? {})
    .map(([k, v]) => `export ${k}=${quote(v)}; `)
    .join("");
}

async function run(pool: SshPool, raw: Record<string, unknown>, command: string): Promise<string> {
  const inputs = reveal(raw) as CommandInputs;
  let stdin: string | Buffer | undefined = inputs.stdin;
  if (inputs.stdinFile !== undefined) {
    try {
      stdin = fs.readFileSync(inputs.stdinFile);
    } catch (e) {
      throw new Error(`cannot read stdinFile ${inputs.stdinFile}: ${(e as Error).message}`);
    }
  }
  const res = await pool.exec(inputs.connection, exportPrefix(inputs.environment) + command, {
    stdin,
    timeoutMs: (inputs.timeoutSeconds ?? 600) * 1000,
  });
  const secrets = secretStrings(raw);
  if (res.code !== 0) {
    const tail = scrub([res.stdout, res.stderr].join("\n"), secrets).trim().split("\n").slice(-100).join("\n");
    throw new Error(`remote command on ${inputs.connection.host} exited with ${res.code}:\n${tail}`);
  }
  return scrub(res.stdout, secrets);
}

function outputs(news: Record<string, unknown>, stdout: string): Record<string, unknown> {
  const plain = reveal(news) as CommandInputs;
  return plain.captureStdout ? { ...news, stdout } : { ...news };
}

export async function createCommand(pool: SshPool, news: Record<string, unknown>): Promise<provider.CreateResult> {
  const plain = reveal(news) as CommandInputs;
  const stdout = await run(pool, news, plain.create);
  return {
    id: `cmd-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    outs: outputs(news, stdout),
  };
}

export async function updateCommand(
  pool: SshPool,
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
): Promise<provider.UpdateResult> {
  if (changedKeys(olds, news, rerunKeys).length === 0) {
    // Only stored settings changed (a rotated key, a new delete command): nothing to run.
    return { outs: { ...news, stdout: olds["stdout"] } };
  }
  const plain = reveal(news) as CommandInputs;
  const stdout = await run(pool, news, plain.update ?? plain.create);
  return { outs: outputs(news, stdout) };
}

export async function deleteCommand(pool: SshPool, props: Record<string, unknown>): Promise<void> {
  const plain = reveal(props) as CommandInputs;
  if (plain.delete) await run(pool, props, plain.delete);
}
