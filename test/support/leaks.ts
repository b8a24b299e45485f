// Looks for secrets where they must not be: in text the test has collected and
// in files, on the deploying machine. A leak is reported as "<secret name> in
// <place>", never with the secret itself. Each secret is searched as is and in
// base64 (the form in which env files travel), at each of the three byte
// alignments so a secret inside a longer base64 string is found too.
// startProcSampler collects the command lines of every process on this
// machine (test hosts' included) while a test runs, for findLeaks to search.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Secret name -> value. Values must be single-line and not empty. */
export type Secrets = Record<string, string>;

interface Needle {
  name: string;
  text: string;
}

/** The part of base64(k bytes + value) that depends on the value's bytes alone, for k = 0, 1, 2. */
export function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value, "utf8");
  const forms: string[] = [];
  for (const k of [0, 1, 2]) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString("base64");
    const start = Math.ceil((8 * k) / 6);
    const end = Math.floor((8 * (k + bytes.length)) / 6);
    if (end - start >= 8) forms.push(b64.slice(start, end));
  }
  return forms;
}

function needles(secrets: Secrets): Needle[] {
  const out: Needle[] = [];
  for (const [name, value] of Object.entries(secrets)) {
    if (value === "" || value.includes("\n")) throw new Error(`secret ${name}: must be one non-empty line`);
    out.push({ name, text: value });
    for (const text of base64Forms(value)) out.push({ name: `${name} (base64)`, text });
  }
  return out;
}

/** The lines to give `grep -F -f`: each secret, and its base64 forms. */
export function grepPatterns(secrets: Secrets): string {
  return (
    needles(secrets)
      .map((n) => n.text)
      .join("\n") + "\n"
  );
}

/** TreeHits from what `grep -aoZ -F -f <grepPatterns>` printed: "file\0match" lines. */
export function hitsFromMatches(out: string, secrets: Secrets): TreeHits {
  const byText = new Map(needles(secrets).map((n) => [n.text, n.name]));
  const hits: TreeHits = {};
  for (const line of out.split("\n")) {
    const [file, match] = line.split("\0");
    const name = match === undefined ? undefined : byText.get(match);
    if (file && name && !hits[name]?.includes(file)) (hits[name] ??= []).push(file);
  }
  return hits;
}

/** "<secret> in <place>" for each secret (or its base64) found in each haystack. */
export function findLeaks(haystacks: Record<string, string>, secrets: Secrets): string[] {
  const leaks = new Set<string>();
  const all = needles(secrets);
  for (const [place, text] of Object.entries(haystacks)) {
    for (const n of all) if (text.includes(n.text)) leaks.add(`${n.name} in ${place}`);
  }
  return [...leaks];
}

/** Secret name (with " (base64)" for the encoded form) -> files that hold it. */
export type TreeHits = Record<string, string[]>;

/**
 * Every regular file under `dir` (not following symlinks, not crossing into
 * other file systems) that holds a secret, by secret. `newer`: only files
 * modified after that file was. `prune`: paths not to enter. The patterns go
 * to grep in a 0600 file, never on a command line.
 */
export async function grepTree(
  dir: string,
  secrets: Secrets,
  opts: { newer?: string; prune?: string[] } = {},
): Promise<TreeHits> {
  const all = needles(secrets);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "leaks-"));
  try {
    const patterns = path.join(tmp, "patterns");
    fs.writeFileSync(patterns, grepPatterns(secrets), { mode: 0o600 });
    const prune = [...(opts.prune ?? []), tmp].flatMap((p) => ["-path", p, "-prune", "-o"]);
    const find = ["find", dir, "-xdev", ...prune, "-type", "f", ...(opts.newer ? ["-newer", opts.newer] : [])];
    // One pass over the tree finds the files with any secret; then each of those few files is read here.
    const files = await run("sh", ["-c", `"$@" -print0 | xargs -0r grep -alFZ -f "${patterns}" --`, "sh", ...find]);
    const hits: TreeHits = {};
    for (const file of files.split("\0").filter(Boolean)) {
      let content: Buffer;
      try {
        content = fs.readFileSync(file);
      } catch {
        continue; // gone since grep read it
      }
      for (const n of all) {
        if (content.includes(n.text)) (hits[n.name] ??= []).push(path.relative(dir, file));
      }
    }
    for (const list of Object.values(hits)) list.splice(0, list.length, ...new Set(list.sort()));
    return hits;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** "<secret> in <where> <file>" for each hit not in `allowed` (paths relative to the tree). */
export function treeLeaks(hits: TreeHits, where: string, allowed: string[] = []): string[] {
  return Object.entries(hits).flatMap(([name, files]) =>
    files.filter((f) => !allowed.includes(f)).map((f) => `${name} in ${where} ${f}`),
  );
}

/** Runs a command; its stdout. Fails on any complaint but a file that vanished during the walk. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", () => {
      const complaints = stderr.split("\n").filter((l) => l && !/No such file or directory$/.test(l));
      if (complaints.length) reject(new Error(`${cmd} ${args.join(" ")}:\n${complaints.join("\n")}`));
      else resolve(stdout);
    });
  });
}

/** What procsample.py saw: distinct (pid, command line) pairs and command lines, per machine. */
export interface ProcSample {
  rounds: number;
  processes: { host: number; machine: number };
  cmdlines: { host: string[]; machine: string[] };
  dropped: number;
}

/**
 * Starts sampling every process's command line (every ~20 ms) on this machine;
 * `stop` ends it and returns what it saw. The sampler gets nothing secret:
 * no arguments, and an environment of PATH alone.
 */
export async function startProcSampler(): Promise<{ stop(): Promise<ProcSample> }> {
  const child = spawn("python3", [path.join(__dirname, "procsample.py")], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code));
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: string) => {
      stdout += d;
      if (stdout.startsWith("ready\n")) resolve();
    });
    closed.then(() => reject(new Error(`procsample.py ended before its first round:\n${stderr}`)), reject);
  });
  return {
    async stop(): Promise<ProcSample> {
      child.stdin.end();
      const code = await closed;
      if (code !== 0) throw new Error(`procsample.py exited ${code}:\n${stderr}`);
      return JSON.parse(stdout.slice("ready\n".length)) as ProcSample;
    },
  };
}
