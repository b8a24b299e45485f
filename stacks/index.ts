// The one place stack configuration is read. Everything else gets the typed,
// validated object.
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { checkBind, checkPort, PortError, PortRange, portFor, rangeFor } from "../standard/portRegistry";
import { containerRedisUrl, localRedisUrl, redisDbFor } from "../standard/redis";
import { requiredVariablesFor } from "../standard/variables";
import { defaultDatabaseName } from "../builders/postgres";
import { schema } from "./schema";
import { ConfigError, unknownKeyMessage, validateField } from "./validate";

export { ConfigError } from "./validate";

export interface HostConfig {
  name: string;
  address: string;
  port: number;
  user: string;
  hostKey?: string;
  insecureIgnoreHostKey: boolean;
}

export interface HttpServiceConfig {
  enabled: boolean;
  port: number;
  bind: string;
  workers: number;
  module: string;
  timeoutSeconds?: number;
  /** api only. */
  server?: "gunicorn" | "uvicorn";
  /** This role's health endpoint, when not release.healthPath. */
  healthPath?: string;
}

export interface WorkerServiceConfig {
  enabled: boolean;
  app: string;
  concurrency?: number;
}

export interface StackConfig {
  project: string;
  stage: "dev" | "staging" | "production";
  hosts: HostConfig[];
  sshPrivateKey: pulumi.Output<string>;
  serviceUser: string;
  python: string;
  ports: PortRange;
  services: { web: HttpServiceConfig; api: HttpServiceConfig; celery: WorkerServiceConfig; beat: WorkerServiceConfig };
  app: {
    path: string;
    migrate: string;
    static: string;
    /** The requirements file of an app without pyproject.toml, relative to path; chosen from the app when unset. */
    requirements?: string;
    /** Packages added to the app's own dependencies in the lock made on the deploying machine. */
    addPackages: string[];
  };
  /** Plain variables, including the ones the program derives (PROJECT_NAME, WEB_PORT, ...). */
  env: Record<string, string>;
  /** The required variables of the roles this project runs (standard v2.0's list, less what no enabled role reads). */
  requiredEnv: string[];
  /** Secret variables, each a secret Output. */
  secretEnv: Record<string, pulumi.Output<string>>;
  generatedSecrets: string[];
  /** Debian packages the app needs beyond the base set. */
  systemPackages: string[];
  /** venv: standard v2.0 (uv venv, systemd units); docker: the Docker standard's containers. */
  runtime: "venv" | "docker";
  /** Docker mode's engine settings and container limits; baseImage is set exactly when runtime is docker. */
  docker: {
    baseImage?: string;
    baseImageFile?: string;
    /** The app's own Dockerfile (in app.path), `none`, or unset: found in the app by checkApp. */
    dockerfile?: string;
    memory: string;
    cpus: string;
    pidsLimit: number;
    logMaxSize: string;
    logMaxFiles: number;
  };
  /** Caddy in front: the project's site on every host. */
  proxy: {
    enabled: boolean;
    domains: string[];
    tls: "auto" | "internal";
    email?: string;
    apiPath: string;
    /** `auto`, `none` or a URL path such as /static/ (see siteSpec). */
    staticPath: string;
  };
  /** Hosts without PyPI: wheels gathered here and uploaded. */
  offline: { enabled: boolean; arch: "x86_64" | "aarch64" };
  /** PostgreSQL on the host; `name` (database and role) set exactly when `local`. */
  database: { local: boolean; name?: string; backupRetentionDays: number };
  /** `db`: the project's database on the host's Redis; set exactly when `local`. */
  redis: { local: boolean; db?: number };
  release: {
    keep: number;
    healthPath: string;
    healthTimeoutSeconds: number;
    healthPasses: number;
    healthNamesRelease: boolean;
    watchSeconds: number;
    pin?: string;
    batchSize: number;
    lockWaitSeconds: number;
  };
}

/**
 * The provider masks a secret in command output only from this length on
 * (shorter strings would mask parts of ordinary words): shortestScrubbed in
 * plugins/provider/secrets.ts, which the program does not load.
 */
