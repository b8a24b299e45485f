// Deterministic archives of the app, built on the deploying machine: the same
// source gives the same bytes and so the same sha256, which is what triggers a
// release (content hashes, never timestamps).
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tar from "tar";

export interface Archive {
  /** Local path of the .tar.gz. */
  path: string;
  sha256: string;
  bytes: number;
  /** Every regular file and link in it: path -> hash of its mode and content (for the deploy plan). */
  files: Record<string, string>;
}

/** Paths never shipped in a release. */
export const excluded = [
  ".git",
  ".venv",
  "venv",
  "__pycache__",
  "*.pyc",
  ".pytest_cache",
  ".mypy_cache",
  ".ruff_cache",
  "staticfiles",
  "node_modules",
  ".env",
  ".env.*",
];

/** The user's cache folder: XDG_CACHE_HOME, else ~/.cache. */
export function xdgCacheHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache");
}

/**
 * Where archives wait for upload: private to the deploying user (0700, owned
 * by them), never a fixed path in a shared /tmp that another user could
 * create first and fill with an archive of their own. `AYNA_ARCHIVE_DIR`
 * overrides it; the default follows XDG (`~/.cache/ayna-deploy/archives`).
 */
export function archiveDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env["AYNA_ARCHIVE_DIR"] || path.join(xdgCacheHome(env), "ayna-deploy", "archives");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory()) throw new Error(`archive cache ${dir} is not a directory; remove it or set AYNA_ARCHIVE_DIR`);
  if (uid !== undefined && st.uid !== uid) {
    throw new Error(
      `archive cache ${dir} belongs to uid ${st.uid}, not to you (${uid}); remove it or set AYNA_ARCHIVE_DIR`,
    );
  }
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
  return dir;
}

/**
 * tar.gz of `dir` (or of `files` inside it), packed by node-tar rather than a
 * platform's tar: names sorted bytewise, directories before their contents,
 * mtimes 0, no owners, and git's modes (644, or 755 when any execute bit is
 * set; folders 755), so a checkout's umask does not matter. `sha256` is the
 * hash of the uncompressed tar, so it is the same on every machine: gzip's
 * bytes vary with the zlib build (Node's own picks its match hashing by CPU).
 *
 * An archive is remembered beside it by the stat data of what it holds: a run
 * whose files did not change since (a no-op `up`) reads none of them and
 * packs nothing. Entries changed less than `settleMs` (default 2 s) before a pack
 * are not remembered, so the next run packs again.
 */
