// The stack's own config, read through the pulumi CLI for the operator
// commands (scripts/ops.ts): the hosts to reach and what runs on them. The
// keys are checked against the same schema the program uses, so the defaults
// (ports, service user, login user) cannot drift from what `pulumi up` deployed.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { defaultDatabaseName } from "../../builders/postgres";
import { usesSocket } from "../../builders/units";
import { appSteps } from "../../stacks/app";
import { schema } from "../../stacks/schema";
import { validateField } from "../../stacks/validate";
import { checkPort, PortError, portFor, rangeFor } from "../../standard/portRegistry";
import { repoRoot } from "./toolchain";

export interface StackRef {
  stack: string;
  /** Absolute path, when the config file is not Pulumi.<stack>.yaml beside Pulumi.yaml. */
  configFile?: string;
}

export interface OpsHost {
  /** Its place in hosts[]. */
  index: number;
  name: string;
  address: string;
  port: number;
  user: string;
  /** "ssh-ed25519 AAAA...": every operator connection pins it (see pinnedHosts). */
  hostKey?: string;
}

export type Role = "web" | "api" | "celery" | "beat";

export interface OpsStack extends StackRef {
  project: string;
  stage: string;
  serviceUser: string;
  hosts: OpsHost[];
  /** Enabled roles in the program's order, with the HTTP port of web and api. */
  /** Enabled services; `socket` is the listening socket unit that holds a gunicorn service's port. */
  services: { role: Role; unit: string; socket?: string; port?: number; healthPath?: string }[];
  /** The project's ten ports. */
  portRange: { first: number; last: number };
  healthPath: string;
  /** release.pin: the release served instead of the source (set by a rollback). */
  pin?: string;
  /** The project's database on each host's PostgreSQL, when database.local is set. */
  database?: { name: string };
  /** app.migrate resolved against the app folder (`@RELEASE@` for the release's directory); none when off. */
  migrate?: string[];
  /** The app is Django (manage.py): make shell opens manage.py shell, else Python's. */
  django: boolean;
  /** venv: units; docker: the containers `{project}-<role>` (scripts/lib/dockerOps.ts). */
  runtime: "venv" | "docker";
}

export class OpsError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/** `--stack S [--config-file F]`, for every pulumi command. */
export function stackFlags(ref: StackRef): string[] {
  return ["--stack", ref.stack, ...(ref.configFile ? ["--config-file", ref.configFile] : [])];
}