export const shortestMaskedSecret = 4;

/** Names that look like they hold a secret and so belong in secretEnv. */
const secretLooking = /(SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_KEY|_KEY$)/;

function crossCheck(ns: string, out: Record<string, unknown>, raw: RawConfig, problems: string[]): void {
  const project = out["project"] as string | undefined;
  if (!project) return;
  const ports = out["ports"] as { base?: number };
  const services = out["services"] as StackConfig["services"];
  let range: PortRange | undefined;
  try {
    range = rangeFor(project, ports.base);
    out["ports"] = range;
  } catch (e) {
    if (!(e instanceof PortError)) throw e;
    problems.push(`${ns}:${e.message}`);
  }
  for (const role of ["web", "api"] as const) {
    const svc = services[role];
    try {
      checkBind(role, svc.bind);
      if (range) {
        if (svc.port === undefined) svc.port = portFor(range, role);
        else checkPort(project, range, role, svc.port);
      }
    } catch (e) {
      if (!(e instanceof PortError)) throw e;
      problems.push(`${ns}:${e.message}`);
    }
  }
  if (services.web.enabled && services.api.enabled && services.web.port === services.api.port) {
    problems.push(
      `${ns}:services.api.port: ${services.api.port} is also web's port; leave it unset for the registry's +1`,
    );
  }
  if (out["serviceUser"] === undefined) out["serviceUser"] = project;
  if (out["serviceUser"] === "root")
    problems.push(`${ns}:serviceUser: services must not run as root; pick another name`);

  const env = out["env"] as Record<string, string>;
  const secretEnv = out["secretEnv"] as Record<string, string>;
  const generated = out["generatedSecrets"] as string[];
  if (Object.keys(secretEnv).length > 0 && !raw.secretKeys.has("secretEnv")) {
    problems.push(
      `${ns}:secretEnv: values must be stored encrypted; set each with \`pulumi config set --secret --path 'secretEnv.NAME' ...\``,
    );
  }
  for (const [k, v] of Object.entries(secretEnv)) {
    if (v !== "" && v.length < shortestMaskedSecret) {
      problems.push(
        `${ns}:secretEnv.${k}: ${v.length} character${v.length === 1 ? " is" : "s are"} too short to keep out of logs (output masks secrets of ${shortestMaskedSecret} characters or more); set a longer value with \`pulumi config set --secret --path 'secretEnv.${k}' ...\`, or move it to env if it is no secret`,
      );
    }
  }
  for (const k of Object.keys(env)) {
    if (secretLooking.test(k) || (k === "DATABASE_URL" && /:\/\/[^/@]*:[^/@]*@/.test(env[k]!))) {
      problems.push(
        `${ns}:env.${k}: looks like a secret; move it to secretEnv with \`pulumi config set --secret --path 'secretEnv.${k}' ...\``,
      );
    }
    if (k in secretEnv) problems.push(`${ns}:env.${k}: also set in secretEnv; keep one`);
  }
  for (const k of generated) {
    if (k in secretEnv || k in env) problems.push(`${ns}:generatedSecrets: ${k} is also set explicitly; keep one`);
  }
  const derived: Record<string, string> = { PROJECT_NAME: project };
  if (services.web.enabled && services.web.port) derived["WEB_PORT"] = String(services.web.port);
  if (services.api.enabled && services.api.port) derived["API_PORT"] = String(services.api.port);
  const redis = out["redis"] as { local: boolean; db?: number };
  const docker = out["runtime"] === "docker";
  if (docker && redis.local) {
    // Its own Redis container on the project's network: database 0 is its alone.
    if (redis.db !== undefined)
      problems.push(`${ns}:redis.db: with runtime: docker the project has a Redis container of its own; remove it`);
    derived["REDIS_URL"] = containerRedisUrl(project);
  } else if (redis.local) {
    if (redis.db === undefined && range) redis.db = redisDbFor(range);
    if (redis.db !== undefined) derived["REDIS_URL"] = localRedisUrl(redis.db);
  } else if (redis.db !== undefined) {
    problems.push(
      `${ns}:redis.db: only used with redis.local: true; with another Redis, put the database in env.REDIS_URL (redis://HOST:6379/N)`,
    );
  }
  const database = out["database"] as StackConfig["database"];
  if (database.local) {
    database.name ??= defaultDatabaseName(project);
    if ("DATABASE_URL" in secretEnv || "DATABASE_URL" in env) {
      problems.push(
        `${ns}:secretEnv.DATABASE_URL: database.local derives it from the host's PostgreSQL; remove it (pulumi config rm --path secretEnv.DATABASE_URL) or set database.local: false`,
      );
    }
  } else if (database.name !== undefined) {
    problems.push(`${ns}:database.name: only used with database.local: true; remove it, or set database.local: true`);
  }
  for (const [k, v] of Object.entries(derived)) {
    if (k in env && env[k] !== v)
      problems.push(`${ns}:env.${k}: the program sets it to ${v} (from the registry and config); remove it`);
    env[k] = v;
  }
  const proxy = out["proxy"] as StackConfig["proxy"];
  const dockerConfig = out["docker"] as StackConfig["docker"];
  if (docker) {
    if (!proxy.enabled)
      problems.push(
        `${ns}:proxy.enabled: runtime: docker serves only through Caddy (the containers publish on 127.0.0.1 ports that change with each release); set proxy.enabled: true and proxy.domains`,
      );
    if (dockerConfig.baseImage === undefined)
      problems.push(
        `${ns}:docker.baseImage: needed with runtime: docker; name a Debian image with Python ${String(out["python"])} (and give docker.baseImageFile when the hosts lack it)`,
      );
    if (dockerConfig.baseImageFile !== undefined && !fs.existsSync(dockerConfig.baseImageFile))
      problems.push(
        `${ns}:docker.baseImageFile: ${dockerConfig.baseImageFile} does not exist on this machine; give the path of a root file system tarball`,
      );
    if (database.local)
      problems.push(
        `${ns}:database.local: not available with runtime: docker yet (the containers cannot reach the host's 127.0.0.1); put DATABASE_URL in secretEnv, or use runtime: venv`,
      );
  } else {
    const set = ["baseImage", "baseImageFile", "dockerfile"].filter(
      (k) => (dockerConfig as Record<string, unknown>)[k] !== undefined,
    );
    for (const k of set)
      problems.push(`${ns}:docker.${k}: only used with runtime: docker; remove it, or set runtime: docker`);
  }
  if (proxy.enabled) {
    if (proxy.domains.length === 0)
      problems.push(
        `${ns}:proxy.domains: needed with proxy.enabled; set proxy.domains[0] to the name the project answers to`,
      );
    if (!services.web.enabled && !services.api.enabled)
      problems.push(
        `${ns}:proxy.enabled: neither web nor api runs, so Caddy has nothing to serve; turn one on, or the proxy off`,
      );
    if (proxy.apiPath === "/" && services.web.enabled && services.api.enabled)
      problems.push(
        `${ns}:proxy.apiPath: "/" sends every request to the api and leaves web unreachable; use a prefix such as /api`,
      );
    if (proxy.email !== undefined && proxy.tls === "internal")
      problems.push(`${ns}:proxy.email: only used with proxy.tls: auto; remove it`);
    if (proxy.staticPath.startsWith("/") && !services.web.enabled)
      problems.push(
        `${ns}:proxy.staticPath: web does not run, so no static files are built for it; remove it, or turn web on`,
      );
    if (proxy.staticPath.startsWith("/") && proxy.apiPath !== "/" && proxy.staticPath.startsWith(`${proxy.apiPath}/`))
      problems.push(
        `${ns}:proxy.staticPath: ${proxy.staticPath} lies under the api's ${proxy.apiPath}; use a path of web's such as /static/`,
      );
  }
  const nonEmpty = (m: Record<string, string>) => Object.keys(m).filter((k) => m[k] !== "");
  const provided = new Set([
    ...nonEmpty(env),
    ...nonEmpty(secretEnv),
    ...generated,
    ...(database.local ? ["DATABASE_URL"] : []),
  ]);
  const roles = (["web", "api", "celery", "beat"] as const).filter((r) => services[r].enabled);
  out["requiredEnv"] = requiredVariablesFor(roles);
  for (const name of requiredVariablesFor(roles)) {
    if (!provided.has(name)) {
      const fix =
        name === "DATABASE_URL"
          ? `pulumi config set --secret --path 'secretEnv.DATABASE_URL' postgresql://...`
          : name === "SECRET_KEY"
            ? "list it in generatedSecrets, or set secretEnv.SECRET_KEY with --secret"
            : name === "REDIS_URL"
              ? "set redis.local: true, or env.REDIS_URL"
              : `pulumi config set --path 'env.${name}' VALUE`;
      problems.push(`${ns}:env: ${name} is required by standard v2.0 ("Required Variables"); ${fix}`);
    }
  }
}

