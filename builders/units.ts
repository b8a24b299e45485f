// systemd unit files for a project's services, rendered from standard v2.0's
// templates (web = gunicorn Type=notify, api = uvicorn workers under gunicorn,
// celery worker, beat), plus hardening that keeps the app working.
import { paths } from "../standard/paths";
import { uvicornWorker } from "./uvicornWorker";

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
   * api: "gunicorn" runs uvicorn workers under gunicorn, on a systemd socket
   * handed over to each release without dropping requests; "uvicorn" is the
   * standard's literal command, which can only restart. @default "gunicorn"
   */
  apiServer?: "gunicorn" | "uvicorn";
}

function usesGunicorn(s: Pick<UnitSpec, "role" | "apiServer">): boolean {
  return s.role === "web" || (s.role === "api" && (s.apiServer ?? "gunicorn") === "gunicorn");
}

/** Whether the server is gunicorn: Type=notify, and a HUP recycles its workers gracefully. */
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

function need<T>(v: T | undefined, what: string, role: string): T {
  if (v === undefined) throw new Error(`${role} unit needs ${what}`);
  return v;
}

interface ServerPlace {
  /** The release directory the process runs from (the `current` symlink for units). */
  dir: string;
  /** Its Python environment's bin/ directory. */
  bin: string;
  /** Port for web/api. */
  port?: number;
  workers?: number;
  /** A unix socket web/api listen on instead of a port (Docker mode). @default the port on 127.0.0.1 */
  bindUnix?: string;
}

/**
 * A role's server command as groups of words (a flag with its value), shared
 * by the unit's ExecStart and the release candidate, so the two cannot drift.
 */
export function serverCommand(s: UnitSpec, at: ServerPlace): string[][] {
  const port = () => String(need(at.port, "a port", s.role));
  switch (s.role) {
    case "web":
      return [
        [`${at.bin}/gunicorn`],
        ["--bind", at.bindUnix ? `unix:${at.bindUnix}` : `127.0.0.1:${port()}`],
        ["--workers", String(at.workers ?? s.workers ?? 4)],
        // The app is imported before gunicorn reports ready (Type=notify), so a
        // start or restart returns only once it can serve: the handover relies on it.
        ["--preload"],
        ["--timeout", String(s.timeoutSeconds ?? 120)],
        ["--chdir", at.dir],
        [need(s.module, "a WSGI module", s.role)],
      ];
    case "api":
      return usesGunicorn(s)
        ? [
            [`${at.bin}/gunicorn`],
            // uvicorn's worker, stopping without dropping what it accepted (builders/uvicornWorker.ts).
            ["--worker-class", uvicornWorker.workerClass],
            ["--pythonpath", uvicornWorker.dir(s.project)],
            ["--bind", at.bindUnix ? `unix:${at.bindUnix}` : `127.0.0.1:${port()}`],
            ["--workers", String(at.workers ?? s.workers ?? 2)],
            ["--preload"],
            ["--chdir", at.dir],
            [need(s.module, "an ASGI module", s.role)],
          ]
        : [
            [`${at.bin}/uvicorn`],
            ...(at.bindUnix
              ? [["--uds", at.bindUnix]]
              : [
                  ["--host", "127.0.0.1"],
                  ["--port", port()],
                ]),
            ["--workers", String(at.workers ?? s.workers ?? 2)],
            ["--app-dir", at.dir],
            [need(s.module, "an ASGI module", s.role)],
          ];
    case "celery":
    case "beat": {
      const tail =
        s.role === "celery"
          ? [["-l", "INFO"], [`--concurrency=${s.concurrency ?? 4}`]]
          : [
              ["-l", "INFO"],
              ["--schedule", `${paths.stateDir(s.project)}/celerybeat-schedule`],
            ];
      // --workdir is a global option: it goes before the subcommand.
      return [
        [`${at.bin}/celery`],
        ["--workdir", at.dir],
        ["-A", need(s.celeryApp, "a Celery app", s.role), s.role === "celery" ? "worker" : "beat"],
        ...tail,
      ];
    }
  }
}

/**
 * The command that runs a release's web or api as a candidate on `port`, one
 * worker, from the release directory itself (`dir`).
 */
export function candidateCommand(s: UnitSpec, dir: string, port: number): string[] | undefined {
  if (s.role !== "web" && s.role !== "api") return undefined;
  return serverCommand(s, { dir, bin: `${dir}/.venv/bin`, port, workers: 1 }).flat();
}

/** Imports a Celery app and every task module it would load, as a worker does at start. */
const celeryImportCheck = [
  "import importlib, sys",
  "module = importlib.import_module(sys.argv[1])",
  "app = getattr(module, 'app', None) or getattr(module, 'celery_app')",
  "app.loader.import_default_modules()",
  "print('tasks:', len([t for t in app.tasks if not t.startswith('celery.')]))",
].join("\n");

/**
 * A one-shot check that the release's worker code loads (the Celery app and
 * its task modules), run before the switch so a worker that could not start
 * never replaces a working one.
 */
