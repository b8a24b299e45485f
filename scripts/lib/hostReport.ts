// What `make status` and `make validate` look at on a host: one read-only
// script over one ssh session gathers it (sections behind a marker line),
// and plain functions turn it into the status report and the checklist.
import { and, argv, or } from "../../builders/shell";
import { paths } from "../../standard/paths";
import { standardVersion } from "../../standard/variables";
import { proxyContainer } from "../../builders/caddy";
import { socketDir } from "../../builders/docker";
import { containerOf, containerProbeFormat, containers, parseContainers, socketHealthCommand } from "./dockerOps";
import type { OpsHost, OpsStack, Role } from "./stackConfig";

const mark = "@@ayna-ops@@";

/** Section name -> command. Every command only reads. */
function sections(s: OpsStack, full: boolean): [string, string][] {
  const p = s.project;
  const current = paths.current(p);
  const units = s.services.map((x) => x.unit);
  const docker = s.runtime === "docker";
  const list: [string, string][] = [
    ["release", argv("cat", `${current}/.ayna-release.json`)],
    ["tool", argv(`${paths.bin(p)}/ayna-release`, "status")],
    docker
      ? ["containers", argv("docker", "inspect", "-f", containerProbeFormat, ...containers(s))]
      : [
          "units",
          argv(
            "systemctl",
            "show",
            "-p",
            "Id,LoadState,ActiveState,SubState,UnitFileState,User,MainPID,FragmentPath",
            ...units,
          ),
        ],
    ...httpServices(s).map((x): [string, string] => [
      `health ${x.role}`,
      docker
        ? socketHealthCommand(s, x.role, x.healthPath ?? s.healthPath)
        : argv("curl", "-sS", "--max-time", "5", "-w", "\\n%{http_code}", healthUrl(s, x)),
    ]),
    ["audit", argv("tail", "-n", "5", `${paths.logs(p)}/deploy-audit.log`)],
  ];
  if (!full) return list;
  const common: [string, string][] = [
    ["stat", argv("stat", "-c", "%n|%F|%U|%G|%a", ...layout(s).map((l) => l.path), envFile(s))],
    ["current", argv("readlink", current)],
    ["venv", argv("readlink", paths.venv(p))],
    ["failed", or(and(argv("test", "-e", `${current}/.ayna-failed`), "echo yes"), "echo no")],
    ["template", argv("cat", `${paths.root(p)}/.template-version`)],
    // The hashes the last release recorded of the env file and units, against the files now.
    ["drift", and(argv(`${paths.bin(p)}/ayna-release`, "verify"), argv("echo", "as installed"))],
  ];
  if (docker) return [...list, ...common, ["published", argv("docker", "ps", "--format", "{{.Names}} {{.Ports}}")]];
  return [
    ...list,
    ...common,
    ["procs", argv("ps", "-eo", "user:32=,pid=,unit:100=")],
    ["listen", argv("ss", "-ltnpH")],
    ["security", argv("systemd-analyze", "security", "--no-pager", ...units)],
  ];
}

/** The probe: run as root (journal, env file and release tool are not the login user's). */
export function probeScript(s: OpsStack, full: boolean): string {
  return (
    sections(s, full)
      // The marker starts a line even after output without a final newline (curl -w).
      .map(([name, command]) => `${argv("printf", "\\n%s\\n", `${mark} ${name}`)}; { ${command}; } </dev/null 2>&1`)
      .join("\n")
  );
}

export type Probe = Record<string, string>;

export function parseProbe(out: string): Probe {
  const res: Probe = {};
  let name: string | undefined;
  for (const line of out.split("\n")) {
    if (line.startsWith(`${mark} `)) {
      name = line.slice(mark.length + 1);
      res[name] = "";
    } else if (name !== undefined) {
      res[name] += `${line}\n`;
    }
  }
  for (const k of Object.keys(res)) res[k] = res[k]!.replace(/\n+$/, "");
  return res;
}

