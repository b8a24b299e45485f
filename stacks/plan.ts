// The validated config turned into what each host gets: unit specs, candidate
// ports, the release tool's settings and the batch a host is released in.
// Pure: no Pulumi resources are made here.
import { caddyPackage, SiteSpec } from "../builders/caddy";
import {
  containerCommand,
  containerOptions,
  dockerPackages,
  envLauncherSource,
  healthCommand,
  renderDockerfile,
  renderRedisDockerfile,
  roleSocket,
} from "../builders/docker";
import { DockerToolSpec, ReleaseService, ReleaseToolSpec, releaseDirToken } from "../builders/releaseTool";
import { candidateCommand, ServiceRole, UnitSpec, usesSocket, workerCheckCommand } from "../builders/units";
import { paths } from "../standard/paths";
import { candidateOffsets } from "../standard/portRegistry";
import type { AppSteps } from "./app";
import { HostConfig, StackConfig } from "./index";

export interface HostPlan {
  host: HostConfig;
  /** Debian packages the host needs beyond the base set. */
  packages: string[];
  units: UnitSpec[];
  releaseTool: ReleaseToolSpec;
  /** Index of the batch this host is released in (0 first). */
  batch: number;
  /** Caddy's site for the project, with proxy.enabled. */
  site?: SiteSpec;
}

/**
 * The project's Caddy site from config, or undefined with the proxy off.
 * STATIC_BUILT: the release builds static files (app.static), which
 * proxy.staticPath `auto` serves from Caddy.
 */
export function siteSpec(c: StackConfig, staticBuilt = false): SiteSpec | undefined {
  if (!c.proxy.enabled) return undefined;
  const { web, api } = c.services;
  const health = (role: "web" | "api") => c.services[role].healthPath ?? c.release.healthPath;
  const staticPath = c.proxy.staticPath === "auto" ? (staticBuilt ? "/static/" : "none") : c.proxy.staticPath;
  return {
    project: c.project,
    stage: c.stage,
    domains: c.proxy.domains,
    tls: c.proxy.tls,
    ...(c.proxy.email !== undefined ? { email: c.proxy.email } : {}),
    ...(web.enabled && web.port !== undefined ? { webPort: web.port } : {}),
    ...(api.enabled && api.port !== undefined ? { api: { port: api.port, path: c.proxy.apiPath } } : {}),
    healthPaths: {
      ...(web.enabled ? { web: health("web") } : {}),
      ...(api.enabled ? { api: health("api") } : {}),
    },
    ...(staticPath !== "none" && web.enabled
      ? { staticFiles: { path: staticPath, root: `${paths.current(c.project)}/staticfiles` } }
      : {}),
    // Docker mode: each role's socket symlink, which the release tool moves
    // at the switch (blue-green), behind the host's proxy container.
    ...(c.runtime === "docker"
      ? {
          upstreamSockets: {
            ...(web.enabled ? { web: roleSocket(c.project, "web") } : {}),
            ...(api.enabled ? { api: roleSocket(c.project, "api") } : {}),
          },
          ...(c.docker.baseImage !== undefined ? { containerBase: c.docker.baseImage } : {}),
        }
      : {}),
  };
}

/** Docker mode's part of the release tool's settings. */
export function dockerToolSpec(c: StackConfig, appDockerfile?: string): DockerToolSpec | undefined {
  if (c.runtime !== "docker" || c.docker.baseImage === undefined) return undefined;
  const image = { project: c.project, stage: c.stage, baseImage: c.docker.baseImage };
  const roles = enabledRoles(c);
  const healthOf = (role: ServiceRole) =>
    role === "web" || role === "api" ? (c.services[role].healthPath ?? c.release.healthPath) : c.release.healthPath;
  return {
    baseImage: c.docker.baseImage,
    dockerfile: renderDockerfile(image),
    ...(appDockerfile !== undefined ? { appDockerfile } : {}),
    launcher: envLauncherSource,
    ...(c.redis.local ? { redisDockerfile: renderRedisDockerfile(image) } : {}),
    options: containerOptions(c.docker),
    commands: Object.fromEntries(roles.map((r) => [r, containerCommand(unitSpec(c, r))])),
    healthCommands: Object.fromEntries(roles.map((r) => [r, healthCommand(r, healthOf(r))])),
  };
}