export function workerCheckCommand(s: UnitSpec, dir: string): string[] | undefined {
  if (s.role !== "celery") return undefined;
  return [`${dir}/.venv/bin/python`, "-c", celeryImportCheck, need(s.celeryApp, "a Celery app", s.role)];
}

/**
 * web and api under gunicorn listen on a socket systemd holds
 * (`{project}-{role}.socket`): across a restart the port stays open and
 * connections wait in its queue for the new process instead of being refused.
 * The standard's literal uvicorn command cannot take a socket from systemd.
 */
export function usesSocket(s: Pick<UnitSpec, "role" | "apiServer">): boolean {
  return (s.role === "web" || s.role === "api") && usesGunicorn(s);
}

const header =
  "# Installed by ayna-release from Ayna Deployment Standard v2.0. Do not edit on the host: refresh reports it, up puts it back.";

const roleTitles: Record<ServiceRole, string> = {
  web: "Web Server",
  api: "API Server",
  celery: "Celery Worker",
  beat: "Celery Beat Scheduler",
};

/** The first lines of every unit file: where it lives, who installs it, what it is. */
function unitHead(path: string, s: UnitSpec, what: string): string[] {
  return [`# ${path}`, header, "[Unit]", `Description=${title(s.project)} ${roleTitles[s.role]}${what}`];
}

export function renderSocket(s: UnitSpec): string | undefined {
  if (!usesSocket(s)) return undefined;
  return [
    ...unitHead(paths.socketUnit(s.project, s.role), s, " listening socket"),
    "",
    "[Socket]",
    `ListenStream=127.0.0.1:${need(s.port, "a port", s.role)}`,
    "NoDelay=true",
    "",
    "[Install]",
    "WantedBy=sockets.target",
    "",
  ].join("\n");
}

export interface UnitFile {
  /** File name under /etc/systemd/system. */
  name: string;
  content: string;
}

/** Every unit file of a role: the service, and its socket and handover when it has a socket. */
export function unitFiles(s: UnitSpec): UnitFile[] {
  const socket = renderSocket(s);
  const handover = renderHandover(s);
  return [
    { name: `${s.project}-${s.role}.service`, content: renderUnit(s) },
    ...(socket === undefined ? [] : [{ name: `${s.project}-${s.role}.socket`, content: socket }]),
    ...(handover === undefined ? [] : [{ name: `${s.project}-${s.role}-handover.service`, content: handover }]),
  ];
}

/**
 * The same server as the role's unit, on the same socket, run only while a
 * release changes hands: it starts from `current` (the new release, with the
 * new env file) and serves beside the old process; the role's unit then
 * restarts while this one serves alone, and it stops once the unit is back.
 * Never enabled, never restarted by systemd.
 */
export function renderHandover(s: UnitSpec): string | undefined {
  if (!usesSocket(s)) return undefined;
  return [
    ...unitHead(paths.handoverUnit(s.project, s.role), s, " (handover while a release restarts it)"),
    `After=${["network.target", ...(s.after ?? [])].join(" ")}`,
    "",
    "[Service]",
    ...serviceLines(s),
    `Sockets=${s.project}-${s.role}.socket`,
    "Restart=no",
    ...hardening(s.project),
    "",
  ].join("\n");
}

function serviceLines(s: UnitSpec): string[] {
  const venvBin = `${paths.venv(s.project)}/bin`;
  const current = paths.current(s.project);
  const [bin, ...flags] = serverCommand(s, { dir: current, bin: venvBin, port: s.port });
  return [
    reloadsGracefully(s) ? "Type=notify" : "Type=simple",
    `User=${s.user}`,
    `Group=${s.group}`,
    `WorkingDirectory=${current}`,
    `Environment="PATH=${venvBin}:/usr/local/bin:/usr/bin:/bin"`,
    // gunicorn takes its default --chdir from $PWD when it names the working
    // directory: the symlink then, so a reload never goes back to the release
    // the master started in (which may be pruned by then).
    ...(usesGunicorn(s) ? [`Environment=PWD=${current}`] : []),
    `EnvironmentFile=${paths.envFile(s.project, s.stage)}`,
    // One flag per line, as the standard writes them.
    `ExecStart=${bin!.join(" ")} \\\n    ${flags.map((f) => f.join(" ")).join(" \\\n    ")}`,
    ...(reloadsGracefully(s) ? ["ExecReload=/bin/kill -s HUP $MAINPID"] : []),
    // systemd sets the socket's blocking mode each time it passes it to a
    // process, on the one open socket every server shares: left at the default
    // it makes the socket blocking whenever the handover or the unit starts,
    // and the other server's event-loop workers then hang in accept() until
    // the next connection arrives (seen as 5 s stalls of every client).
    ...(usesSocket(s) ? ["NonBlocking=yes"] : []),
  ];
}

export function renderUnit(s: UnitSpec): string {
  const after = ["network.target", ...(s.after ?? [])];
  const service = [...serviceLines(s), "Restart=always", "RestartSec=3", ...hardening(s.project)];

  return [
    ...unitHead(paths.unit(s.project, s.role), s, ""),
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
