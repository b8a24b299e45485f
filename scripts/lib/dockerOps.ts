// The operator targets in Docker mode (runtime: docker): the same make
// targets, acting on the project's containers instead of its units. Pure
// command builders; scripts/ops.ts runs them over SSH and hostReport.ts reads
// what the probe's sections print.
import { releaseDirToken } from "../../builders/releaseTool";
import { imagePaths, socketDir } from "../../builders/docker";
import { argv } from "../../builders/shell";
import type { OpsStack, Role } from "./stackConfig";

/** `{project}-<role>`, as the release tool names the serving container. */
export function containerOf(s: Pick<OpsStack, "project">, role: Role): string {
  return `${s.project}-${role}`;
}

export function containers(s: Pick<OpsStack, "project" | "services">): string[] {
  return s.services.map((x) => containerOf(s, x.role));
}

/**
 * COMMAND (`@RELEASE@`: the release's directory, /app in the image) in the
 * project's first serving container, as its processes run: the service user,
 * the env file through the image's launcher, /app as working directory.
 */
export function dockerAppCommand(
  s: Pick<OpsStack, "project" | "services" | "stage">,
  command: string[],
  tty: boolean,
): string[] {
  const first = s.services[0];
  if (!first) throw new Error("no service is enabled, so no container runs the app");
  return [
    "docker",
    "exec",
    "-i",
    ...(tty ? ["-t"] : []),
    "-w",
    imagePaths.app,
    containerOf(s, first.role),
    `${imagePaths.venv}/bin/python`,
    imagePaths.launcher,
    imagePaths.envFile(s.stage),
    ...command.map((w) => w.split(releaseDirToken).join(imagePaths.app)),
  ];
}

/** Every container's log (json-file, via docker logs), each line led by the container's name. */
export function dockerLogsScript(s: Pick<OpsStack, "project" | "services">, lines: number, follow: boolean): string {
  const names = containers(s)
    .map((n) => argv(n))
    .join(" ");
  const opts = argv("--timestamps", "--tail", String(lines), ...(follow ? ["--follow"] : []));
  return `for c in ${names}; do docker logs ${opts} "$c" 2>&1 | sed -u "s/^/$c  /" & done; wait`;
}

/** One line per container: name, state, health. */
export const containerStateFormat = "{{.Name}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}";

/** What status and validate read of each container (one line each, `|` between fields). */
export const containerProbeFormat =
  containerStateFormat +
  '|{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}|{{join .HostConfig.CapDrop ","}}|{{join .HostConfig.SecurityOpt ","}}|{{index .Config.Labels "ayna.release"}}';

export interface ContainerState {
  name: string;
  status: string;
  health: string;
  user: string;
  readOnly: boolean;
  capDrop: string;
  securityOpt: string;
  release: string;
}

/** Parses `docker inspect -f containerProbeFormat` lines; a container that is gone has none. */
export function parseContainers(text: string): Map<string, ContainerState> {
  const out = new Map<string, ContainerState>();
  for (const line of text.split("\n")) {
    const f = line.split("|");
    if (f.length < 3 || !f[0]!.startsWith("/")) continue;
    const name = f[0]!.slice(1);
    out.set(name, {
      name,
      status: f[1]!,
      health: f[2]!,
      user: f[3] ?? "",
      readOnly: f[4] === "true",
      capDrop: f[5] ?? "",
      securityOpt: f[6] ?? "",
      release: f[7] ?? "",
    });
  }
  return out;
}

/** Where web's or api's serving container answers: the role's socket symlink, what Caddy proxies to. */
export function socketHealthCommand(s: Pick<OpsStack, "project">, role: Role, healthPath: string): string {
  return argv(
    "curl",
    "-sS",
    "--max-time",
    "5",
    "-w",
    "\\n%{http_code}",
    "--unix-socket",
    `${socketDir(s.project)}/${role}.sock`,
    `http://localhost${healthPath}`,
  );
}