export function enabledRoles(c: StackConfig): ServiceRole[] {
  return (["web", "api", "celery", "beat"] as const).filter((r) => c.services[r].enabled);
}

export function unitSpec(c: StackConfig, role: ServiceRole): UnitSpec {
  const after = [
    ...(c.redis.local ? ["redis-server.service"] : []),
    ...(c.database.local ? ["postgresql.service"] : []),
  ];
  const user = c.serviceUser;
  const base = { project: c.project, role, stage: c.stage, user, group: user, after };
  switch (role) {
    case "web":
    case "api": {
      const s = c.services[role];
      return {
        ...base,
        port: s.port,
        workers: s.workers,
        module: s.module,
        timeoutSeconds: s.timeoutSeconds,
        apiServer: s.server,
      };
    }
    case "celery":
      return { ...base, celeryApp: c.services.celery.app, concurrency: c.services.celery.concurrency };
    case "beat":
      return { ...base, celeryApp: c.services.beat.app };
  }
}

/** Candidate port of a web or api release under test: a reserved offset of the project's range. */
export function candidatePort(c: StackConfig, role: ServiceRole): number | undefined {
  return role === "web" || role === "api" ? c.ports.base + candidateOffsets[role] : undefined;
}

export function releaseServices(c: StackConfig): ReleaseService[] {
  return enabledRoles(c).map((role) => {
    const spec = unitSpec(c, role);
    const port = candidatePort(c, role);
    return {
      role,
      port: role === "web" || role === "api" ? c.services[role].port : undefined,
      reload: usesSocket(spec) ? "handover" : "restart",
      // api's gunicorn runs uvicorn workers: an event loop takes the socket after the fork.
      ready: role === "api" ? "listening" : "fork",
      candidatePort: port,
      candidateCommand: port ? candidateCommand(spec, releaseDirToken, port) : undefined,
      checkCommand: workerCheckCommand(spec, releaseDirToken),
    };
  });
}

export function releaseToolSpec(
  c: StackConfig,
  steps: Pick<AppSteps, "migrate" | "static" | "dockerfile"> = {},
): ReleaseToolSpec {
  const docker = dockerToolSpec(c, steps.dockerfile);
  return {
    ...(steps.migrate ? { migrate: steps.migrate } : {}),
    ...(steps.static ? { static: steps.static } : {}),
    project: c.project,
    stage: c.stage,
    user: c.serviceUser,
    group: c.serviceUser,
    services: releaseServices(c),
    keep: c.release.keep,
    healthPath: c.release.healthPath,
    healthTimeoutSeconds: c.release.healthTimeoutSeconds,
    healthPasses: c.release.healthPasses,
    healthNamesRelease: c.release.healthNamesRelease,
    healthPaths: Object.fromEntries(
      (["web", "api"] as const).flatMap((r) => (c.services[r].healthPath ? [[r, c.services[r].healthPath]] : [])),
    ),
    watchSeconds: c.release.watchSeconds,
    lockWaitSeconds: c.release.lockWaitSeconds,
    ...(docker ? { docker } : {}),
  };
}

/** Hosts in config order, `batchSize` at a time. */
export function batchOf(index: number, batchSize: number): number {
  return Math.floor(index / batchSize);
}

/** Per host what it gets; `steps` are the app's migrate and static steps (stacks/app.ts). */
export function planHosts(c: StackConfig, steps: Pick<AppSteps, "migrate" | "static" | "dockerfile"> = {}): HostPlan[] {
  const docker = c.runtime === "docker";
  // Docker mode runs containers, not units; its Redis is a container too.
  const units = docker ? [] : enabledRoles(c).map((role) => unitSpec(c, role));
  const releaseTool = releaseToolSpec(c, steps);
  const site = siteSpec(c, steps.static !== undefined);
  return c.hosts.map((host, i) => ({
    host,
    packages: [
      ...(docker ? dockerPackages : []),
      ...(c.redis.local && !docker ? ["redis-server"] : []),
      ...(c.database.local ? ["postgresql"] : []),
      // Docker mode's Caddy is a container; the host needs only its user.
      ...(c.proxy.enabled && !docker ? [caddyPackage] : []),
      ...c.systemPackages,
    ],
    units,
    releaseTool,
    batch: batchOf(i, c.release.batchSize),
    ...(site ? { site } : {}),
  }));
}
