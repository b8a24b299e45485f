// For hosts that cannot reach PyPI (config `offline.enabled`): every wheel the
// app's lock needs on the hosts' Python and platform, and uv's own wheel,
// gathered on the deploying machine, where the index is reachable. The hosts
// then build their environment with no index at all. Kept under a key of what
// decides the set, like a made lock, so an unchanged app gathers nothing.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { LockError } from "../builders/dependencies";
import { xdgCacheHome } from "./archive";
import { runUv, UvPurpose } from "./lock";

/** The pip that gathers, run by uv on the hosts' Python so markers (python_version) are the hosts'. */
export const pipVersion = "25.1.1";

export type HostArch = "x86_64" | "aarch64";

export interface WheelOptions {
  /** The hosts' Python, MAJOR.MINOR. */
  python: string;
  arch: HostArch;
  /** uv release the hosts run; its wheel is gathered too. */
  uvVersion: string;
  /** @default "uv" (from PATH), or AYNA_UV */
  uv?: string;
  /** @default wheelCacheDir() */
  cacheDir?: string;
}

export interface Wheelhouse {
  /** Folder with the lock (pyproject.toml, uv.lock), requirements.txt (exported from it, with hashes), wheels/ and uv/. */
  dir: string;
  /** Gathered by this run (else kept from an earlier one). */
  fresh?: boolean;
}

/** `~/.cache/ayna-deploy/wheels` (XDG), or AYNA_WHEEL_DIR. */
export function wheelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env["AYNA_WHEEL_DIR"] || path.join(xdgCacheHome(env), "ayna-deploy", "wheels");
}

/**
 * Platform tags a Debian host's pip accepts for binary wheels: manylinux
 * 2014 (glibc 2.17) up to glibc 2.36 (Debian 12; Debian 13 has 2.41), so a
 * wheel chosen here installs on both.
 */
export function platformTags(arch: HostArch): string[] {
  const tags = [`manylinux2014_${arch}`];
  for (let minor = 17; minor <= 36; minor++) tags.push(`manylinux_2_${minor}_${arch}`);
  return tags;
}

/** `pip download` of exactly the given requirements for the hosts, as arguments after `pip`. */
export function pipDownloadArgs(
  dest: string,
  requirements: string[],
  o: Pick<WheelOptions, "python" | "arch">,
): string[] {
  const abi = `cp${o.python.replace(".", "")}`;
  return [
    "download",
    "--quiet",
    "--disable-pip-version-check",
    "--no-input",
    "--dest",
    dest,
    "--only-binary=:all:",
    "--no-deps",
    "--python-version",
    o.python,
    "--implementation",
    "cp",
    "--abi",
    abi,
    "--abi",
    "abi3",
    "--abi",
    "none",
    ...platformTags(o.arch).flatMap((t) => ["--platform", t]),
    ...requirements,
  ];
}

/** The key a wheelhouse is kept under: the lock, the hosts' Python and platform, uv's and pip's versions. */
export function wheelKey(lockDir: string, o: Pick<WheelOptions, "python" | "arch" | "uvVersion">): string {
  const h = createHash("sha256").update(`ayna-wheels 1\n${o.python}\n${o.arch}\n${o.uvVersion}\n${pipVersion}\n`);
  for (const f of ["pyproject.toml", "uv.lock"]) {
    const content = fs.readFileSync(path.join(lockDir, f));
    h.update(`${f}\n${content.length}\n`).update(content);
  }
  return h.digest("hex").slice(0, 32);
}

const gathering: UvPurpose = {
  key: "offline.enabled",
  missing:
    "gathering wheels for hosts without PyPI needs uv on this machine, which is not on PATH; install uv (`pip install uv`) or set AYNA_UV",
  timeoutMs: 1_200_000,
};

function run(uv: string, args: string[], cwd: string, what: string): string {
  const r = runUv(uv, args, cwd, gathering);
  if (r.status !== 0) {
    const text = (r.err || r.out).trimEnd().split("\n").slice(-12).join("\n");
    const hint = /no matching distribution|Could not find a version/i.test(text)
      ? " (a package with no wheel for the hosts' Python and platform: it would have to be built on a host, which cannot reach PyPI)"
      : "";
    throw new LockError("offline.enabled", `${what} failed${hint}:\n${text}`);
  }
  return r.out;
}

/** The wheels of the lock in `lockDir` (pyproject.toml + uv.lock) for the hosts, and uv's. */
export function gatherWheels(lockDir: string, o: WheelOptions): Wheelhouse {
  const cache = o.cacheDir ?? wheelCacheDir();
  const dir = path.join(cache, wheelKey(lockDir, o));
  if (fs.existsSync(path.join(dir, "requirements.txt"))) return { dir };
  const uv = o.uv ?? process.env["AYNA_UV"] ?? "uv";
  fs.mkdirSync(cache, { recursive: true, mode: 0o700 });
  const work = fs.mkdtempSync(path.join(cache, ".gather-"));
  try {
    // Exported from a copy: uv may leave files beside a project it reads.
    const project = path.join(work, "project");
    fs.mkdirSync(project);
    for (const f of ["pyproject.toml", "uv.lock"]) fs.copyFileSync(path.join(lockDir, f), path.join(project, f));
    const requirements = run(
      uv,
      [
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements-txt",
      ],
      project,
      "uv export",
    );
    fs.writeFileSync(path.join(work, "requirements.txt"), requirements);
    const pip = ["tool", "run", "--quiet", "--python", o.python, "--from", `pip==${pipVersion}`, "pip"];
    run(
      uv,
      [...pip, ...pipDownloadArgs(path.join(work, "wheels"), ["-r", path.join(work, "requirements.txt")], o)],
      work,
      `pip download of the lock's wheels for Python ${o.python} on ${o.arch}`,
    );
    run(uv, [...pip, ...pipDownloadArgs(path.join(work, "uv"), [`uv==${o.uvVersion}`], o)], work, "pip download of uv");
    // The lock goes with its wheels: the environment on the host keeps it (.ayna-lock/).
    for (const f of ["pyproject.toml", "uv.lock"]) fs.renameSync(path.join(project, f), path.join(work, f));
    fs.rmSync(project, { recursive: true, force: true });
    try {
      fs.renameSync(work, dir);
    } catch (e) {
      if (!fs.existsSync(path.join(dir, "requirements.txt"))) throw e;
    }
    return { dir, fresh: true };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
