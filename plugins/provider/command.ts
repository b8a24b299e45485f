// ayna:remote:Command — a command run on the provider's host when its inputs change.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { timedOutStatus } from "../../builders/remote";
import { Connection, Executor, Failure, target } from "./ssh";
import { containsUnknown, isSecret, reveal, scrub, secretStrings } from "./secrets";
import { changedKeys, diffFrom, DiffResult, propertyDiff, requireString, withIdentity } from "./util";

export interface CommandInputs {
  /** Run on create, and on update when `update` is absent. */
  create: string;
  update?: string;
  delete?: string;
  /** Sent on stdin; the place for secrets. */
  stdin?: string;
  /** A local file streamed on stdin instead (archives); give its hash in `triggers`. */
  stdinFile?: string;
  /** Variables for the command, sent on stdin. Changing only these does not re-run it. */
  environment?: Record<string, string>;
  /** Any change re-runs the command. */
  triggers?: unknown[];
  /** @default 600 */
  timeoutSeconds?: number;
  /** Keep (scrubbed) stdout in the outputs. Off by default: state is no place for command output. */
  captureStdout?: boolean;
  /** Run by `pulumi refresh`: a non-zero exit marks the command drifted, and the next `up` runs it again. */
  check?: string;
  /** Show what a successful run wrote to stderr (scrubbed) on the resource in the engine's output. */
  logStderr?: boolean;
  /**
   * Secret values that reach the host only inside another input (an env file
   * sent base64-encoded): scrubbed from every output and error like the
   * secrets among the inputs.
   */
  redact?: string[];
  /** Set by the provider: the pinned key of the host the command ran on. */
  hostIdentity?: string;
}

/**
 * Inputs whose change runs the command again. A stdin file counts by its
 * content (`stdinFileSha256`, set by check), not by its path: each operator's
 * archive cache has a path of its own.
 */
export const rerunKeys = ["create", "update", "stdin", "stdinFileSha256", "triggers"];
/** Inputs that are only stored: a change updates state and runs nothing. */
export const storedKeys = [
  "stdinFile",
  "delete",
  "environment",
  "timeoutSeconds",
  "captureStdout",
  "check",
  "logStderr",
  "redact",
];

/** Lines of a successful run's stderr shown at most (its last ones): the engine's output is no log store. */
export const stderrLines = 200;

/** A message for the engine to show on the resource; a warning when a line of it is one. */
export interface EngineMessage {
  severity: "info" | "warning";
  text: string;
}

/** Check's additions: the content hash of the stdin file, read on the deploying machine. */
export function withStdinHash(news: Record<string, unknown>): { inputs: Record<string, unknown>; failures: Failure[] } {
  const file = reveal(news["stdinFile"]);
  if (typeof file !== "string" || containsUnknown(news["stdinFile"])) return { inputs: news, failures: [] };
  try {
    const sha = createHash("sha256").update(fs.readFileSync(file)).digest("hex");
    return { inputs: { ...news, stdinFileSha256: sha }, failures: [] };
  } catch (e) {
    return { inputs: news, failures: [{ property: "stdinFile", reason: `cannot read it: ${(e as Error).message}` }] };
  }
}

export function checkCommand(news: Record<string, unknown>): Failure[] {
  const plain = reveal(news) as Partial<CommandInputs>;
  const failures: Failure[] = requireString(plain, "create");
  for (const k of ["create", "update", "delete", "check"]) {
    if (isSecret(news[k])) {
      failures.push({
        property: k,
        reason: "a command line must not hold a secret (it would show in the host's process list); pass it on stdin",
      });
    }
  }
  for (const [k, v] of Object.entries(plain.environment ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      failures.push({ property: `environment.${k}`, reason: "not a variable name" });
    // Anything else would throw inside the SSH client's callback and take the provider down.
    else if (typeof v !== "string") failures.push({ property: `environment.${k}`, reason: "must be a string" });
  }
  if (plain.stdin !== undefined && typeof plain.stdin !== "string") {
    failures.push({ property: "stdin", reason: "must be a string" });
  }
  if (plain.stdin !== undefined && plain.stdinFile !== undefined) {
    failures.push({ property: "stdinFile", reason: "give stdin or stdinFile, not both" });
  }
  // Unknown in a preview: known at update, and a preview has nothing to scrub yet.
  const redact: unknown = containsUnknown(news["redact"]) ? undefined : plain.redact;
  if (redact !== undefined && !(Array.isArray(redact) && redact.every((x) => typeof x === "string"))) {
    failures.push({ property: "redact", reason: "must be a list of strings" });
  } else if (Array.isArray(redact) && redact.length > 0 && !isSecret(news["redact"])) {
    // Plain in state, they would be the very leak they are there to prevent.
    failures.push({ property: "redact", reason: "must be secret (pulumi.secret)" });
  }
  if (plain.logStderr !== undefined && typeof plain.logStderr !== "boolean") {
    failures.push({ property: "logStderr", reason: "must be true or false" });
  }
  if (plain.timeoutSeconds !== undefined && !(Number.isInteger(plain.timeoutSeconds) && plain.timeoutSeconds > 0)) {
    failures.push({ property: "timeoutSeconds", reason: "must be a positive whole number of seconds" });
  }
  return failures;
}

export function diffCommand(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  // A new machine behind the provider (another pinned key) means the command never ran there.
  const d = withIdentity(propertyDiff(olds, news, [...rerunKeys, ...storedKeys], []), olds, news);
  // Refresh found what the command set up undone on the host: run it again.
  if (olds["drifted"] === true) return diffFrom({ ...d.detailedDiff, drifted: "delete" }, d.deleteBeforeReplace);
  return d;
}

/** Refresh: runs the command's `check`; a failure marks it drifted (see diffCommand). */
export async function readCommand(
  exec: Executor,
  conn: Connection,
  id: string,
  props: Record<string, unknown>,
): Promise<{ id: string; props: Record<string, unknown> }> {
  const check = reveal(props["check"]);
  const { drifted: _was, ...rest } = props;
  void _was;
  if (typeof check !== "string" || check === "") return { id, props: rest };
  const res = await exec.exec(conn, check, { timeoutSeconds: 60 });
  return { id, props: res.code === 0 ? rest : { ...rest, drifted: true } };
}

interface RunResult {
  stdout: string;
  /** What the run wrote to stderr, for the engine, when the inputs ask for it. */
  messages: EngineMessage[];
}

/** The last `stderrLines` non-empty lines of a successful run's (scrubbed) stderr, as one message. */
export function stderrMessages(stderr: string): EngineMessage[] {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) return [];
  const shown = lines.slice(-stderrLines);
  const cut = lines.length - shown.length;
  const text = (cut > 0 ? [`(${cut} earlier lines not shown)`, ...shown] : shown).join("\n");
  return [{ severity: shown.some((l) => /^warning:/i.test(l)) ? "warning" : "info", text }];
}

