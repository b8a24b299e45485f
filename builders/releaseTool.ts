// `ayna-release`: the host-side release tool, one per project, installed at
// /opt/ayna/{project}/bin/ayna-release. The program calls it over SSH with
// argv flags and the code archive on stdin. Settings are rendered at the top
// through the quoting helper; the body below them is static text.
import * as fs from "node:fs";
import * as path from "node:path";
import { argv } from "./shell";
import { paths } from "../standard/paths";
import { ServiceRole, UnitFile } from "./units";

export interface ReleaseService {
  role: ServiceRole;
  /** Registry port for web/api (health checked); none for workers. */
  port?: number;
  /** How a new release is picked up: a handover on the socket systemd holds (no gap), or a restart. */
  reload: "handover" | "restart";
  /**
   * When a server's worker accepts, for the handover: at once after the fork
   * (synchronous workers of a preloaded app), or once the listening socket is
   * in its event loop (uvicorn workers). @default "fork"
   */
  ready?: "fork" | "listening";
  /**
   * A reserved port where the new release runs as a candidate and must pass
   * its health check before `current` is switched (web and api).
   */
  candidatePort?: number;
  /** The candidate's command; `@RELEASE@` stands for the new release's directory. */
  candidateCommand?: string[];
  /** Workers: a one-shot command that must exit 0 before the switch (e.g. the task modules import). */
  checkCommand?: string[];
}

/** Placeholder for the release directory in candidate commands. */
export const releaseDirToken = "@RELEASE@";

export interface ReleaseToolSpec {
  project: string;
  stage: string;
  user: string;
  group: string;
  services: ReleaseService[];
  /** Releases to keep (the current and previous ones are always kept). */
  keep: number;
  healthPath: string;
  /** Total seconds the health gate waits for the new release to answer. */
  healthTimeoutSeconds: number;
  /** Consecutive good answers required per service. */
  healthPasses: number;
  /** Per role, a health path other than `healthPath`. @default none */
  healthPaths?: Partial<Record<ServiceRole, string>>;
  /**
   * Whether a health answer must name the release (`"release": "vN"`) to
   * count; off, a 200 counts. @default true
   */
  healthNamesRelease?: boolean;
  /**
   * Seconds every service must keep its main process, without a restart,
   * after its start for the release to pass (the watch window). @default 15
   */
  watchSeconds?: number;
  /** Seconds to wait for another deploy's lock before giving up. @default 120 */
  lockWaitSeconds?: number;
  /** The app's migrations, run once per release before its candidates start. @default none */
  migrate?: ReleaseStep;
  /** The app's static files build, run in the new release's directory before the switch. @default none */
  static?: ReleaseStep;
  /** Docker mode: the release runs as an image and containers instead of units (builders/ayna-docker.sh). @default none (venv mode) */
  docker?: DockerToolSpec;
}

/** What the release tool needs in Docker mode, rendered by builders/docker.ts. */
export interface DockerToolSpec {
  baseImage: string;
  /** The release image's Dockerfile. */
  dockerfile: string;
  /** The app's own Dockerfile (a path in the release), built first; the release image is built FROM it. */
  appDockerfile?: string;
  /** The env-file launcher copied into each image. */
  launcher: string;
  /** The project's Redis image's Dockerfile, when it gets one. */
  redisDockerfile?: string;
  /** Options of every container (hardening and limits). */
  options: string[];
  /** Per role, the command its container runs. */
  commands: Partial<Record<ServiceRole, string[]>>;
  /** Per role, the container's health check (a /bin/sh command line). */
  healthCommands: Partial<Record<ServiceRole, string>>;
}

/** A one-shot command of the release, run as the service user with the env file in the release's directory. */
export interface ReleaseStep {
  /** `@RELEASE@` stands for the release's directory. */
  command: string[];
  /**
   * A `find -path` pattern: the step is skipped when the serving release has
   * exactly the same inputs (its migrations are applied, its static files
   * built). Migrations: the files they are. Static files: the Python files
   * they depend on, besides every file that is not Python. Unset: the step
   * runs for every new release.
   */
  inputs?: string;
}

/** The watch window when the spec sets none (ReleaseToolSpec.watchSeconds). */
const defaultWatchSeconds = 15;

/**
 * How long `pulumi up` waits for a deploy and for a rollback. The release
 * tool's waits that grow with the health budget, at most: candidates and
 * gate, each up to three budgets (a slow start's stretch), the watch window
 * and its last check, and the gate of the previous release after a failed
 * one. The base values hold the default budget (60 s, watch 15 s); each
 * second more of that worst case adds one, so a healthy slow release is never
 * reported failed while the host still proves it.
 */
export function releaseTimeouts(s: Pick<ReleaseToolSpec, "healthTimeoutSeconds" | "watchSeconds">): {
  deploy: number;
  rollback: number;
} {
  const health = (budget: number, watch: number) => 3 * budget + 3 * budget + (watch + budget) + 3 * budget;
  const extra = Math.max(
    0,
    health(s.healthTimeoutSeconds, s.watchSeconds ?? defaultWatchSeconds) - health(60, defaultWatchSeconds),
  );
  return { deploy: 1800 + extra, rollback: 900 + extra };
}

function assign(name: string, value: string | number): string {
  return `${name}=${argv(String(value))}`;
}

const template = fs.readFileSync(path.join(__dirname, "ayna-release.sh"), "utf8");

