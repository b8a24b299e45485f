// The operator commands behind the Makefile (standard v2.0 "Required Makefile
// Targets": "Every project MUST implement these targets"). `make TARGET
// STACK=...` runs `ops.ts TARGET` with the make variables in its environment:
// STACK (required), CONFIG_FILE, HOST, YES, TO, LINES, FOLLOW.
//
// Everything comes from the stack itself: deploys and rollbacks are pulumi
// updates, and the hosts, users, ports and units are read from the stack's
// config (`pulumi config --json`); there is no second host list. SSH pins each
// host's configured key and uses the stack's key (see lib/ssh.ts).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline/promises";
import { releasePython } from "../builders/appSteps";
import { databaseNamePattern, databaseToolPath } from "../builders/postgres";
import { releaseDirToken } from "../builders/releaseTool";
import { argv } from "../builders/shell";
import { paths } from "../standard/paths";
import { parseProbe, probeScript, renderStatus, validateHost } from "./lib/hostReport";
import { asRoot, Keyring, scriptAsRoot, sshFailure } from "./lib/ssh";
import {
  containerOf,
  containers,
  containerStateFormat,
  dockerAppCommand,
  dockerLogsScript,
  parseContainers,
} from "./lib/dockerOps";
import {
  OpsError,
  OpsHost,
  OpsStack,
  pinnedHosts,
  readPrivateKey,
  readStack,
  stackFlags,
  StackRef,
} from "./lib/stackConfig";
import { repoRoot } from "./lib/toolchain";

interface Options extends StackRef {
  target: string;
  host?: string;
  yes: boolean;
  to?: string;
  lines: number;
  follow: boolean;
  /** restore: the dump's file name in shared/backups. */
  file?: string;
  /** restore: the database to load it into. */
  into?: string;
}

const help = `Operating a stack (Ayna Deployment Standard v2.0): make TARGET STACK=staging|production [CONFIG_FILE=FILE] [HOST=NAME]

Deployment:
  make preview    pulumi preview --diff of the stack
  make deploy     preview --diff, then pulumi up; production asks first (YES=1 answers yes)
  make rollback   back to the release before the current one (TO=v7: to that release)
Database:
  make migrate    the app's migrations (app.migrate) on each host, as the service user with the env file
  make shell      manage.py shell (Python's, without Django) on one host (the first, or HOST=)
  make backup     dump the project's database (database.local) into shared/backups on each host
  make restore    FILE=NAME.dump: load a dump into the scratch database NAME_restore (INTO=NAME: the live one)
Services:
  make start      start the project's units on each host
  make stop       stop them
  make restart    restart them, one host at a time
  make status     serving release and SHA, units, health, deploy lock, last audit entries
  make logs       follow the journal of every unit of the project (LINES=N, FOLLOW=0 prints and exits)
  make validate   check each host against the standard's checklist; exits non-zero on any failure

Variables:
  STACK=NAME        the pulumi stack (required): staging or production
  CONFIG_FILE=FILE  its config file, when it is not Pulumi.<stack>.yaml here (pulumi --config-file)
  HOST=NAME         only this host of the stack (hosts[].name); not for preview, deploy, rollback
  YES=1             deploy to production without asking (needed where there is no terminal)
  TO=vN             rollback: the release to go back to
  LINES=N           logs: lines of history to start with (default 50)
  FOLLOW=0          logs: print and exit instead of following
  FILE=NAME.dump    restore: a dump in shared/backups (make backup prints its name)
  INTO=DB           restore: the database to replace (default: a scratch copy, <database>_restore)
`;