/** Shows a line of a command still running on the resource (the engine's status column). */
export type Progress = (text: string) => void;

async function run(
  exec: Executor,
  conn: Connection,
  raw: Record<string, unknown>,
  command: string,
  progress?: Progress,
): Promise<RunResult> {
  const inputs = reveal(raw) as CommandInputs;
  let stdin: string | Buffer | undefined = inputs.stdin;
  if (inputs.stdinFile !== undefined) {
    try {
      stdin = fs.readFileSync(inputs.stdinFile);
    } catch (e) {
      throw new Error(`cannot read stdinFile ${inputs.stdinFile}: ${(e as Error).message}`);
    }
  }
  const timeoutSeconds = inputs.timeoutSeconds ?? 600;
  const secrets = secretStrings(raw);
  const show = inputs.logStderr === true ? progress : undefined;
  const res = await exec.exec(conn, command, {
    stdin,
    env: inputs.environment,
    timeoutSeconds,
    ...(show
      ? {
          onStderrLine: (line: string) => {
            const text = scrub(line, secrets).trimEnd();
            if (text.trim() !== "") show(text);
          },
        }
      : {}),
  });
  if (res.code !== 0) {
    const tail = scrub([res.stdout, res.stderr].join("\n"), secrets).trim().split("\n").slice(-100).join("\n");
    if (res.code === timedOutStatus) {
      throw new Error(`command on ${target(conn)} did not finish within ${timeoutSeconds}s and was stopped:\n${tail}`);
    }
    throw new Error(`remote command on ${target(conn)} exited with ${res.code}:\n${tail}`);
  }
  return {
    stdout: scrub(res.stdout, secrets),
    messages: inputs.logStderr === true ? stderrMessages(scrub(res.stderr, secrets)) : [],
  };
}

function outputs(news: Record<string, unknown>, stdout: unknown): Record<string, unknown> {
  const plain = reveal(news) as CommandInputs;
  const outs: Record<string, unknown> = { ...news };
  if (plain.captureStdout && stdout !== undefined) outs["stdout"] = stdout;
  return outs;
}

export async function createCommand(
  exec: Executor,
  conn: Connection,
  news: Record<string, unknown>,
  progress?: Progress,
): Promise<{ id: string; outs: Record<string, unknown>; messages: EngineMessage[] }> {
  const plain = reveal(news) as CommandInputs;
  const r = await run(exec, conn, news, plain.create, progress);
  return {
    id: `cmd-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    outs: outputs(news, r.stdout),
    messages: r.messages,
  };
}

export async function updateCommand(
  exec: Executor,
  conn: Connection,
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
  progress?: Progress,
): Promise<{ outs: Record<string, unknown>; messages: EngineMessage[] }> {
  if (changedKeys(olds, news, rerunKeys).length === 0 && olds["drifted"] !== true) {
    // Only stored settings changed: keep the last output, run nothing.
    return { outs: outputs(news, olds["stdout"] ?? undefined), messages: [] };
  }
  const plain = reveal(news) as CommandInputs;
  const r = await run(exec, conn, news, plain.update ?? plain.create, progress);
  return { outs: outputs(news, r.stdout), messages: r.messages };
}

export async function deleteCommand(exec: Executor, conn: Connection, props: Record<string, unknown>): Promise<void> {
  const plain = reveal(props) as CommandInputs;
  if (plain.delete) await run(exec, conn, props, plain.delete);
}
