// Deterministic archives of the app, built on the deploying machine: the same
// source gives the same bytes and so the same sha256, which is what triggers a
// release (content hashes, never timestamps).
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

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

/**
 * Where archives wait for upload: private to the deploying user (0700, owned
 * by them), never a fixed path in a shared /tmp that another user could
 * create first and fill with an archive of their own. `AYNA_ARCHIVE_DIR`
 * overrides it; the default follows XDG (`~/.cache/ayna-deploy/archives`).
 */
export function archiveDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache");
  const dir = env["AYNA_ARCHIVE_DIR"] || path.join(base, "ayna-deploy", "archives");
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

export function sha256File(p: string): string {
  return createHash("sha256").update(fs.readFileSync(p)).digest("hex");
}

/**
 * tar.gz of `dir` (or of `files` inside it): sorted names, zero mtimes and
 * owners, no gzip timestamp.
 */
export function buildArchive(dir: string, opts: { files?: string[]; exclude?: string[] } = {}): Archive {
  if (!fs.existsSync(dir)) throw new Error(`app directory ${dir} does not exist (config key app.path)`);
  const tmp = path.join(archiveDir(), `.build-${process.pid}-${Date.now()}.tar.gz`);
  const tarArgs = [
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mode=u+rw,go-w",
    "--format=gnu",
    ...(opts.files ? [] : (opts.exclude ?? excluded).map((e) => `--exclude=${e}`)),
    "-C",
    dir,
    "-cf",
    "-",
    ...(opts.files ?? ["."]),
  ];
  const tar = execFileSync("tar", tarArgs, { maxBuffer: 1024 * 1024 * 1024 });
  const gz = execFileSync("gzip", ["-n", "-6"], { input: tar, maxBuffer: 1024 * 1024 * 1024 });
  fs.writeFileSync(tmp, gz, { mode: 0o600 });
  const sha256 = sha256File(tmp);
  const final = path.join(archiveDir(), `${sha256}.tar.gz`);
  fs.renameSync(tmp, final);
  return { path: final, sha256, bytes: gz.length, files: tarFiles(tar) };
}

function field(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? raw.length : end).toString("utf8");
}

/**
 * The entries of an uncompressed tar stream as written by buildArchive
 * (GNU format: 512-byte headers, long names in a preceding 'L' entry):
 * path (without "./") -> sha256 of mode, type and content, 16 hex digits.
 */
export function tarFiles(tar: Buffer): Record<string, string> {
  const files: Record<string, string> = {};
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(field(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === "L") {
      longName = field(body, 0, size);
      continue;
    }
    const name = (longName ?? field(header, 0, 100)).replace(/^\.\//, "");
    longName = undefined;
    const mode = field(header, 100, 8).trim();
    if (type === "0" || type === "\0") {
      files[name] = createHash("sha256").update(`${mode} file `).update(body).digest("hex").slice(0, 16);
    } else if (type === "2") {
      files[name] = createHash("sha256")
        .update(`${mode} link ${field(header, 157, 100)}`)
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
