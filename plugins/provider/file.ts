// ayna:remote:File — a file on a host, written atomically with mode and owner.
import { createHash } from "node:crypto";
import { parseStat, removeFile, statFile, writeFileAtomic } from "../../builders/files";
import { fileMode } from "../../builders/shell";
import { Connection, Executor, Failure, target } from "./ssh";
import { containsUnknown, reveal, scrub, secretStrings } from "./secrets";
import { changed, DiffResult, propertyDiff, requireString, withIdentity } from "./util";

export interface FileInputs {
  path: string;
  content: string;
  /** @default "0644" */
  mode?: string;
  owner?: string;
  group?: string;
  /** Write through `sudo -n`. */
  sudo?: boolean;
  /** Set by the provider: the pinned key of the host the file is on. */
  hostIdentity?: string;
}

export function sha256(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}

export function checkFile(news: Record<string, unknown>): Failure[] {
  const plain = reveal(news) as Partial<FileInputs>;
  const failures: Failure[] = requireString(plain, "path");
  if (typeof plain.content !== "string") failures.push({ property: "content", reason: "required (a string)" });
  if (typeof plain.path === "string" && !plain.path.startsWith("/")) {
    failures.push({ property: "path", reason: "must be absolute" });
  }
  try {
    fileMode(plain.mode ?? "0644");
  } catch (e) {
    failures.push({ property: "mode", reason: (e as Error).message });
  }
  return failures;
}

export function diffFile(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  // Another path is another file: written first, then the old one removed.
  const d = propertyDiff(olds, news, ["path", "owner", "group", "sudo"], ["path"]);
  const plain = reveal(news) as FileInputs;
  const old = reveal(olds) as FileInputs & { sha256?: string };
  // Content is compared by hash so drift found by refresh (a new sha256) is repaired.
  if (
    typeof plain.content !== "string" ||
    old.sha256 !== sha256(plain.content) ||
    changed(olds["content"], news["content"])
  ) {
    d.detailedDiff["content"] = "update";
  }
  if (containsUnknown(news["mode"]) || (old.mode ?? "0644") !== fileMode(plain.mode ?? "0644")) {
    d.detailedDiff["mode"] = "update";
  }
  return withIdentity(d, olds, news);
}

function opts(p: FileInputs) {
  return { sudo: p.sudo === true };
}

async function write(exec: Executor, conn: Connection, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
  const p = reveal(raw) as FileInputs;
  const mode = fileMode(p.mode ?? "0644");
  const cmd = writeFileAtomic({ path: p.path, mode, owner: p.owner, group: p.group }, opts(p));
  const res = await exec.exec(conn, cmd, { stdin: p.content, timeoutSeconds: 120 });
  if (res.code !== 0) {
    const why = scrub(res.stderr.trim(), secretStrings(raw)).split("\n").slice(-10).join("\n");
    throw new Error(`could not write ${p.path} on ${target(conn)} (exit ${res.code}): ${why}`);
  }
  return { ...raw, mode, sha256: sha256(p.content), writes: 1 };
}

export async function createFile(
  exec: Executor,
  conn: Connection,
  news: Record<string, unknown>,
): Promise<{ id: string; outs: Record<string, unknown> }> {
  const p = reveal(news) as FileInputs;
  const outs = await write(exec, conn, news);
  return { id: p.path, outs };
}

export async function updateFile(
  exec: Executor,
  conn: Connection,
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
): Promise<{ outs: Record<string, unknown> }> {
  const d = diffFile(olds, news);
  if (d.diffs.every((k) => k === "hostIdentity")) {
    // Only the host's identity was learned: the file on it is as it was.
    return { outs: { ...news, mode: olds["mode"], sha256: olds["sha256"], writes: olds["writes"] } };
  }
  // A count of writes: what was rewritten (drift repaired, same content) is news to those it feeds.
  const writes = (typeof olds["writes"] === "number" ? (olds["writes"] as number) : 0) + 1;
  return { outs: { ...(await write(exec, conn, news)), writes } };
}

export async function deleteFile(exec: Executor, conn: Connection, props: Record<string, unknown>): Promise<void> {
  const p = reveal(props) as FileInputs;
  // The hash this resource last wrote (or refresh last saw): only that content is removed.
  const written = reveal(props["sha256"]);
  const sha = typeof written === "string" ? written : undefined;
  const res = await exec.exec(conn, removeFile(p.path, { ...opts(p), ifSha256: sha }), { timeoutSeconds: 60 });
  if (res.code !== 0) throw new Error(`could not remove ${p.path} on ${target(conn)}: ${res.stderr.trim()}`);
}

/** Refresh: reads the file's hash, mode and owner so drift shows up and the next `up` repairs it. */
export async function readFile(
  exec: Executor,
  conn: Connection,
  id: string,
  props: Record<string, unknown>,
): Promise<{ id: string; props: Record<string, unknown> }> {
  const p = reveal(props) as FileInputs;
  const res = await exec.exec(conn, statFile(p.path, opts(p)), { timeoutSeconds: 60 });
  if (res.code !== 0) throw new Error(`could not read ${p.path} on ${target(conn)}: ${res.stderr.trim()}`);
  const st = parseStat(res.stdout);
  if (!st) return { id: "", props: {} };
  const out: Record<string, unknown> = { ...props, sha256: st.sha256, mode: st.mode };
  if (p.owner !== undefined) out["owner"] = st.owner;
  if (p.group !== undefined) out["group"] = st.group;
  return { id, props: out };
}