export function buildArchive(
  dir: string,
  opts: { files?: string[]; exclude?: string[]; settleMs?: number } = {},
): Archive {
  if (!fs.existsSync(dir)) throw new Error(`app directory ${dir} does not exist (config key app.path)`);
  const started = Date.now();
  const entries = archiveEntries(dir, opts);
  const cache = archiveDir();
  const stamp = entriesStamp(entries);
  const memo = path.join(
    cache,
    `.archive-${createHash("sha256")
      .update(JSON.stringify([path.resolve(dir), opts.files ?? null, opts.files ? null : (opts.exclude ?? excluded)]))
      .digest("hex")
      .slice(0, 32)}`,
  );
  const remembered = readMemo(memo, stamp.digest);
  if (remembered) return remembered;
  const archive = packArchive(dir, entries, cache);
  // Only once every entry is older than the clock's tick: a write in the tick
  // of the stat just taken could keep its size and times and go unseen.
  if (stamp.newestMs < started - (opts.settleMs ?? 2000)) {
    const tmp = `${memo}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ stamp: stamp.digest, archive }), { mode: 0o600 });
    fs.renameSync(tmp, memo);
  }
  return archive;
}

/**
 * The stat data of every entry (device, inode, size, mtime and ctime, which
 * no `touch` can set back), hashed, and the newest of those times: what a
 * remembered archive of the same entries must still match, as git's index
 * trusts stat data instead of reading every file again.
 */
function entriesStamp(entries: Entry[]): { digest: string; newestMs: number } {
  const h = createHash("sha256");
  let newest = 0n;
  for (const e of entries) {
    const st = e.stat;
    h.update(`${e.name}\0${e.kind}\0${e.mode}\0${[st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(":")}\n`);
    for (const t of [st.mtimeNs, st.ctimeNs]) if (t > newest) newest = t;
  }
  return { digest: h.digest("hex"), newestMs: Number(newest / 1_000_000n) };
}

/** The archive remembered for this stamp, if its file is still in the cache. */
function readMemo(memo: string, stamp: string): Archive | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(memo, "utf8")) as { stamp?: string; archive?: Archive };
    const a = m.archive;
    if (m.stamp !== stamp || !a || path.basename(a.path) !== `${a.sha256}.tar.gz`) return undefined;
    return fs.statSync(a.path).size === a.bytes ? a : undefined;
  } catch {
    return undefined;
  }
}

function packArchive(dir: string, entries: Entry[], cache: string): Archive {
  const tmp = path.join(cache, `.build-${process.pid}-${Date.now()}`);
  try {
    tar.c(
      {
        sync: true,
        file: `${tmp}.tar`,
        cwd: dir,
        portable: true,
        mtime: new Date(0),
        noDirRecurse: true,
        onWriteEntry: (e) => {
          if (e.stat) e.stat.mode = (e.stat.mode & ~0o7777) | packedMode(e.stat);
        },
      },
      entries.map((e) => e.name),
    );
    const raw = fs.readFileSync(`${tmp}.tar`);
    const sha256 = createHash("sha256").update(raw).digest("hex");
    const gz = gzipSync(raw, { level: 6 });
    fs.writeFileSync(`${tmp}.tar.gz`, gz, { mode: 0o600 });
    const final = path.join(cache, `${sha256}.tar.gz`);
    fs.renameSync(`${tmp}.tar.gz`, final);
    return { path: final, sha256, bytes: gz.length, files: fileHashes(dir, entries) };
  } finally {
    fs.rmSync(`${tmp}.tar`, { force: true });
    fs.rmSync(`${tmp}.tar.gz`, { force: true });
  }
}

interface Entry {
  name: string;
  kind: "dir" | "file" | "link";
  /** The mode it is packed with (packedMode). */
  mode: number;
  /** Its lstat at listing time (what a remembered archive is keyed by). */
  stat: fs.BigIntStats;
}

/** Whether a name matches one of the `*` and `?` globs, as tar's --exclude matches each path component. */
function globsMatcher(patterns: string[]): (name: string) => boolean {
  const res = patterns.map((p) => {
    const re = p
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".");
    return new RegExp(`^${re}$`, "s");
  });
  return (name) => res.some((re) => re.test(name));
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * What goes in the archive, in order: with `files`, those names (a folder with
 * all it holds); else everything under `dir` but the excluded names. Sockets,
 * pipes and devices are left out.
 */
export function archiveEntries(dir: string, opts: { files?: string[]; exclude?: string[] } = {}): Entry[] {
  const isExcluded = globsMatcher(opts.files ? [] : (opts.exclude ?? excluded));
  const out: Entry[] = [];
  const visit = (name: string) => {
    let stat: fs.BigIntStats;
    try {
      stat = fs.lstatSync(path.join(dir, name), { bigint: true });
    } catch {
      throw new Error(`${path.join(dir, name)} does not exist: it cannot be packed`);
    }
    const mode = packedMode(stat);
    if (stat.isSymbolicLink()) out.push({ name, kind: "link", mode, stat });
    else if (stat.isFile()) out.push({ name, kind: "file", mode, stat });
    else if (stat.isDirectory()) {
      out.push({ name, kind: "dir", mode, stat });
      for (const child of fs.readdirSync(path.join(dir, name)).sort(byteOrder)) {
        if (!isExcluded(child)) visit(`${name}/${child}`);
      }
    }
  };
  const top = opts.files ?? fs.readdirSync(dir).filter((n) => !isExcluded(n));
  for (const name of [...top].sort(byteOrder)) visit(name);
  return out;
}

/** The mode an entry is packed with: git's two for files, 755 for folders and links. */
function packedMode(st: fs.Stats | fs.BigIntStats): number {
  if (st.isFile()) return Number(st.mode) & 0o111 ? 0o755 : 0o644;
  return 0o755;
}

/** The tar's 7-digit octal mode field. */
function modeField(mode: number): string {
  return mode.toString(8).padStart(7, "0");
}

/** path -> sha256 of mode, type and content (16 hex digits), for every file and link packed. */
function fileHashes(dir: string, entries: Entry[]): Record<string, string> {
  const files: Record<string, string> = {};
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.kind === "file") {
      files[e.name] = createHash("sha256")
        .update(`${modeField(e.mode)} file `)
        .update(fs.readFileSync(full))
        .digest("hex")
        .slice(0, 16);
    } else if (e.kind === "link") {
      files[e.name] = createHash("sha256")
        .update(`${modeField(e.mode)} link ${fs.readlinkSync(full)}`)
        .digest("hex")
        .slice(0, 16);
    }
  }
  return files;
}

/** The git commit that last touched `dir`, or undefined outside git / with uncommitted changes there. */
export function gitShaOf(dir: string): string | undefined {
  try {
    const dirty = execFileSync("git", ["-C", dir, "status", "--porcelain", "--", "."], {
      stdio: ["ignore", "pipe", "ignore"],
    })
      .toString()
      .trim();
    if (dirty !== "") return undefined;
    const sha = execFileSync("git", ["-C", dir, "log", "-1", "--format=%H", "--", "."], {
      stdio: ["ignore", "pipe", "ignore"],
    })
      .toString()
      .trim();
    return /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

/**
 * sha256 of a (large) file, such as a base image tarball, remembered beside
 * the archives by its path, inode, size, mtime and ctime, the way git's index
 * trusts stat data: a program start re-reads the file only when one of them
 * changed, not on every run.
 */
export function fileDigest(file: string, env: NodeJS.ProcessEnv = process.env): string {
  const abs = path.resolve(file);
  const statStamp = () => {
    const st = fs.statSync(abs, { bigint: true });
    return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(":");
  };
  const stamp = statStamp();
  const memo = path.join(archiveDir(env), `.digest-${createHash("sha256").update(abs).digest("hex").slice(0, 32)}`);
  try {
    const [seen, sha256] = fs.readFileSync(memo, "utf8").split("\n");
    if (seen === stamp && /^[0-9a-f]{64}$/.test(sha256 ?? "")) return sha256!;
  } catch {
    // not remembered yet
  }
  const h = createHash("sha256");
  const fd = fs.openSync(abs, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  const sha256 = h.digest("hex");
  // The file may have changed while it was read: remember only what was stat'ed before and after alike.
  if (statStamp() === stamp) {
    const tmp = `${memo}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${stamp}\n${sha256}\n`, { mode: 0o600 });
    fs.renameSync(tmp, memo);
  }
  return sha256;
}