function options(target: string, env: NodeJS.ProcessEnv): Options {
  const stack = env["STACK"]?.trim() ?? "";
  if (!stack) {
    throw new OpsError(
      `STACK is required: make ${target} STACK=staging (or STACK=production); ` +
        `add CONFIG_FILE=FILE when the stack's config is not Pulumi.<stack>.yaml in ${repoRoot}`,
    );
  }
  if (!/^[A-Za-z0-9._/-]+$/.test(stack)) throw new OpsError(`STACK=${stack}: not a stack name`);
  let configFile: string | undefined;
  if (env["CONFIG_FILE"]) {
    // Relative to where make was run, not to the repo.
    configFile = path.resolve(env["AYNA_OPS_CALLER_DIR"] || process.cwd(), env["CONFIG_FILE"]);
    if (!fs.existsSync(configFile)) throw new OpsError(`CONFIG_FILE=${env["CONFIG_FILE"]}: no such file`);
  }
  const to = env["TO"] || undefined;
  if (to !== undefined && !/^v[1-9][0-9]*$/.test(to)) throw new OpsError(`TO=${to}: expected a release such as v7`);
  const lines = env["LINES"] ? Number(env["LINES"]) : 50;
  if (!Number.isInteger(lines) || lines < 0) throw new OpsError(`LINES=${env["LINES"]}: expected a whole number`);
  const file = env["FILE"] || undefined;
  if (file !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*\.dump$/.test(file)) {
    throw new OpsError(
      `FILE=${file}: expected the name of a dump in shared/backups, such as demoapp-20261201T030000Z.dump`,
    );
  }
  const into = env["INTO"] || undefined;
  if (into !== undefined && !databaseNamePattern.test(into)) throw new OpsError(`INTO=${into}: not a database name`);
  return {
    target,
    stack,
    configFile,
    file,
    into,
    host: env["HOST"] || undefined,
    yes: /^(1|y|yes|true)$/i.test(env["YES"] ?? ""),
    to,
    lines,
    follow: env["FOLLOW"] !== "0",
  };
}

/** deploy, preview and rollback are stack updates: every host, in the stack's batches. */
function wholeStackOnly(o: Options): void {
  if (o.host !== undefined) {
    throw new OpsError(
      `HOST= does not apply to ${o.target}: a release goes to every host of the stack, in batches ` +
        `(release.batchSize), so all hosts serve the same release; drop HOST=${o.host}`,
    );
  }
}

/** Runs pulumi with the stack's flags, output straight to the terminal. */
function pulumi(o: Options, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("pulumi", [...args, ...stackFlags(o)], { cwd: repoRoot, stdio: "inherit" });
    child.on("error", (e) =>
      reject(
        new OpsError(`cannot run pulumi (${e.message}): run make from the repo, or . scripts/lib.sh && use_toolchain`),
      ),
    );
    child.on("close", (code) => resolve(code ?? 1));
  });
}

async function withHosts(o: Options, fn: (s: OpsStack, hosts: OpsHost[], keys: Keyring) => Promise<number>) {
  const s = readStack(o);
  const hosts = pinnedHosts(s, o.host);
  const keys = new Keyring(readPrivateKey(o), hosts);
  try {
    return await fn(s, hosts, keys);
  } finally {
    keys.dispose();
  }
}

/** The make command line for another target on the same stack, for messages. */
function again(o: Options, target: string): string {
  const file = process.env["CONFIG_FILE"];
  return `make ${target} STACK=${o.stack}${file ? ` CONFIG_FILE=${file}` : ""}`;
}

function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

// --- deployment ---