function healthUrl(s: OpsStack, svc: { role: Role; port?: number; healthPath?: string }): string {
  const where =
    s.runtime === "docker" ? `unix:${socketDir(s.project)}/${svc.role}.sock:` : `http://127.0.0.1:${svc.port!}`;
  return `${where}${svc.healthPath ?? s.healthPath}`;
}

/** web and api: the roles that answer HTTP (on a port, or in Docker mode on their socket). */
function httpServices(s: OpsStack): OpsStack["services"] {
  return s.services.filter((x) =>
    s.runtime === "docker" ? x.role === "web" || x.role === "api" : x.port !== undefined,
  );
}

function envFile(s: OpsStack): string {
  return paths.envFile(s.project, s.stage);
}

/** Standard v2.0 "Directory Structure" (bin/ and venvs/ are ayna-deploy's). */
function layout(s: OpsStack): { path: string; what: string }[] {
  const p = s.project;
  return [
    { path: paths.root(p), what: `/opt/ayna/${p}/` },
    { path: paths.releases(p), what: "releases/" },
    { path: paths.shared(p), what: "shared/" },
    { path: `${paths.shared(p)}/media`, what: "shared/media/" },
    { path: `${paths.shared(p)}/backups`, what: "shared/backups/" },
    { path: paths.logs(p), what: "logs/" },
    { path: paths.venvs(p), what: "venvs/" },
    { path: paths.bin(p), what: "bin/" },
  ];
}

// --- parsed pieces ---

interface Unit {
  id: string;
  props: Record<string, string>;
}

function units(probe: Probe): Map<string, Unit> {
  const out = new Map<string, Unit>();
  for (const block of (probe["units"] ?? "").split(/\n\s*\n/)) {
    const props: Record<string, string> = {};
    for (const line of block.split("\n")) {
      const i = line.indexOf("=");
      if (i > 0) props[line.slice(0, i)] = line.slice(i + 1);
    }
    if (props["Id"]) out.set(props["Id"], { id: props["Id"], props });
  }
  return out;
}

function health(probe: Probe, role: string): { code: string; release?: string; body: string } {
  const lines = (probe[`health ${role}`] ?? "").split("\n");
  const code = lines.pop() ?? "";
  const body = lines.join("\n");
  return { code: /^\d{3}$/.test(code) ? code : "000", release: releaseIn(body), body };
}

function releaseIn(text: string): string | undefined {
  return /"release": ?"([^"]*)"/.exec(text)?.[1];
}

function shaIn(text: string): string | undefined {
  return /"sha": ?"([^"]*)"/.exec(text)?.[1];
}

function toolStatus(probe: Probe): { current?: string; previous?: string; releases?: string; lock?: string } {
  const t = probe["tool"] ?? "";
  const get = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(t)?.[1]?.trim();
  return {
    current: get("current"),
    previous: get("previous"),
    releases: get("releases"),
    lock: /^lock: (.*)$/m.exec(t)?.[1]?.trim(),
  };
}

// --- status ---

