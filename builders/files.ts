// Command builders for files on a host. Content always travels on stdin, so it
// never appears in a process argument list.
import { and, argv, fileMode, shell } from "./shell";

export interface FileTarget {
  /** Absolute path of the file on the host. */
  path: string;
  /** Octal mode, e.g. "0644". */
  mode: string;
  /** Owner user name; omitted keeps the connecting user's. */
  owner?: string;
  /** Owner group; omitted keeps the owner's primary group. */
  group?: string;
}

export function assertAbsolutePath(p: string): void {
  if (!p.startsWith("/") || p.includes("\0") || p.includes("\n") || /(^|\/)\.\.(\/|$)/.test(p)) {
    throw new Error(`invalid path ${JSON.stringify(p)}: must be absolute, one line, without ".." segments`);
  }
}

export function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

export function basename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/**
 * Writes stdin to `path` atomically: a private temp file in the same directory
 * gets the content, owner and mode first, then one rename puts it in place. A
 * reader sees the old file or the new one, never a partial one, and a failure
 * leaves no temp file behind.
 */
export function writeFileAtomic(t: FileTarget, opts: { sudo?: boolean } = {}): string {
  assertAbsolutePath(t.path);
  const mode = fileMode(t.mode);
  const owner = t.owner ? (t.group ? `${t.owner}:${t.group}` : t.owner) : "";
  const dir = dirname(t.path);
  const steps = and(
    argv("mkdir", "-p", dir),
    // mktemp creates the file 0600, so the content is never readable by others.
    "tmp=$(" + argv("mktemp", "-p", dir, `.ayna-tmp.${basename(t.path)}.XXXXXX`) + ")",
    'cat > "$tmp"',
    owner ? argv("chown", owner) + ' "$tmp"' : "",
    argv("chmod", mode) + ' "$tmp"',
    'mv -f "$tmp" ' + argv(t.path),
  );
  return shell(`${steps} || { rm -f "$tmp"; exit 1; }`, opts);
}

/**
 * Removes the file; a missing file is fine. Given the hash it was written
 * with, it removes only that content: a file something else has rewritten
 * since (the release tool taking over a unit or env file) is left in place.
 */
export function removeFile(path: string, opts: { sudo?: boolean; ifSha256?: string } = {}): string {
  assertAbsolutePath(path);
  if (opts.ifSha256 === undefined) return shell(argv("rm", "-f", path), opts);
  if (!/^[0-9a-f]{64}$/.test(opts.ifSha256)) throw new Error(`invalid sha256 ${JSON.stringify(opts.ifSha256)}`);
  const same = `[ "$(sha256sum < ${argv(path)} | cut -d' ' -f1)" = ${argv(opts.ifSha256)} ]`;
  return shell(
    `if [ ! -e ${argv(path)} ] || ${same}; then ${argv("rm", "-f", path)}; ` +
      `else echo ${argv(`left ${path} in place: rewritten since this resource wrote it`)} >&2; fi`,
    opts,
  );
}

/**
 * Prints two lines, `<sha256>  <path>` and `<mode> <owner> <group>`, or
 * `absent` when there is no such file. Refresh uses it to see drift.
 */
export function statFile(path: string, opts: { sudo?: boolean } = {}): string {
  assertAbsolutePath(path);
  const present = and(argv("test", "-f", path), argv("sha256sum", path), argv("stat", "-c", "%a %U %G", path));
  return shell(`{ ${present}; } || echo absent`, opts);
}

export interface FileStat {
  sha256: string;
  mode: string;
  owner: string;
  group: string;
}

/** Parses the output of `statFile`; undefined when the file is absent. */
export function parseStat(out: string): FileStat | undefined {
  const lines = out.trim().split("\n");
  if (lines.length === 1 && lines[0] === "absent") return undefined;
  const [shaLine, statLine] = lines;
  const sha256 = shaLine?.split(/\s+/)[0] ?? "";
  const [mode, owner, group] = (statLine ?? "").split(" ");
  if (!/^[0-9a-f]{64}$/.test(sha256) || !mode || !owner || !group) {
    throw new Error(`unexpected stat output: ${JSON.stringify(out.slice(0, 200))}`);
  }
  return { sha256, mode: mode.padStart(4, "0"), owner, group };
}
