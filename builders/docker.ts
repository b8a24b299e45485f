// Docker mode (the Docker standard, ../shared/standard/002-004): the engine's
// settings, the release image's Dockerfile, the env-file launcher inside it,
// and the options every container runs with. Pure: the release tool
// (ayna-release.sh with ayna-docker.sh) runs them on the host.
import { paths } from "../standard/paths";
import { and, argv, shell } from "./shell";
import { writeFileAtomic } from "./files";
import { serverCommand, ServiceRole, UnitSpec } from "./units";
import { uvicornWorker } from "./uvicornWorker";

/** Debian's Docker engine, and its CLI (a package of its own on Debian 13, only recommended by docker.io). */
export const dockerPackages = ["docker.io", "docker-cli"];

export const daemonConfigPath = "/etc/docker/daemon.json";

/** Inside every release image: the environment the host's uv built, and the app. */
export const imagePaths = {
  venv: "/opt/venv",
  app: "/app",
  launcher: "/usr/local/lib/ayna-env.py",
  /** Where a container sees the project's shared/ directory (bind-mounted read-only), and in it its env file. */
  shared: "/run/ayna/shared",
  /** The host's socket directory, where web and api listen (bind-mounted). */
  sockets: "/run/ayna/sockets",
  envFile: (stage: string) => `/run/ayna/shared/.env.${stage}`,
} as const;

export interface EngineSpec {
  /** json-file rotation: the size of one file, e.g. "10m". */
  logMaxSize: string;
  /** json-file rotation: files kept per container. */
  logMaxFiles: number;
}

/**
 * daemon.json: JSON logs with rotation (the Docker standard's log strategy),
 * and live-restore, so a restart of the engine (a new daemon.json, an
 * upgrade) does not stop the containers.
 */
export function renderDaemonConfig(s: EngineSpec): string {
  const config = {
    "log-driver": "json-file",
    "log-opts": { "max-size": s.logMaxSize, "max-file": String(s.logMaxFiles) },
    "live-restore": true,
  };
  return JSON.stringify(config, null, 2) + "\n";
}

/**
 * Puts daemon.json (on stdin) in place; the engine restarts only when it
 * changed, then must answer `docker info` within a minute.
 */
export function configureEngineCommand(): string {
  const write = writeFileAtomic({ path: `${daemonConfigPath}.next`, mode: "0644", owner: "root", group: "root" });
  const swap = and(
    argv("mv", "-f", `${daemonConfigPath}.next`, daemonConfigPath),
    argv("systemctl", "restart", "docker.service"),
  );
  return shell(
    and(
      write,
      `if cmp -s ${argv(`${daemonConfigPath}.next`)} ${argv(daemonConfigPath)}; then ${argv("rm", "-f", `${daemonConfigPath}.next`)}; else ${swap}; fi`,
      argv("systemctl", "enable", "--now", "docker.service"),
      'for i in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; echo "docker: the engine did not answer docker info within 60 s after its restart:" >&2; journalctl -u docker.service -n 20 --no-pager >&2; exit 1',
    ),
    { sudo: true },
  );
}

/**
 * The base image on the host: kept when there, else imported from the
 * tarball on stdin (given `fromFile`), else an error that names the fix.
 */
export function ensureBaseImageCommand(image: string, fromFile: boolean): string {
  const present = argv("docker", "image", "inspect", "--format", "{{.Id}}", image) + " >/dev/null 2>&1";
  // docker import reads a plain or a gzip'd tar.
  const load = fromFile
    ? and(argv("docker", "import", "-", image) + " >/dev/null", argv("echo", `imported ${image}`))
    : argv(
        "printf",
        "docker.baseImage: %s is not on %s; load it there (docker load or docker import), or set docker.baseImageFile to a root file system tarball\n",
        image,
      ) + ' "$(hostname)" >&2; exit 1';
  return shell(`if ${present}; then cat >/dev/null; ${argv("echo", `${image} present`)}; else ${load}; fi`, {
    sudo: true,
  });
}

/**
 * Runs a command with the variables of a systemd EnvironmentFile as written by
 * builders/envFile.ts (`KEY="value"`, backslash escaping `"`, `\`, `` ` ``
 * and `$`): the containers' entrypoint, so secrets stay in the one 0600 file
 * and never become `docker run -e` arguments. A candidate (AYNA_ENV_CANDIDATE)
 * reads the env file not installed yet, FILE.next, while it exists.
 */
export const envLauncherSource = `"""ayna-deploy: runs a command with the variables of the project's env file."""
import os
import re
import sys

LINE = re.compile(r'^([A-Z_][A-Z0-9_]*)="((?:[^"\\\\]|\\\\.)*)"$', re.M | re.S)


def main():
    path, argv = sys.argv[1], sys.argv[2:]
    if not argv:
        sys.exit("ayna-env: no command given")
    if os.environ.get("AYNA_ENV_CANDIDATE") and os.path.exists(path + ".next"):
        path += ".next"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    env = dict(os.environ)
    for key, value in LINE.findall(text):
        env[key] = re.sub(r"\\\\(.)", r"\\1", value, flags=re.S)
    os.execvpe(argv[0], argv, env)


main()
`;

export interface ImageSpec {
  project: string;
  stage: string;
  /** FROM: a Debian with the Python the host's venv was built with. */
  baseImage: string;
}

/**
 * The release image. The build context (made by the release tool) holds
 * `venv/` (the environment uv built on the host for the release's lockfile),
 * `lib/` (the project's support modules), `app/` (the release's code) and the
 * launcher; the venv goes to the path it was built at, so its scripts' first
 * lines hold, and /opt/venv names it.
 */