export function renderStatus(s: OpsStack, host: OpsHost, probe: Probe): string {
  const out: string[] = [`${host.name}  ${host.user}@${host.address}:${host.port}  (stack ${s.stack}, ${s.stage})`];
  const row = (label: string, text: string) => out.push(`  ${label.padEnd(9)} ${text}`);
  const more = (text: string) => out.push(`  ${"".padEnd(9)} ${text}`);
  const json = probe["release"] ?? "";
  const tool = toolStatus(probe);
  const web = httpServices(s)[0];
  const answer = web ? health(probe, web.role).body : "";
  const release = releaseIn(json) ?? releaseIn(answer);
  const sha = shaIn(json) ?? shaIn(answer);
  const created = /"created": ?"([^"]*)"/.exec(json)?.[1];
  row(
    "release",
    release
      ? `${release}  sha ${sha ?? "unknown"}${created ? `  created ${created}` : ""}`
      : "none serving (no releases/current)",
  );
  row("previous", tool.previous || "none");
  row("releases", tool.releases || "none on the host");
  row("lock", tool.lock ? `held: ${tool.lock}` : "free");
  const us = units(probe);
  const cs = parseContainers(probe["containers"] ?? "");
  s.services.forEach((svc, i) => {
    let text: string;
    if (s.runtime === "docker") {
      const name = containerOf(s, svc.role);
      const c = cs.get(name);
      text = `${name.padEnd(28)} ${c ? `${c.status}${c.health ? ` (${c.health})` : ""}  release ${c.release || "?"}` : "missing"}`;
    } else {
      const u = us.get(svc.unit)?.props;
      const state = u ? `${u["ActiveState"]} (${u["SubState"]})` : "unknown";
      text = `${svc.unit.padEnd(28)} ${state}${u?.["LoadState"] === "not-found" ? ", not installed" : ""}`;
    }
    if (i === 0) row(s.runtime === "docker" ? "containers" : "units", text);
    else more(text);
  });
  httpServices(s).forEach((svc, i) => {
    const h = health(probe, svc.role);
    const text = `${svc.role.padEnd(4)} ${healthUrl(s, svc)}  ${h.code === "000" ? "no answer" : h.code}${h.release ? `  release ${h.release}` : ""}`;
    if (i === 0) row("health", text);
    else more(text);
  });
  const audit = (probe["audit"] ?? "").split("\n").filter((l) => l && !/No such file/.test(l));
  row("audit", audit.length ? "last entries of logs/deploy-audit.log:" : "no deploy recorded");
  for (const l of audit) more(`  ${l.replace(/\t/g, "  ")}`);
  return out.join("\n");
}

// --- validate ---

export interface Check {
  ok: boolean;
  what: string;
  found: string;
  /** Where the rule comes from: standard v2.0's words, or ayna-deploy's own rule. */
  rule: string;
}

const std = (section: string, words: string) => `standard v2.0 "${section}": ${words}`;