async function deploy(o: Options): Promise<number> {
  wholeStackOnly(o);
  // An unusable config is reported by the preview itself, in pulumi's words.
  let stage = o.stack;
  try {
    const s = readStack(o);
    stage = s.stage;
    if (s.pin) {
      note(
        `release.pin=${s.pin} is set (a rollback): the hosts keep serving ${s.pin}, not the source; ` +
          `pulumi config rm --path release.pin${o.configFile ? ` --config-file ${o.configFile}` : ""} --stack ${o.stack} deploys the source again`,
      );
    }
  } catch (e) {
    if (!(e instanceof OpsError)) throw e;
  }
  const production = stage === "production" || o.stack === "production";
  if (production && !o.yes && !process.stdin.isTTY) {
    throw new OpsError(
      `refusing to deploy to production without a confirmation, and there is no terminal to ask on: ` +
        `check ${again(o, "preview")}, then run ${again(o, "deploy")} YES=1`,
    );
  }
  const previewed = await pulumi(o, ["preview", "--diff"]);
  if (previewed !== 0) return previewed;
  if (production && !o.yes) {
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`Deploy the changes above to ${o.stack} (production)? Type yes to go on: `);
    rl.close();
    if (answer.trim() !== "yes") {
      note("not deployed");
      return 1;
    }
  }
  return pulumi(o, ["up", "--yes", "--skip-preview"]);
}

async function preview(o: Options): Promise<number> {
  wholeStackOnly(o);
  return pulumi(o, ["preview", "--diff"]);
}

async function rollbackTarget(o: Options): Promise<number> {
  wholeStackOnly(o);
  // Loaded here: the Automation API costs the other targets nothing then.
  const { parseArgs, rollback } = await import("./rollback");
  const args = parseArgs([
    "--stack",
    o.stack,
    ...(o.configFile ? ["--config-file", o.configFile] : []),
    ...(o.to ? ["--to", o.to] : []),
  ]);
  try {
    await rollback(args);
    return 0;
  } catch (e) {
    note(`rollback failed: ${e instanceof Error ? e.message : String(e)}`);
    return process.exitCode === 130 ? 130 : 1;
  }
}

// --- the app, as its service user ---

/**
 * COMMAND in the current release (`@RELEASE@` stands for its directory), as
 * the services run: their user, env file and confinement.
 */
function appCommand(s: OpsStack, host: OpsHost, command: string[], tty: boolean): string {
  if (s.runtime === "docker") return asRoot(host, ...dockerAppCommand(s, command, tty));
  const p = s.project;
  const current = paths.current(p);
  return asRoot(
    host,
    "systemd-run",
    "--quiet",
    "--wait",
    "--collect",
    "--service-type=exec",
    tty ? "--pty" : "--pipe",
    `--uid=${s.serviceUser}`,
    `--gid=${s.serviceUser}`,
    "-p",
    `EnvironmentFile=${paths.envFile(p, s.stage)}`,
    "-p",
    `WorkingDirectory=${current}`,
    "-p",
    "ProtectSystem=strict",
    "-p",
    `ReadWritePaths=${paths.shared(p)} ${paths.logs(p)}`,
    "-p",
    "PrivateTmp=yes",
    "-p",
    "NoNewPrivileges=yes",
    "-E",
    `PATH=${current}/.venv/bin:/usr/bin:/bin`,
    "--",
    ...command.map((w) => w.split(releaseDirToken).join(current)),
  );
}

async function migrate(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    const command = s.migrate;
    if (!command) {
      note(
        `make migrate: app.migrate is none for stack ${s.stack} (or the app has neither manage.py nor alembic.ini); nothing to run`,
      );
      return 0;
    }
    // Every host, as a deploy does: hosts sharing one database find nothing left to apply.
    for (const host of hosts) {
      const first = s.services[0];
      const where =
        s.runtime === "docker" && first ? `the ${containerOf(s, first.role)} container` : paths.current(s.project);
      note(`${host.name}: ${command.slice(1).join(" ")} in ${where}`);
      const code = await keys.attach(host, appCommand(s, host, command, false));
      if (code !== 0) {
        note(`${host.name}: migrate exited ${code}${hosts.length > 1 ? "; the hosts after it were not migrated" : ""}`);
        return code;
      }
    }
    return 0;
  });
}

