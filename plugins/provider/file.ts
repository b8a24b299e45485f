// ayna:remote:File — a file on a host, written atomically with mode and owner.
import { createHash } from "node:crypto";
import type * as provider from "@pulumi/pulumi/provider";
import { parseStat, removeFile, statFile, writeFileAtomic } from "../../builders/files";
import { fileMode } from "../../builders/shell";
import { Connection, SshPool, validateConnection } from "./ssh";
import { reveal, scrub, secretStrings } from "./secrets";
import { changedKeys, Failure, requireString } from "./util";

export interface FileInputs {
  connection: Connection;
  path: string;
  content: string;
  /** @default "0644" */
  mode?: string;
  owner?: string;
  group?: string;
  /** Write through `sudo -n`. */
  sudo?: boolean;
}

export function sha256(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}

export function checkFile(news: Record<string, unknown>): Failure[] {
  const plain = reveal(news) as Partial<FileInputs>;
  const failures: Failure[] = validateConnection(plain.connection ?? {});
  failures.push(...requireString(plain, "path"));
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

export function diffFile(olds: Record<string, unknown>, news: Record<string, unknown>): provider.DiffResult {
  const plain = reveal(news) as FileInputs;
  const old = reveal(olds) as FileInputs & { sha256?: string };
  const replaces = changedKeys(olds, news, ["path", "connection.host", "connection.port"]).map((k) => k.split(".")[0]!);
  const changed = changedKeys(olds, news, ["owner", "group", "sudo", "connection"]);
  // Content is compared by hash so drift found by refresh (a new sha256) is repaired.
  const contentChanged =
    typeof plain.content !== "string" ||
    old.sha256 !== sha256(plain.content) ||
    (old.mode ?? "0644") !== fileMode(plain.mode ?? "0644");
  return { changes: replaces.length > 0 || changed.length > 0 || contentChanged, replaces, deleteBeforeReplace: false };
}

function opts(p: FileInputs) {
  return { sudo: p.sudo === true };
}

async function write(pool: SshPool, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
  const p = reveal(raw) as FileInputs;
  const mode = fileMode(p.mode ?? "0644");
  const cmd = writeFileAtomic({ path: p.path, mode, owner: p.owner, group: p.group }, opts(p));
  const res = await pool.exec(p.connection, cmd, { stdin: p.content, timeoutMs: 120_000 });
  if (res.code !== 0) {
    const why = scrub(res.stderr.trim(), secretStrings(raw)).split("\n").slice(-10).join("\n");
    throw new Error(`could not write ${p.path} on ${p.connection.host} (exit ${res.code}): ${why}`);
  }
  return { ...raw, mode, sha256: sha256(p.content) };
}

export async function createFile(pool: SshPool, news: Record<string, unknown>): Promise<provider.CreateResult> {
  const p = reveal(news) as FileInputs;
  const outs = await write(pool, news);
  return { id: `${p.connection.host}:${p.path}`, outs };
}

export async function updateFile(pool: SshPool, news: Record<string, unknown>): Promise<provider.UpdateResult> {
  return { outs: await write(pool, news) };
}

export async function deleteFile(pool: SshPool, props: Record<string, unknown>): Promise<void> {
  const p = reveal(props) as FileInputs;
  const res = await pool.exec(p.connection, removeFile(p.path, opts(p)), { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`could not remove ${p.path} on ${p.connection.host}: ${res.stderr.trim()}`);
}

/** Refresh: reads the file's hash, mode and owner so drift shows up and the next `up` repairs it. */
export async function readFile(
  pool: SshPool,
  id: string,
  props: Record<string, unknown>,
): Promise<provider.ReadResult> {
  const p = reveal(props) as FileInputs;
  const res = await pool.exec(p.connection, statFile(p.path, opts(p)), { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`could not read ${p.path} on ${p.connection.host}: ${res.stderr.trim()}`);
  const st = parseStat(res.stdout);
  if (!st) return { id: "", props: {} };
  const out: Record<string, unknown> = { ...props, sha256: st.sha256, mode: st.mode };
  if (p.owner !== undefined) out["owner"] = st.owner;
  if (p.group !== undefined) out["group"] = st.group;
  return { id, props: out };
}
