// `ayna-release`: the host-side release tool, one per project, installed at
// /opt/ayna/{project}/bin/ayna-release. The program calls it over SSH with
// argv flags and the code archive on stdin. Settings are rendered at the top
// through the quoting helper; the body below them is static text.
import * as fs from "node:fs";
import * as path from "node:path";
import { argv } from "./shell";
import { paths } from "../standard/paths";
import { ServiceRole } from "./units";

export interface ReleaseService {
  role: ServiceRole;
  /** Registry port for web/api (health checked); none for workers. */
  port?: number;
  /** How a new release is picked up: HUP (graceful) or restart. */
  reload: "hup" | "restart";
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
  /** Seconds a worker must stay up without a restart to count as healthy. @default 3 */
  workerSettleSeconds?: number;
  /** Seconds to wait for another deploy's lock before giving up. @default 120 */
  lockWaitSeconds?: number;
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
    assign("ENV_FILE", paths.envFile(s.project, s.stage)),
    assign("KEEP", s.keep),
    assign("HEALTH_PATH", s.healthPath),
    assign("HEALTH_TIMEOUT", s.healthTimeoutSeconds),
    assign("HEALTH_PASSES", s.healthPasses),
    assign("WORKER_SETTLE", s.workerSettleSeconds ?? 3),
    assign("LOCK_WAIT", s.lockWaitSeconds ?? 120),
    `SERVICES=(${s.services.map((x) => argv(`${x.role}:${x.port ?? ""}:${x.reload}:${x.candidatePort ?? ""}`)).join(" ")})`,
    ...s.services
      .filter((x) => x.candidateCommand)
      .map((x) => `CANDIDATE_${x.role}=(${x.candidateCommand!.map((w) => argv(w)).join(" ")})`),
    ...s.services
      .filter((x) => x.checkCommand)
      .map((x) => `CHECK_${x.role}=(${x.checkCommand!.map((w) => argv(w)).join(" ")})`),
  ];
  return settings.join("\n") + "\n";
}

export function renderReleaseTool(s: ReleaseToolSpec): string {
  if (!template.includes("\n#@SETTINGS@\n")) throw new Error("ayna-release.sh lost its #@SETTINGS@ marker");
  return template.replace("\n#@SETTINGS@\n", () => `\n${renderReleaseSettings(s)}`);
}