async function shellTarget(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    const host = hosts[0]!;
    if (hosts.length > 1) note(`shell on ${host.name} (HOST= picks another: ${hosts.map((h) => h.name).join(", ")})`);
    // A terminal gets an interactive shell; piped input runs as a script.
    const tty = !!process.stdin.isTTY && !!process.stdout.isTTY;
    const command = s.django ? [releasePython, "manage.py", "shell"] : [releasePython];
    return keys.attach(host, appCommand(s, host, command, tty), { tty, input: true });
  });
}

function localDatabase(s: OpsStack, target: string): string {
  if (!s.database) {
    throw new OpsError(
      `make ${target}: stack ${s.stack} has no database on its hosts (database.local is not set); ` +
        `back up the database its DATABASE_URL names with that server's own tools`,
    );
  }
  return s.database.name;
}

async function backup(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    const name = localDatabase(s, "backup");
    for (const host of hosts) {
      note(`${host.name}: pg_dump of ${name} into ${paths.shared(s.project)}/backups`);
      const code = await keys.attach(host, asRoot(host, databaseToolPath(s.project), "backup"));
      if (code !== 0) return code;
    }
    return 0;
  });
}

async function restore(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    const name = localDatabase(s, "restore");
    if (!o.file) {
      throw new OpsError(
        `FILE= is required: make restore FILE=${name}-YYYYMMDDTHHMMSSZ.dump (make backup prints the name)`,
      );
    }
    // Each host has its own database and its own dumps.
    if (hosts.length > 1) {
      throw new OpsError(`restore acts on one host's database: add HOST= (${hosts.map((h) => h.name).join(", ")})`);
    }
    const host = hosts[0]!;
    const target = o.into ?? `${name}_restore`;
    note(`${host.name}: ${o.file} into ${target}${target === name ? " (the live database)" : " (a scratch copy)"}`);
    return keys.attach(host, asRoot(host, databaseToolPath(s.project), "restore", o.file, target));
  });
}

// --- services ---

async function logs(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    const command = (host: OpsHost) =>
      s.runtime === "docker"
        ? scriptAsRoot(host, dockerLogsScript(s, o.lines, o.follow))
        : asRoot(
            host,
            "journalctl",
            "--no-pager",
            "--output=with-unit",
            `--lines=${o.lines}`,
            ...(o.follow ? ["--follow"] : []),
            // Every unit of the project, release candidates included.
            `--unit=${s.project}-*`,
          );
    const codes = await Promise.all(
      hosts.map((h) => keys.attach(h, command(h), hosts.length > 1 ? { prefix: `${h.name}| ` } : {})),
    );
    return Math.max(...codes);
  });
}

/** What start, stop and restart act on, and each one's state as a line: units, or Docker mode's containers. */
function controlled(s: OpsStack, verb: "start" | "stop" | "restart", host: OpsHost) {
  if (s.runtime === "docker") {
    const names = containers(s);
    return {
      tool: "docker",
      act: asRoot(host, "docker", verb, ...names),
      state: asRoot(host, "docker", "inspect", "-f", containerStateFormat, ...names),
      lines: (out: string) =>
        [...parseContainers(out).values()].map(
          (c) => `${c.name.padEnd(28)} ${c.status}${c.health ? ` (${c.health})` : ""}`,
        ),
    };
  }
  // A stopped service whose socket still listens would be started again by
  // the next request: stop takes the sockets down too (after the services'
  // own stop, so none is re-activated meanwhile), start brings them up first.
  const sockets = s.services.flatMap((x) => (x.socket ? [x.socket] : []));
  const services = s.services.map((x) => x.unit);
  const units = verb === "restart" ? services : [...sockets, ...services];
  return {
    tool: "systemctl",
    act: asRoot(host, "systemctl", verb, ...units),
    state: argv("systemctl", "show", "-p", "Id,ActiveState,SubState", ...units),
    lines: (out: string) =>
      out
        .trim()
        .split(/\n\s*\n/)
        .map((block) => {
          const get = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(block)?.[1] ?? "?";
          return `${get("Id").padEnd(28)} ${get("ActiveState")} (${get("SubState")})`;
        }),
  };
}