function pulumiOutput(ref: StackRef, args: string[]): string {
  try {
    return execFileSync("pulumi", [...args, ...stackFlags(ref), "--non-interactive"], {
      cwd: repoRoot,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw new OpsError(`pulumi ${args[0]} ${args[1] ?? ""} failed for stack ${ref.stack}: ${stderr || String(e)}`);
  }
}

function namespace(): string {
  const yaml = fs.readFileSync(path.join(repoRoot, "Pulumi.yaml"), "utf8");
  const name = /^name:\s*(\S+)\s*$/m.exec(yaml)?.[1];
  if (!name) throw new OpsError("Pulumi.yaml names no project");
  return name;
}

/** Reads and checks the stack's config (secret values are not read here). */
export function readStack(ref: StackRef): OpsStack {
  const ns = namespace();
  const raw = JSON.parse(pulumiOutput(ref, ["config", "--json"])) as Record<
    string,
    { value?: string; objectValue?: unknown; secret: boolean }
  >;
  const value = (key: string): unknown => {
    const v = raw[`${ns}:${key}`];
    return v?.objectValue ?? v?.value;
  };
  const problems: string[] = [];
  const field = <T>(key: keyof typeof schema & string): T =>
    validateField(`${ns}:${key}`, schema[key]!, value(key), problems) as T;

  const project = field<string>("project");
  const stageSet = field<string | undefined>("stage");
  const hostList = field<Partial<OpsHost>[]>("hosts") ?? [];
  const serviceUser = field<string | undefined>("serviceUser") ?? project;
  const ports = field<{ base?: number }>("ports");
  const services =
    field<Record<Role, { enabled: boolean; port?: number; server?: "gunicorn" | "uvicorn"; healthPath?: string }>>(
      "services",
    );
  const release = field<{ healthPath: string; pin?: string }>("release");
  const database = field<{ local: boolean; name?: string }>("database");
  const app = field<{ path: string; migrate: string; static: string }>("app");
  const runtime = field<"venv" | "docker">("runtime");
  // As the program resolves it: relative to the project's folder.
  const appDir = path.resolve(repoRoot, app.path);
  const steps = appSteps(ns, appDir, { app }, problems);
  if (raw[`${ns}:sshPrivateKey`] === undefined) {
    problems.push(`${ns}:sshPrivateKey: required; set it with \`pulumi config set --secret sshPrivateKey < key\``);
  }
  // As the program: the stack's own name (org/project/NAME) when stage is not set.
  const name = ref.stack.split("/").pop()!;
  const stage = stageSet ?? (["dev", "staging", "production"].includes(name) ? name : undefined);
  if (!stage) problems.push(`${ns}:stage: required when the stack is not named dev, staging or production`);

  const hosts: OpsHost[] = hostList
    .map((h, index) => ({
      index,
      name: h?.name ?? "",
      address: h?.address ?? "",
      port: h?.port ?? 22,
      user: h?.user ?? "deploy",
      hostKey: h?.hostKey,
    }))
    .filter((h) => h.name && h.address); // validateField has named what is missing

  let base = 0;
  if (project) {
    try {
      const range = rangeFor(project, ports?.base);
      base = range.base;
      for (const role of ["web", "api"] as const) {
        const s = services[role];
        if (s.port === undefined) s.port = portFor(range, role);
        else checkPort(project, range, role, s.port);
      }
    } catch (e) {
      if (!(e instanceof PortError)) throw e;
      problems.push(`${ns}:${e.message}`);
    }
  }
  if (problems.length > 0) {
    const where = ref.configFile ?? `Pulumi.${ref.stack}.yaml`;
    throw new OpsError(`the config of stack ${ref.stack} (${where}) is not usable:\n  - ${problems.join("\n  - ")}`);
  }
  return {
    ...ref,
    project,
    stage: stage!,
    serviceUser,
    hosts,
    services: (["web", "api", "celery", "beat"] as const)
      .filter((role) => services[role].enabled)
      .map((role) => ({
        role,
        unit: `${project}-${role}.service`,
        ...(usesSocket({ role, apiServer: services.api.server }) ? { socket: `${project}-${role}.socket` } : {}),
        port: services[role].port,
        ...(services[role].healthPath ? { healthPath: services[role].healthPath } : {}),
      })),
    portRange: { first: base, last: base + 9 },
    healthPath: release.healthPath,
    pin: release.pin,
    ...(database.local ? { database: { name: database.name ?? defaultDatabaseName(project) } } : {}),
    ...(steps.migrate ? { migrate: steps.migrate.command } : {}),
    django: fs.existsSync(path.join(appDir, "manage.py")),
    runtime,
  };
}

/** The decrypted private key. Only ever held in memory and written to a 0600 file by Keyring. */
export function readPrivateKey(ref: StackRef): string {
  // OpenSSH wants exactly one newline after the key's last line.
  return `${pulumiOutput(ref, ["config", "get", "sshPrivateKey"]).replace(/\s+$/, "")}\n`;
}

/** The hosts an operator command acts on (HOST= picks one), each with its key pinned. */
export function pinnedHosts(s: OpsStack, only?: string): OpsHost[] {
  const hosts = only === undefined ? s.hosts : s.hosts.filter((h) => h.name === only);
  if (hosts.length === 0) {
    throw new OpsError(
      `HOST=${only} is not a host of stack ${s.stack}; its hosts: ${s.hosts.map((h) => h.name).join(", ")}`,
    );
  }
  for (const h of hosts) {
    // Never connect to an unverified host, whatever the deploy itself was allowed (insecureIgnoreHostKey).
    if (!h.hostKey) {
      throw new OpsError(
        `hosts[${h.index}].hostKey of stack ${s.stack} is not set: pin it with ` +
          `pulumi config set --path 'hosts[${h.index}].hostKey' "$(ssh-keyscan -t ed25519 ${h.address} | cut -d' ' -f2-)" ` +
          `(and check it out of band)`,
      );
    }
  }
  return hosts;
}