/** The settings block the tool starts with: one shell assignment per line, every value quoted. */
export function renderReleaseSettings(s: ReleaseToolSpec): string {
  const settings = [
    assign("PROJECT", s.project),
    assign("ROOT", paths.root(s.project)),
    assign("STAGE", s.stage),
    assign("SERVICE_USER", s.user),
    assign("SERVICE_GROUP", s.group),
    assign("KEEP", s.keep),
    assign("HEALTH_PATH", s.healthPath),
    assign("HEALTH_TIMEOUT", s.healthTimeoutSeconds),
    assign("HEALTH_PASSES", s.healthPasses),
    assign("HEALTH_NAMES_RELEASE", s.healthNamesRelease === false ? 0 : 1),
    `declare -A HEALTH_PATHS=(${Object.entries(s.healthPaths ?? {})
      .map(([role, p]) => `[${role}]=${argv(p)}`)
      .join(" ")})`,
    assign("WATCH", s.watchSeconds ?? defaultWatchSeconds),
    assign("LOCK_WAIT", s.lockWaitSeconds ?? 120),
    `SERVICES=(${s.services.map((x) => argv([x.role, x.port ?? "", x.reload, x.candidatePort ?? "", x.ready ?? "fork"].join(":"))).join(" ")})`,
    ...s.services
      .filter((x) => x.candidateCommand)
      .map((x) => `CANDIDATE_${x.role}=(${x.candidateCommand!.map((w) => argv(w)).join(" ")})`),
    ...s.services
      .filter((x) => x.checkCommand)
      .map((x) => `CHECK_${x.role}=(${x.checkCommand!.map((w) => argv(w)).join(" ")})`),
    `MIGRATE=(${(s.migrate?.command ?? []).map((w) => argv(w)).join(" ")})`,
    assign("MIGRATE_INPUTS", s.migrate?.inputs ?? ""),
    `STATIC=(${(s.static?.command ?? []).map((w) => argv(w)).join(" ")})`,
    assign("STATIC_INPUTS", s.static?.inputs ?? ""),
  ];
  if (s.docker) settings.push(...dockerSettings(s.project, s.docker));
  return settings.join("\n") + "\n";
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

function dockerSettings(project: string, d: DockerToolSpec): string[] {
  const roles = Object.keys(d.commands) as ServiceRole[];
  return [
    assign("RUNTIME", "docker"),
    assign("BASE_IMAGE", d.baseImage),
    assign("STATE_DIR", paths.stateDir(project)),
    assign("DOCKERFILE_B64", b64(d.dockerfile)),
    assign("APP_DOCKERFILE", d.appDockerfile ?? ""),
    assign("LAUNCHER_B64", b64(d.launcher)),
    assign("REDIS_DOCKERFILE_B64", d.redisDockerfile ? b64(d.redisDockerfile) : ""),
    `DOCKER_OPTS=(${d.options.map((w) => argv(w)).join(" ")})`,
    ...roles.map((r) => `CONTAINER_${r}=(${d.commands[r]!.map((w) => argv(w)).join(" ")})`),
    ...roles.map((r) => assign(`HEALTHCMD_${r}`, d.healthCommands[r] ?? "true")),
  ];
}

const dockerPart = fs.readFileSync(path.join(__dirname, "ayna-docker.sh"), "utf8");
const mainCall = '\nif [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi\n';

export function renderReleaseTool(s: ReleaseToolSpec): string {
  if (!template.includes("\n#@SETTINGS@\n")) throw new Error("ayna-release.sh lost its #@SETTINGS@ marker");
  const tool = template.replace("\n#@SETTINGS@\n", () => `\n${renderReleaseSettings(s)}`);
  if (!s.docker) return tool;
  // Docker mode's steps replace venv mode's of the same names: they go after them, before main runs.
  if (!tool.endsWith(mainCall)) throw new Error("ayna-release.sh must end with its main call");
  return tool.slice(0, -mainCall.length) + "\n" + dockerPart + mainCall;
}

/**
 * Where the bundle travels: environment values of the remote command, so on
 * stdin, never in a command line. The env file is a secret.
 */
export const bundleVariables = { env: "AYNA_ENV_B64", units: "AYNA_UNITS_B64" } as const;

/** The units line of a bundle: base64 of `name<TAB>base64(content)` lines, in the order given. */
export function encodeUnits(units: readonly UnitFile[]): string {
  const lines = units.map((u) => {
    if (!/^[a-z0-9][a-z0-9-]*\.(service|socket)$/.test(u.name))
      throw new Error(`invalid unit file name ${JSON.stringify(u.name)}`);
    return `${u.name}\t${Buffer.from(u.content, "utf8").toString("base64")}\n`;
  });
  return Buffer.from(lines.join(""), "utf8").toString("base64");
}

/**
 * Runs the tool as a transient systemd unit: a client that disconnects (a
 * killed `pulumi up`, a dropped network) cannot stop a deploy half way. With a
 * bundle, the host's shell puts its two lines in front of the command's own
 * stdin (the code archive); printf is a builtin, so no value reaches a
 * process's arguments.
 */
export function toolCommand(toolPath: string, args: string[], opts: { bundle?: boolean } = {}): string {
  const run =
    argv("sudo", "-n", "systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec") +
    ' "--setenv=AYNA_ACTOR=$AYNA_ACTOR" ' +
    argv(toolPath, ...args, ...(opts.bundle ? ["--bundle"] : []));
  if (!opts.bundle) return run;
  return `{ printf '%s\\n' "$${bundleVariables.env}" "$${bundleVariables.units}"; cat; } | ${run}`;
}

/** For refresh: exits non-zero, naming each difference, when the host no longer runs what the last release installed. */
export function verifyCommand(toolPath: string): string {
  return argv("sudo", "-n", toolPath, "verify");
}