export const dockerfileTokens = {
  venv: "@VENV_PATH@",
  uid: "@APP_UID@",
  gid: "@APP_GID@",
  /** The base image, or the image the app's own Dockerfile built for this release. */
  from: "@FROM_IMAGE@",
} as const;

export function renderDockerfile(s: ImageSpec): string {
  const lib = uvicornWorker.dir(s.project);
  const { venv, uid, gid, from } = dockerfileTokens;
  return [
    `# ayna-deploy: ${s.project} (${s.stage}), one release's image; written from its stack config.`,
    `FROM ${from}`,
    // An app's own Dockerfile may end as another user; the steps below need root.
    "USER 0:0",
    // The release tool fills in the tokens on the host (FROM: the base image or the app's; the service user's ids).
    // Files keep their modes (group-readable, nothing for others), so they go to the service user's group.
    `COPY --chown=0:${gid} venv ${venv}`,
    // A base whose Python is not the one the venv was made for fails here, by name.
    `RUN ln -s ${venv} ${imagePaths.venv} && ${imagePaths.venv}/bin/python -c "import sys; print(sys.version)"`,
    `COPY --chown=0:${gid} lib ${lib}`,
    `COPY --chown=0:${gid} ayna-env.py ${imagePaths.launcher}`,
    `COPY --chown=0:${gid} app ${imagePaths.app}`,
    // The state directory (beat's schedule) belongs to the app user, so the named volume mounted there does too.
    `RUN ln -s ${imagePaths.venv} ${imagePaths.app}/.venv && install -d -o ${uid} -g ${gid} ${paths.stateDir(s.project)}`,
    `WORKDIR ${imagePaths.app}`,
    `ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=${imagePaths.venv}/bin:/usr/local/bin:/usr/bin:/bin`,
    `LABEL ayna.project=${s.project}`,
    `USER ${uid}:${gid}`,
    `ENTRYPOINT ["${imagePaths.venv}/bin/python", "${imagePaths.launcher}", "${imagePaths.envFile(s.stage)}"]`,
    "",
  ].join("\n");
}

/** The project's Redis: Debian's redis-server on the same base, its data in a named volume. */
export function renderRedisDockerfile(s: ImageSpec): string {
  return [
    `# ayna-deploy: ${s.project} (${s.stage}), its Redis; written from its stack config.`,
    `FROM ${s.baseImage}`,
    "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/* && install -d -o redis -g redis /data",
    "USER redis",
    'ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--save", "60 1"]',
    "",
  ].join("\n");
}

export interface ContainerLimits {
  memory: string;
  cpus: string;
  pidsLimit: number;
}

/**
 * Options of every app container (the Docker standard's hardening): restart
 * unless stopped, a read-only root with a tmpfs for /tmp, no new privileges,
 * no capabilities, memory, CPU and process limits, json-file logs.
 */
export function containerOptions(l: ContainerLimits): string[] {
  return [
    "--restart",
    "unless-stopped",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=64m",
    "--security-opt",
    "no-new-privileges",
    "--cap-drop",
    "ALL",
    "--memory",
    l.memory,
    "--cpus",
    l.cpus,
    "--pids-limit",
    String(l.pidsLimit),
    "--log-driver",
    "json-file",
  ];
}

/** Stands for a container's own socket name in its command and health check; the release tool fills it in. */
export const socketToken = "@SOCKET@";

/** The host's directory of the project's sockets: Caddy's group may enter it, nobody else. */
export function socketDir(project: string): string {
  return `${paths.root(project)}/sockets`;
}

/**
 * What Caddy proxies a role to in Docker mode: a symlink the release tool
 * renames to the new container's socket at the switch (atomic, like venv
 * mode's `current`), so the switch needs no reload of Caddy.
 */
export function roleSocket(project: string, role: "web" | "api"): string {
  return `${socketDir(project)}/${role}.sock`;
}

/**
 * A role's command inside its container: its unit's server command, run from
 * /app, web and api listening on their own socket in the shared socket
 * directory (no port is published at all).
 */
export function containerCommand(s: UnitSpec): string[] {
  return serverCommand(s, {
    dir: imagePaths.app,
    bin: `${imagePaths.venv}/bin`,
    bindUnix: `${imagePaths.sockets}/${socketToken}.sock`,
  }).flat();
}

/**
 * The container's health check (`docker run --health-cmd`, run with /bin/sh
 * inside): web and api answer 200 on their health path on their socket; a
 * worker's main process is alive (the standard's "process check").
 */
export function healthCommand(role: ServiceRole, healthPath: string): string {
  if (role === "web" || role === "api") {
    const probe = [
      "import socket, sys",
      "s = socket.socket(socket.AF_UNIX)",
      "s.settimeout(3)",
      `s.connect("${imagePaths.sockets}/${socketToken}.sock")`,
      `s.sendall(b"GET ${healthPath} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n")`,
      'sys.exit(0 if s.recv(64).split(b" ")[1:2] == [b"200"] else 1)',
    ].join("; ");
    return argv(`${imagePaths.venv}/bin/python`, "-c", probe);
  }
  return argv(`${imagePaths.venv}/bin/python`, "-c", "import os; os.kill(1, 0)");
}

/** The project's names in Docker mode (containers `{project}-<role>`, as the standard asks). */
export const dockerNames = {
  network: (p: string) => `${p}-net`,
  image: (p: string) => p,
  redisImage: (p: string) => `${p}-redis`,
  stateVolume: (p: string) => `${p}-state`,
  redisVolume: (p: string) => `${p}-redis`,
  container: (p: string, role: string) => `${p}-${role}`,
  stateDir: paths.stateDir,
};