export function validateHost(s: OpsStack, probe: Probe): Check[] {
  const checks: Check[] = [];
  const add = (ok: boolean, what: string, found: string, rule: string) => checks.push({ ok, what, found, rule });

  const stats = new Map<string, { type: string; user: string; group: string; mode: string }>();
  for (const line of (probe["stat"] ?? "").split("\n")) {
    const [name, type, user, group, mode] = line.split("|");
    if (name && mode) stats.set(name, { type: type!, user: user!, group: group!, mode: mode.padStart(4, "0") });
  }
  const describe = (p: string) => {
    const st = stats.get(p);
    return st ? `${st.type}, ${st.user}:${st.group} ${st.mode}` : "missing";
  };

  for (const l of layout(s)) {
    const st = stats.get(l.path);
    add(
      st?.type === "directory",
      `layout: ${l.what} is a directory`,
      describe(l.path),
      std("Directory Structure", "/opt/ayna/{project}/ with releases/, shared/{media,backups}/, venv/, logs/"),
    );
  }
  const venv = probe["venv"] ?? "";
  add(
    venv === "releases/current/.venv",
    "layout: venv/ follows the current release",
    venv ? `venv -> ${venv}` : "missing",
    std("Directory Structure", "venv/ # Python virtual environment"),
  );

  const tool = toolStatus(probe);
  const current = probe["current"] ?? "";
  const complete = releaseIn(probe["release"] ?? "") === current && /^v\d+$/.test(current);
  const failed = probe["failed"] === "yes";
  add(
    complete && !failed,
    "current symlink points at a complete release",
    current
      ? `current -> ${current}${complete ? "" : " (no .ayna-release.json of that release)"}${failed ? " (marked failed)" : ""}; on the host: ${tool.releases || "none"}`
      : "missing",
    std("Directory Structure", "current -> v2 # Symlink to active release"),
  );

  const env = stats.get(envFile(s));
  add(
    !!env && env.type === "regular file" && env.mode === "0600" && env.user === s.serviceUser,
    `env file shared/.env.${s.stage} is 0600, owned by ${s.serviceUser}`,
    describe(envFile(s)),
    `${std("Environment Configuration", "Located in `shared/` directory, never in git")}; 0600 and the service user: ayna-deploy (it holds the secrets)`,
  );

  const procs = (probe["procs"] ?? "")
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3)
    .map(([user, pid, unit]) => ({ user: user!, pid: pid!, unit: unit! }));
  if (s.runtime === "docker") containerChecks(s, probe, add);
  else {
    const us = units(probe);
    const score = new Map<string, number>();
    for (const m of (probe["security"] ?? "").matchAll(/Overall exposure level for (\S+): ([\d.]+)/g)) {
      score.set(m[1]!, Number(m[2]));
    }
    for (const svc of s.services) {
      const u = us.get(svc.unit)?.props ?? {};
      const fragment = paths.unit(s.project, svc.role);
      add(
        u["LoadState"] === "loaded" && u["FragmentPath"] === fragment && u["UnitFileState"] === "enabled",
        `${svc.unit} installed and enabled`,
        u["LoadState"] === "loaded" ? `${u["FragmentPath"]}, ${u["UnitFileState"]}` : (u["LoadState"] ?? "unknown"),
        std("Conformance Validation", "5. Systemd units exist"),
      );
      add(
        u["ActiveState"] === "active",
        `${svc.unit} active`,
        `${u["ActiveState"] ?? "unknown"} (${u["SubState"] ?? "?"})`,
        "ayna-deploy: every service the stack enables runs",
      );
      const mine = procs.filter((x) => x.unit === svc.unit);
      const users = [...new Set(mine.map((x) => x.user))];
      add(
        !!u["User"] && u["User"] !== "root" && !users.includes("root"),
        `${svc.unit} does not run as root`,
        `User=${u["User"] || "(unset: root)"}; ${mine.length ? `${mine.length} process(es) as ${users.join(", ")}` : "not running"}`,
        `${std("Systemd Service Pattern", '"User=adonis" "Group=adonis"')} (each template runs as a service user)`,
      );
      const sc = score.get(svc.unit);
      add(
        sc !== undefined && sc <= 5.0,
        `${svc.unit} systemd-analyze security exposure <= 5.0`,
        sc === undefined ? "no score" : sc.toFixed(1),
        'ayna-deploy: the units\' hardening keeps exposure at 5.0 ("MEDIUM") or below',
      );
    }
  }

  const drift = (probe["drift"] ?? "").trim();
  const changes = [...drift.matchAll(/drift: (.*)$/gm)].map((m) => m[1]!);
  add(
    drift.endsWith("as installed"),
    "env file and units are the ones the last release installed",
    changes.length > 0 ? changes.join("; ") : drift || "no answer from ayna-release verify",
    "ayna-deploy: a change made by hand on the host shows here; `pulumi up --refresh` puts the release's files back",
  );

  if (s.runtime !== "docker") {
    // Sockets of the project's processes, by pid.
    const unitOfPid = new Map(procs.filter((x) => x.unit.startsWith(`${s.project}-`)).map((x) => [x.pid, x.unit]));
    const sockets: { addr: string; port: number; unit: string }[] = [];
    for (const line of (probe["listen"] ?? "").split("\n")) {
      const local = line.trim().split(/\s+/)[3];
      const m = local ? /^(.*):(\d+)$/.exec(local) : null;
      if (!m) continue;
      const pids = [...line.matchAll(/pid=(\d+)/g)].map((x) => x[1]!);
      const unit = pids.map((p) => unitOfPid.get(p)).find((x) => x !== undefined);
      if (unit) sockets.push({ addr: m[1]!, port: Number(m[2]), unit });
    }
    const { first, last } = s.portRange;
    for (const svc of s.services.filter((x) => x.port !== undefined)) {
      const own = sockets.filter((x) => x.unit === svc.unit);
      add(
        own.some((x) => x.addr === "127.0.0.1" && x.port === svc.port),
        `${svc.role} listens on 127.0.0.1:${svc.port}`,
        own.length ? own.map((x) => `${x.addr}:${x.port}`).join(" ") : "not listening",
        std("Port Registry", "Each project gets 10 ports. All bind to `127.0.0.1` only."),
      );
    }
    const stray = sockets.filter((x) => x.addr !== "127.0.0.1" || x.port < first || x.port > last);
    add(
      sockets.length > 0 && stray.length === 0,
      `every port of the project is bound on 127.0.0.1 inside ${first}-${last}`,
      sockets.length
        ? [...new Set(sockets.map((x) => `${x.addr}:${x.port} (${x.unit})`))].join(", ")
        : "no listening sockets found",
      std("Port Registry", "Each project gets 10 ports. All bind to `127.0.0.1` only."),
    );
  }

  for (const svc of httpServices(s)) {
    const h = health(probe, svc.role);
    const names = !h.release || h.release === current;
    add(
      h.code === "200" && names,
      `${svc.role} ${healthUrl(s, svc)} answers 200`,
      `${h.code === "000" ? "no answer" : h.code}${h.release ? `, release ${h.release}` : ""}${names ? "" : ` (current is ${current})`}`,
      std("Blue-Green Deployment", "8. Health check"),
    );
  }

  const version = (probe["template"] ?? "").trim();
  add(
    version === standardVersion,
    `.template-version present (${standardVersion})`,
    /No such file/.test(version) || !version ? "missing" : version,
    std("Conformance Validation", "1. Required files exist (Makefile, pyproject.toml, .template-version)"),
  );
  return checks;
}

