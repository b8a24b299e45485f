// The program: stack config in; per host a bootstrap, the Python runtime, the
// env file, the systemd units and a health-gated release.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import {
  appArchive,
  EnvFile,
  Host,
  lockfileArchive,
  portRegistry,
  PythonRuntime,
  RandomSecret,
  Release,
  SystemdService,
} from "./components";
import { ReleaseService, releaseDirToken } from "./components/render/releaseTool";
import {
  candidateCommand,
  reloadsGracefully,
  ServiceRole,
  UnitSpec,
  workerCheckCommand,
} from "./components/render/units";
import { loadStackConfig, StackConfig } from "./stacks";

const config = loadStackConfig();
const appDir = path.resolve(__dirname, config.app.path);
// Packed once here, shared by every host.
const app = appArchive(appDir);
const lockArchive = lockfileArchive(appDir);

// Generated secrets are made once per stack, so every host gets the same value.
const generated: Record<string, pulumi.Output<string>> = {};
for (const name of config.generatedSecrets) {
  generated[name] = new RandomSecret(`generated-${name.toLowerCase().replace(/_/g, "-")}`, { length: 50 }).value;
}

function enabledRoles(c: StackConfig): ServiceRole[] {
  return (["web", "api", "celery", "beat"] as const).filter((r) => c.services[r].enabled);
}

function unitSpec(c: StackConfig, role: ServiceRole, user: string): UnitSpec {
  const after = c.redis.local ? ["redis-server.service"] : [];
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

function releaseServices(c: StackConfig, user: string): ReleaseService[] {
  return enabledRoles(c).map((role) => {
    const spec = unitSpec(c, role, user);
    const http = role === "web" || role === "api";
    const candidatePort = http ? c.ports.base + portRegistry.candidateOffsets[role] : undefined;
    return {
      role,
      port: http ? c.services[role].port : undefined,
      reload: reloadsGracefully(spec) ? "hup" : "restart",
      candidatePort,
      candidateCommand: candidatePort ? candidateCommand(spec, releaseDirToken, candidatePort) : undefined,
      checkCommand: workerCheckCommand(spec, releaseDirToken),
    };
  });
}

// Releases go out in batches: a batch starts only once every host of the one
// before it is healthy, so a failed host stops the rollout there.
const released: Release[] = [];

const releases = config.hosts.map((h, i) => {
  const batchStart = i - (i % config.release.batchSize);
  const previousBatch = released.slice(Math.max(0, batchStart - config.release.batchSize), batchStart);
  const host = new Host(h.name, {
    project: config.project,
    address: h.address,
    port: h.port,
    user: h.user,
    privateKey: config.sshPrivateKey,
    hostKey: h.hostKey,
    insecureIgnoreHostKey: h.insecureIgnoreHostKey,
    serviceUser: config.serviceUser,
    python: config.python,
    packages: config.redis.local ? ["redis-server"] : [],
  });
  const conn = host.connection;
  const runtime = new PythonRuntime(
    h.name,
    { connection: conn, project: config.project, lockArchive, python: config.python },
    { dependsOn: host.bootstrap },
  );
  const env = new EnvFile(
    h.name,
    {
      connection: conn,
      project: config.project,
      stage: config.stage,
      owner: host.serviceUser,
      group: host.serviceGroup,
      plain: config.env,
      secrets: { ...config.secretEnv, ...generated },
    },
    { dependsOn: host.bootstrap },
  );
  const units = enabledRoles(config).map(
    (role) =>
      new SystemdService(
        `${h.name}-${role}`,
        { connection: conn, unit: unitSpec(config, role, host.serviceUser), envFileSha256: env.sha256 },
        { dependsOn: [env, runtime] },
      ),
  );
  const release = new Release(
    h.name,
    {
      connection: conn,
      app,
      envHash: runtime.envHash,
      tool: {
        project: config.project,
        stage: config.stage,
        user: host.serviceUser,
        group: host.serviceGroup,
        services: releaseServices(config, host.serviceUser),
        keep: config.release.keep,
        healthPath: config.release.healthPath,
        healthTimeoutSeconds: config.release.healthTimeoutSeconds,
        healthPasses: config.release.healthPasses,
        lockWaitSeconds: config.release.lockWaitSeconds,
      },
      pin: config.release.pin,
    },
    { dependsOn: [...units, runtime, ...previousBatch] },
  );
  released.push(release);
  return { host: h, release };
});

export const project = config.project;
export const stage = config.stage;
export const ports = { web: config.services.web.port, api: config.services.api.port };
export const hosts = releases.map(({ host, release }) => ({
  name: host.name,
  address: host.address,
  release: release.release,
  previousRelease: release.previousRelease,
  sha: release.sha,
}));
