// systemd unit files for a project's services, rendered from standard v2.0's
// templates (web = gunicorn Type=notify with HUP reload, api = uvicorn,
// celery worker, beat), plus hardening that keeps the app working.
import { paths } from "./paths";

export type ServiceRole = "web" | "api" | "celery" | "beat";

export interface UnitSpec {
  project: string;
  role: ServiceRole;
  stage: string;
  user: string;
  group: string;
  /** web and api: the registry port. */
  port?: number;
  /** web/api worker processes. */
  workers?: number;
  /** web: gunicorn --timeout. */
  timeoutSeconds?: number;
  /** web: WSGI app; api: ASGI app. */
  module?: string;
  /** celery/beat: the -A app. */
  celeryApp?: string;
  /** celery: --concurrency. */
  concurrency?: number;
  /** Extra units to order after (local postgresql.service / redis-server.service). */
  after?: string[];
  /**
   * api: "gunicorn" runs uvicorn workers under gunicorn, which reloads on HUP
   * without dropping requests; "uvicorn" is the standard's literal command,
   * which can only restart. @default "gunicorn"
   */
  apiServer?: "gunicorn" | "uvicorn";
}

function usesGunicorn(s: Pick<UnitSpec, "role" | "apiServer">): boolean {
  return s.role === "web" || (s.role === "api" && (s.apiServer ?? "gunicorn") === "gunicorn");
}

/** Whether a unit picks up a new release with a graceful HUP (else a restart). */
export function reloadsGracefully(s: Pick<UnitSpec, "role" | "apiServer">): boolean {
  return usesGunicorn(s);
}

/** Directives that confine the service; `systemd-analyze security` scores the result. */
export function hardening(project: string): string[] {
  return [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    `ReadWritePaths=${paths.shared(project)} ${paths.logs(project)}`,
    `StateDirectory=${project}`,
    "StateDirectoryMode=0750",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "DevicePolicy=closed",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "RestrictNamespaces=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "LockPersonality=yes",
    "RemoveIPC=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "UMask=0027",
  ];
}

function title(project: string): string {
  return project
    .split("-")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("-");
}

function execStart(bin: string, args: string[]): string {
  // One flag per line, as the standard writes them.
  return `ExecStart=${bin} \\\n    ${args.join(" \\\n    ")}`;
}

function need<T>(v: T | undefined, what: string, role: string): T {
  if (v === undefined) throw new Error(`${role} unit needs ${what}`);
  return v;
}

/**
 * The command that runs a release's web or api as a candidate on `port`, one
 * worker, from the release directory itself (`dir`).
 */
export function candidateCommand(s: UnitSpec, dir: string, port: number): string[] | undefined {
  const bin = `${dir}/.venv/bin`;
  if (s.role === "web") {
    return [
      `${bin}/gunicorn`,
      "--bind",
      `127.0.0.1:${port}`,
      "--workers",
      "1",
      "--chdir",
      dir,
      need(s.module, "a WSGI module", s.role),
    ];
  }
  if (s.role === "api") {
    return usesGunicorn(s)
      ? [
          `${bin}/gunicorn`,
          "--worker-class",
          "uvicorn_worker.UvicornWorker",
          "--bind",
          `127.0.0.1:${port}`,
          "--workers",
          "1",
          "--chdir",
          dir,
          need(s.module, "an ASGI module", s.role),
        ]
      : [
          `${bin}/uvicorn`,
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          "--workers",
          "1",
          "--app-dir",
          dir,
          need(s.module, "an ASGI module", s.role),
        ];
  }
  return undefined;
}

export function renderUnit(s: UnitSpec): string {
  const venvBin = `${paths.venv(s.project)}/bin`;
  const current = paths.current(s.project);
  const descriptions: Record<ServiceRole, string> = {
    web: "Web Server",
    api: "API Server",
    celery: "Celery Worker",
    beat: "Celery Beat Scheduler",
  };
  const after = ["network.target", ...(s.after ?? [])];

  const service: string[] = [reloadsGracefully(s) ? "Type=notify" : "Type=simple"];
  service.push(
    `User=${s.user}`,
    `Group=${s.group}`,
    `WorkingDirectory=${current}`,
    `Environment="PATH=${venvBin}:/usr/local/bin:/usr/bin:/bin"`,
    // gunicorn takes its default --chdir from $PWD when it names the working
    // directory: the symlink then, so a reload never goes back to the release
    // the master started in (which may be pruned by then).
    ...(usesGunicorn(s) ? [`Environment=PWD=${current}`] : []),
    `EnvironmentFile=${paths.envFile(s.project, s.stage)}`,
  );
  switch (s.role) {
    case "web":
      service.push(
        execStart(`${venvBin}/gunicorn`, [
          `--bind 127.0.0.1:${need(s.port, "a port", s.role)}`,
          `--workers ${s.workers ?? 4}`,
          `--timeout ${s.timeoutSeconds ?? 120}`,
          // Through the symlink, so workers started by a HUP import the new release.
          `--chdir ${current}`,
          need(s.module, "a WSGI module", s.role),
        ]),
        "ExecReload=/bin/kill -s HUP $MAINPID",
      );
      break;
    case "api":
      if (reloadsGracefully(s)) {
        service.push(
          execStart(`${venvBin}/gunicorn`, [
            "--worker-class uvicorn_worker.UvicornWorker",
            `--bind 127.0.0.1:${need(s.port, "a port", s.role)}`,
            `--workers ${s.workers ?? 2}`,
            `--chdir ${current}`,
            need(s.module, "an ASGI module", s.role),
          ]),
          "ExecReload=/bin/kill -s HUP $MAINPID",
        );
      } else {
        service.push(
          execStart(`${venvBin}/uvicorn`, [
            "--host 127.0.0.1",
            `--port ${need(s.port, "a port", s.role)}`,
            `--workers ${s.workers ?? 2}`,
            `--app-dir ${current}`,
            need(s.module, "an ASGI module", s.role),
          ]),
        );
      }
      break;
    case "celery":
      service.push(
        execStart(`${venvBin}/celery`, [
          // --workdir is a global option: it goes before the subcommand.
          `--workdir ${current}`,
          `-A ${need(s.celeryApp, "a Celery app", s.role)} worker`,
          "-l INFO",
          `--concurrency=${s.concurrency ?? 4}`,
        ]),
      );
      break;
    case "beat":
      service.push(
        execStart(`${venvBin}/celery`, [
          `--workdir ${current}`,
          `-A ${need(s.celeryApp, "a Celery app", s.role)} beat`,
          "-l INFO",
          `--schedule ${paths.stateDir(s.project)}/celerybeat-schedule`,
        ]),
      );
      break;
  }
  service.push("Restart=always", "RestartSec=3", ...hardening(s.project));

  return [
    `# ${paths.unit(s.project, s.role)}`,
    "# Rendered by ayna-deploy from Ayna Deployment Standard v2.0. Do not edit on the host.",
    "[Unit]",
    `Description=${title(s.project)} ${descriptions[s.role]}`,
    `After=${after.join(" ")}`,
    ...(s.after && s.after.length > 0 ? [`Wants=${s.after.join(" ")}`] : []),
    "",
    "[Service]",
    ...service,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}