/** Docker mode: each container runs, is healthy and hardened as the release tool started it; only the proxy publishes. */
function containerChecks(
  s: OpsStack,
  probe: Probe,
  add: (ok: boolean, what: string, found: string, rule: string) => void,
) {
  const cs = parseContainers(probe["containers"] ?? "");
  const docker = (rule: string) => `the Docker standard: ${rule}`;
  for (const svc of s.services) {
    const name = containerOf(s, svc.role);
    const c = cs.get(name);
    add(
      c?.status === "running" && c.health === "healthy",
      `${name} running and healthy`,
      c ? `${c.status}${c.health ? ` (${c.health})` : ", no health check"}` : "missing",
      docker("Restart: unless-stopped; Healthcheck"),
    );
    const uid = c?.user.split(":")[0] ?? "";
    add(
      !!c && uid !== "" && uid !== "0" && uid !== "root",
      `${name} does not run as root`,
      c ? `User=${c.user || "(unset: root)"}` : "missing",
      docker("non-root user"),
    );
    add(
      !!c && c.readOnly && c.capDrop === "ALL" && c.securityOpt.split(",").includes("no-new-privileges"),
      `${name} read-only, no capabilities, no new privileges`,
      c
        ? `read-only ${c.readOnly}, cap-drop ${c.capDrop || "none"}, security-opt ${c.securityOpt || "none"}`
        : "missing",
      docker("hardened containers"),
    );
  }
  const publishing = (probe["published"] ?? "")
    .split("\n")
    .map((l) => l.trim().split(" "))
    .filter((f) => f.length > 1 && f.slice(1).join(" ").trim() !== "")
    .map((f) => f[0]!);
  add(
    publishing.every((n) => n === proxyContainer),
    `no container but ${proxyContainer} publishes a port`,
    publishing.length ? `publishing: ${publishing.join(", ")}` : "none publishes",
    docker("only the reverse proxy exposes ports to the host"),
  );
}
