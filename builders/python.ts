// uv on the host, and one Python environment per lockfile: keyed by its hash,
// built once, reused by every release (and rollback) with the same lockfile.
import { paths } from "../standard/paths";
import { and, argv, or, shell } from "./shell";

export function uvDir(version: string): string {
  return `/opt/ayna/.tools/uv-${version}`;
}

export function uvBinary(version: string): string {
  return `${uvDir(version)}/bin/uv`;
}

/** Trust the host's CA store (pip and uv otherwise bring their own). */
const tlsEnv = "export PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt";

/** Exits 0 when exactly this uv is installed. `uv --version` prints "uv 0.13.9 (<commit> <date>)". */
function uvPresent(version: string): string {
  return `${argv(uvBinary(version), "--version")} 2>/dev/null | cut -d' ' -f2 | grep -qx ${argv(version)}`;
}

/** The steps of a fresh venv for uv, pip installing it from `source` (pip's arguments, as shell words), then checked. */
function uvVenvInstall(version: string, source: string): string[] {
  const dir = uvDir(version);
  return [
    argv("rm", "-rf", dir),
    argv("python3", "-m", "venv", dir),
    `${argv(`${dir}/bin/pip`, "install", "--quiet", "--disable-pip-version-check", "--no-input")} ${source}`,
    uvPresent(version),
  ];
}

/** Installs the pinned uv from PyPI into its own venv, unless that exact version is there. */
export function installUvCommand(version: string): string {
  const install = and(...uvVenvInstall(version, argv(`uv==${version}`)));
  return shell(and("set -eu", tlsEnv, or(uvPresent(version), `{ ${install}; }`)), { sudo: true });
}

/**
 * Installs the pinned uv from its wheel on stdin (a tar.gz holding uv/<wheel>,
 * checked against its sha256 first), for a host that cannot reach PyPI.
 */
export function installUvOfflineCommand(version: string, archiveSha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(archiveSha256)) throw new Error(`invalid archive checksum ${archiveSha256}`);
  const install = and(
    "work=$(mktemp -d)",
    `trap 'rm -rf "$work"' EXIT`,
    'cat >"$work/uv.tar.gz"',
    verifyChecksum('"$work/uv.tar.gz"', archiveSha256, "uv wheel archive"),
    'tar -xzf "$work/uv.tar.gz" -C "$work" uv',
    ...uvVenvInstall(version, `${argv("--no-index", "--no-deps")} "$work"/uv/*.whl`),
  );
  const skip = and(uvPresent(version), "cat >/dev/null");
  return shell(and("set -eu", or(skip, `{ ${install}; }`)), { sudo: true });
}

function verifyChecksum(file: string, sha256: string, what: string): string {
  return and(
    // The archive's hash is that of its uncompressed tar (local/archive.ts); a gzip error spoils it.
    `got=$({ gzip -dc <${file} || echo damaged; } | sha256sum | cut -d" " -f1)`,
    `{ [ "$got" = ${argv(sha256)} ] || { echo "${what}: sha256 of its tar $got, expected ${sha256} (damaged upload); nothing installed" >&2; exit 1; }; }`,
  );
}

export interface EnvSpec {
  project: string;
  hash: string;
  python: string;
  uvVersion: string;
  /**
   * sha256 of the archive on stdin, checked before it is unpacked:
   * pyproject.toml + uv.lock, and with `offline` also requirements.txt
   * (exported from the lock, with hashes) and wheels/.
   */
  archiveSha256: string;
  /** Install from the uploaded wheels alone, never from an index (a host without PyPI). @default false */
  offline?: boolean;
  /** The service user: packages' build steps run as it, never as root. */
  user: string;
  group: string;
}

/**
 * Builds venvs/<hash> from pyproject.toml + uv.lock (a tar.gz on stdin, its
 * checksum verified first) with `uv sync --frozen`, run as the service user so
 * no package's build step runs as root; the finished environment, with the
 * two files it was built from in .ayna-lock/, is then root's, read-only to
 * the services. A finished environment carries
 * `.ayna-complete`; one without it (an interrupted build) is rebuilt.
 */
export function buildEnvCommand(s: EnvSpec): string {
  if (!/^[0-9a-f]{16,64}$/.test(s.hash)) throw new Error(`invalid environment hash ${s.hash}`);
  if (!/^[0-9a-f]{64}$/.test(s.archiveSha256)) throw new Error(`invalid archive checksum ${s.archiveSha256}`);
  const target = `${paths.venvs(s.project)}/${s.hash}`;
  const complete = `${target}/.ayna-complete`;
  const cache = `${paths.root(s.project)}/.uv-cache`;
  const owner = `${s.user}:${s.group}`;
  const asUser = [
    "runuser",
    "-u",
    s.user,
    "--",
    "env",
    `HOME=${cache}`,
    `UV_PROJECT_ENVIRONMENT=${target}`,
    "UV_PYTHON_DOWNLOADS=never",
    "UV_LINK_MODE=copy",
    `UV_CACHE_DIR=${cache}`,
    uvBinary(s.uvVersion),
  ];
  const build = and(
    argv("rm", "-rf", target),
    "work=$(mktemp -d)",
    `trap 'rm -rf "$work"' EXIT`,
    'cat >"$work/lock.tar.gz"',
    verifyChecksum('"$work/lock.tar.gz"', s.archiveSha256, "lockfile archive"),
    s.offline
      ? 'tar -xzf "$work/lock.tar.gz" -C "$work" pyproject.toml uv.lock requirements.txt wheels'
      : 'tar -xzf "$work/lock.tar.gz" -C "$work" pyproject.toml uv.lock',
    argv("install", "-d", "-o", s.user, "-g", s.group, target, cache),
    argv("chown", "-R", owner, cache) + ' "$work"',
    ...(s.offline
      ? [
          // No index at all: the venv, then exactly the exported pins, each wheel checked against its hash.
          // --no-config: without a --project, uv would look for a uv.toml from the login's cwd, which the service user cannot read.
          argv(...asUser, "venv", "--quiet", "--no-config", "--allow-existing", "--python", s.python, target),
          argv(
            ...asUser,
            "pip",
            "install",
            "--quiet",
            "--no-config",
            "--offline",
            "--no-index",
            "--require-hashes",
            "--python",
            `${target}/bin/python`,
          ) + ' --find-links "$work/wheels" -r "$work/requirements.txt"',
        ]
      : [
          argv(...asUser, "sync", "--quiet", "--frozen", "--no-dev", "--no-install-project", "--python", s.python) +
            ' --project "$work"',
        ]),
    // The lock the environment was built from stays with it (the release's .venv/.ayna-lock/).
    argv("install", "-d", `${target}/.ayna-lock`),
    'cp "$work/pyproject.toml" "$work/uv.lock" ' + argv(`${target}/.ayna-lock/`),
    // uv leaves some files (its .lock) writable by everyone; the services only read.
    argv("chown", "-R", "root:root", target),
    argv("chmod", "-R", "go-w", target),
    'rm -rf "$work"',
    argv("touch", complete),
  );
  const reuse = and(
    argv("test", "-f", complete),
    "cat >/dev/null",
    argv("echo", `environment ${s.hash} already built`),
  );
  return shell(and("set -eu", tlsEnv, or(reuse, `{ ${build} || { rm -rf ${argv(target)}; exit 1; }; }`)), {
    sudo: true,
  });
}
