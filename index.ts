// The program: stack config in; per host a bootstrap, the Python runtime, the
// env file, the systemd units and a health-gated release.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import {
  appArchive,
  defaultUvVersion,
  DockerEngine,
  EnvFile,
  Host,
  lockfileArchive,
  PostgresDatabase,
  Proxy,
  PythonRuntime,
  Release,
  SystemdService,
  uvWheelArchive,
  wheelhouseArchive,
} from "./components";
import { RandomSecret } from "./sdk";
import { loadStackConfig } from "./stacks";
import { planHosts } from "./stacks/plan";
import { checkApp } from "./stacks/app";
import { appLock, LockError } from "./local/lock";
import { gatherWheels, Wheelhouse } from "./local/wheels";
import { Archive } from "./local/archive";
import { ConfigError } from "./stacks/validate";
import { unitFiles } from "./builders/units";
import { caddyUser } from "./builders/caddy";

const config = loadStackConfig();
// The project's folder (where Pulumi.yaml is), not this file's: the engine runs
// a compiled copy of it from dist/ (scripts/program.js).
const appDir = path.resolve(pulumi.runtime.getRootDirectory() || process.cwd(), config.app.path);
// Before anything is packed: a folder that cannot be deployed is a config error.
// An app without a uv.lock of its own gets one made here (kept for the next run).
const { steps, lock } = checkApp(pulumi.getProject(), appDir, config, (source) =>
  appLock(source, { python: config.python, project: config.project, addPackages: config.app.addPackages }),
);
if (lock.made) {
  pulumi.log.info(
    lock.fresh
      ? `app dependencies: locked now from ${lock.from} with uv, for Python ${config.python} (kept in ${lock.dir} for the next runs)`
      : `app dependencies: the lock made earlier from ${lock.from} (${lock.dir})`,
  );
}
// Packed once here, shared by every host.
const app = appArchive(appDir);
const lockArchive = lockfileArchive(lock.dir);
// Hosts without PyPI: every wheel the lock needs, and uv's, gathered here once.
const offline = config.offline.enabled ? offlineWheels(lock.dir) : undefined;

function offlineWheels(lockDir: string): { wheels: Archive; uvWheel: Archive } {
  let house: Wheelhouse;
  try {
    house = gatherWheels(lockDir, { python: config.python, arch: config.offline.arch, uvVersion: defaultUvVersion });
  } catch (e) {
    if (e instanceof LockError) throw new ConfigError([`${pulumi.getProject()}:${e.key}: ${e.message}`]);
    throw e;
  }
  pulumi.log.info(
    house.fresh
      ? `offline hosts: wheels gathered now for Python ${config.python} on ${config.offline.arch} (kept in ${house.dir})`
      : `offline hosts: the wheels gathered earlier (${house.dir})`,
  );
  return { wheels: wheelhouseArchive(house.dir), uvWheel: uvWheelArchive(house.dir) };
}

// Generated secrets are made once per stack, so every host gets the same value.
const generated: Record<string, pulumi.Output<string>> = {};
for (const name of config.generatedSecrets) {
  generated[name] = new RandomSecret(`generated-${name.toLowerCase().replace(/_/g, "-")}`, { length: 50 }).value;
}

// With a local database, one password for the project's role on every host.
const databasePassword = config.database.local
  ? new RandomSecret("database-password", { length: 40 }).value
  : undefined;

// Releases go out in batches: a batch starts only once every host of the one
// before it is healthy, so a failed host stops the rollout there.
const releasedInBatch: Release[][] = [];

const releases = planHosts(config, steps).map((plan) => {
  const h = plan.host;
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
    packages: plan.packages,
    // This project's ports and Redis database on the host, refused when another project holds them.
    claim: { portBase: config.ports.base, ...(config.redis.db !== undefined ? { redisDb: config.redis.db } : {}) },
    // Docker mode: Caddy reaches web's and api's sockets under the project's directory.
    traversable: config.runtime === "docker",
    // Caddy serves the static files from the serving release's staticfiles/.
    staticServed: plan.site?.staticFiles !== undefined,
    // Docker mode: Caddy's container runs as this user, the sockets' group.
    ...(config.runtime === "docker" ? { proxyUser: caddyUser } : {}),
  });
  // Every component on the host reaches it through the host's own provider.
  const onHost = { providers: [host.provider] };
  const runtime = new PythonRuntime(
    h.name,
    {
      project: config.project,
      serviceUser: host.serviceUser,
      serviceGroup: host.serviceGroup,
      lockArchive,
      python: config.python,
      offline,
    },
    { ...onHost, dependsOn: host.bootstrap },
  );
  const database =
    databasePassword && config.database.name
      ? new PostgresDatabase(
          h.name,
          {
            project: config.project,
            name: config.database.name,
            password: databasePassword,
            serviceUser: host.serviceUser,
            serviceGroup: host.serviceGroup,
            backupRetentionDays: config.database.backupRetentionDays,
          },
          { ...onHost, dependsOn: host.bootstrap },
        )
      : undefined;
  const env = new EnvFile(h.name, {
    project: config.project,
    stage: config.stage,
    plain: config.env,
    secrets: { ...config.secretEnv, ...generated, ...(database ? { DATABASE_URL: database.url } : {}) },
    required: config.requiredEnv,
  });
  // Docker mode: the engine configured and the base image there before a release builds on it.
  const engine =
    config.runtime === "docker" && config.docker.baseImage !== undefined
      ? new DockerEngine(
          h.name,
          {
            baseImage: config.docker.baseImage,
            ...(config.docker.baseImageFile !== undefined ? { baseImageFile: config.docker.baseImageFile } : {}),
            logMaxSize: config.docker.logMaxSize,
            logMaxFiles: config.docker.logMaxFiles,
          },
          { ...onHost, dependsOn: host.bootstrap },
        )
      : undefined;
  const previousBatch = plan.batch > 0 ? (releasedInBatch[plan.batch - 1] ?? []) : [];
  // Code, dependencies, env file and units go out together, in the host's
  // batch, through one health gate.
  const release = new Release(
    h.name,
    {
      app,
      envHash: runtime.envHash,
      envContent: env.content,
      envValues: env.values,
      secretValues: env.secretValues,
      units: plan.units.flatMap(unitFiles),
      tool: plan.releaseTool,
      pin: config.release.pin,
    },
    {
      ...onHost,
      dependsOn: [
        host.bootstrap,
        runtime,
        ...(database ? [database] : []),
        ...(engine ? [engine] : []),
        ...previousBatch,
      ],
    },
  );
  (releasedInBatch[plan.batch] ??= []).push(release);
  const services = plan.units.map(
    (unit) => new SystemdService(`${h.name}-${unit.role}`, { unit }, { ...onHost, dependsOn: release }),
  );
  // Caddy routes to the services once the release serves them.
  if (plan.site) new Proxy(h.name, { site: plan.site }, { ...onHost, dependsOn: [release, ...services] });
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
  // The deploy plan of the update that last changed this host (names only, nothing secret).
  plan: release.plan.lines,
}));