export interface RawConfig {
  /** Keys without the namespace, values as the engine gives them (strings; JSON for objects and lists). */
  values: Record<string, string>;
  /** Keys (without the namespace) that are stored as secrets. */
  secretKeys: Set<string>;
}

function parseValue(raw: string): unknown {
  const t = raw.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return raw;
    }
  }
  return raw;
}

/**
 * Validates raw config. Throws ConfigError listing every problem, each with the
 * key's path (`ayna-deploy:hosts[0].port`) and the fix.
 */
export function parseStackConfig(namespace: string, stack: string, raw: RawConfig): StackConfig {
  const problems: string[] = [];
  const known = Object.keys(schema);
  for (const key of Object.keys(raw.values)) {
    if (!(key in schema)) problems.push(unknownKeyMessage(`${namespace}:${key}`, key, known));
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema)) {
    const path = `${namespace}:${key}`;
    const rawValue = raw.values[key];
    if (field.kind === "string" && field.secret && rawValue !== undefined && !raw.secretKeys.has(key)) {
      problems.push(
        `${path}: must be stored encrypted; run \`pulumi config set --secret ${key} ...\` (and rotate it: it was in plain text)`,
      );
    }
    const v = validateField(path, field, rawValue === undefined ? undefined : parseValue(rawValue), problems);
    if (v !== undefined) out[key] = v;
  }
  if (out["stage"] === undefined) {
    if (["dev", "staging", "production"].includes(stack)) out["stage"] = stack;
    else problems.push(`${namespace}:stage: required when the stack is not named dev, staging or production`);
  }
  const hosts = (out["hosts"] as HostConfig[] | undefined) ?? [];
  const seen = new Set<string>();
  hosts.forEach((h, i) => {
    if (h && seen.has(h.name)) problems.push(`${namespace}:hosts[${i}].name: "${h.name}" is used twice`);
    if (h) seen.add(h.name);
    if (h && !h.hostKey && !h.insecureIgnoreHostKey) {
      problems.push(
        `${namespace}:hosts[${i}].hostKey: required; pin the host key (ssh-keyscan -t ed25519 ${h.address}) or set insecureIgnoreHostKey: true`,
      );
    }
  });
  if (problems.length === 0) crossCheck(namespace, out, raw, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const secretEnv: Record<string, pulumi.Output<string>> = {};
  for (const [k, v] of Object.entries(out["secretEnv"] as Record<string, string>)) secretEnv[k] = pulumi.secret(v);
  return {
    ...(out as unknown as Omit<StackConfig, "sshPrivateKey" | "secretEnv">),
    secretEnv,
    sshPrivateKey: pulumi.secret(out["sshPrivateKey"] as string),
  };
}

/** Reads this stack's config from the engine. */
export function loadStackConfig(): StackConfig {
  const namespace = pulumi.getProject();
  const all = pulumi.runtime.allConfig();
  const isSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  for (const [fullKey, value] of Object.entries(all)) {
    const idx = fullKey.indexOf(":");
    if (fullKey.slice(0, idx) !== namespace) continue;
    const key = fullKey.slice(idx + 1);
    values[key] = value;
    if (isSecret?.(fullKey)) secretKeys.add(key);
  }
  return parseStackConfig(namespace, pulumi.getStack(), { values, secretKeys });
}