function unitControl(verb: "start" | "stop" | "restart") {
  return (o: Options): Promise<number> =>
    withHosts(o, async (s, hosts, keys) => {
      let failed = 0;
      // One host after the other, so a restart never takes every host down at once.
      for (const host of hosts) {
        const c = controlled(s, verb, host);
        const r = await keys.capture(host, c.act, { timeoutMs: 300_000 });
        if (r.code === 255) throw new OpsError(sshFailure(host, r), 1);
        const states = await keys.capture(host, c.state);
        for (const line of c.lines(states.stdout)) process.stdout.write(`${host.name}  ${line}\n`);
        if (r.code !== 0) {
          note(`${host.name}: ${c.tool} ${verb} failed: ${r.stderr.trim()}`);
          failed = r.code;
        }
      }
      return failed;
    });
}

async function probeAll(s: OpsStack, hosts: OpsHost[], keys: Keyring, full: boolean) {
  return Promise.all(
    hosts.map(async (host) => {
      const r = await keys.capture(host, scriptAsRoot(host, probeScript(s, full)));
      // The probe's own commands may fail (that is what it reports); no section at all means it never ran.
      const probe = parseProbe(r.stdout);
      if (r.code === 255) return { host, error: sshFailure(host, r) };
      if (Object.keys(probe).length === 0) {
        const why = r.stderr.trim() || `exit ${r.code}`;
        return { host, error: `cannot inspect ${host.name}: ${why} (the login user needs passwordless sudo)` };
      }
      return { host, probe };
    }),
  );
}

async function status(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    let unreachable = 0;
    const reports = await probeAll(s, hosts, keys, false);
    process.stdout.write(
      reports
        .map((r) => {
          if (r.error) unreachable++;
          return r.error ? `${r.host.name}  ${r.error}` : renderStatus(s, r.host, r.probe!);
        })
        .join("\n\n") + "\n",
    );
    return unreachable ? 1 : 0;
  });
}

async function validate(o: Options): Promise<number> {
  return withHosts(o, async (s, hosts, keys) => {
    const reports = await probeAll(s, hosts, keys, true);
    let passed = 0;
    let failed = 0;
    for (const r of reports) {
      process.stdout.write(`${r.host.name}  ${r.host.user}@${r.host.address}:${r.host.port}  /opt/ayna/${s.project}\n`);
      if (r.error) {
        failed++;
        process.stdout.write(`  ✗ reachable over ssh: ${r.error}\n`);
        continue;
      }
      for (const c of validateHost(s, r.probe!)) {
        if (c.ok) passed++;
        else failed++;
        process.stdout.write(`  ${c.ok ? "✓" : "✗"} ${c.what}: ${c.found}\n`);
        if (!c.ok) process.stdout.write(`      rule: ${c.rule}\n`);
      }
    }
    process.stdout.write(
      `validate ${s.stack}: ${passed} passed, ${failed} failed on ${hosts.length} host(s)` +
        `${failed ? "" : " - conforms to standard v2.0"}\n`,
    );
    return failed ? 1 : 0;
  });
}

const targets: Record<string, (o: Options) => Promise<number>> = {
  deploy,
  preview,
  rollback: rollbackTarget,
  migrate,
  shell: shellTarget,
  backup,
  restore,
  logs,
  start: unitControl("start"),
  stop: unitControl("stop"),
  restart: unitControl("restart"),
  status,
  validate,
};

async function main(target: string | undefined): Promise<number> {
  if (target === undefined || target === "help") {
    process.stdout.write(help);
    return 0;
  }
  const run = targets[target];
  if (!run) throw new OpsError(`unknown target ${target}; make help lists them`);
  return run(options(target, process.env));
}

if (require.main === module) {
  const target = process.argv[2];
  main(target).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const code = err instanceof OpsError ? err.exitCode : 1;
      note(`make ${target ?? ""}: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(code);
    },
  );
}
