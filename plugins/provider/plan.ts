// ayna:deploy:Plan — the manifest of a host's last successful deploy, kept in
// state. Nothing runs on the host: Check compares the stored manifest with
// this run's and returns the deploy plan's lines, which the server sends to
// the engine as the resource's message (so `preview` and `up` print it), and
// Create/Update keep the lines as outputs. The env values stay wrapped as
// secrets in and out; only their keys reach a line.
import { randomBytes } from "node:crypto";
import { Manifest, MaybeKnown, NextManifest, notKnown, PlanService, renderPlan } from "../../builders/deployPlan";
import { containsUnknown, reveal } from "./secrets";
import { DiffResult, Failure, propertyDiff } from "./util";

type Props = Record<string, unknown>;

/** Inputs whose change is a new manifest (the lines follow from them). */
export const planKeys = [
  "project",
  "host",
  "sha",
  "release",
  "pin",
  "files",
  "environment",
  "env",
  "units",
  "services",
  "migrations",
  "runtime",
];

function isRecordOfStrings(v: unknown): v is Record<string, string> {
  return (
    typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string")
  );
}

function isServices(v: unknown): v is PlanService[] {
  return (
    Array.isArray(v) &&
    v.every(
      (s) =>
        typeof s === "object" &&
        s !== null &&
        typeof (s as PlanService).role === "string" &&
        ["handover", "restart"].includes((s as PlanService).reload),
    )
  );
}

export function checkPlan(news: Props): Failure[] {
  const n = reveal(news) as Props;
  const failures: Failure[] = [];
  for (const k of ["project", "host", "sha", "environment"]) {
    if (typeof n[k] !== "string" || n[k] === "")
      failures.push({ property: k, reason: "required (a non-empty string)" });
  }
  for (const k of ["files", "units"]) {
    if (!isRecordOfStrings(n[k])) failures.push({ property: k, reason: "required (an object of strings)" });
  }
  if (!containsUnknown(news["env"]) && !isRecordOfStrings(n["env"])) {
    failures.push({ property: "env", reason: "required (an object of strings)" });
  }
  if (!isServices(n["services"])) {
    failures.push({ property: "services", reason: "required (a list of { role, reload: handover | restart })" });
  }
  if (n["migrations"] !== undefined && !["listed", "command", "none"].includes(String(n["migrations"]))) {
    failures.push({ property: "migrations", reason: "listed, command or none" });
  }
  if (n["runtime"] !== undefined && n["runtime"] !== "docker") {
    failures.push({ property: "runtime", reason: "docker, or left out (venv mode)" });
  }
  return failures;
}

function known<T>(v: unknown, cast: (x: unknown) => T): MaybeKnown<T> {
  return containsUnknown(v) ? notKnown : cast(reveal(v));
}

function optionalString(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** The stored manifest (old inputs or outputs), or undefined for a first deploy. */
export function storedManifest(olds: Props): Manifest | undefined {
  const o = reveal(olds) as Props;
  if (typeof o["sha"] !== "string" || !isRecordOfStrings(o["files"])) return undefined;
  return {
    sha: o["sha"],
    release: optionalString(o["release"]),
    pin: optionalString(o["pin"]),
    files: o["files"],
    environment: String(o["environment"] ?? ""),
    env: isRecordOfStrings(o["env"]) ? o["env"] : {},
    units: isRecordOfStrings(o["units"]) ? o["units"] : {},
    services: isServices(o["services"]) ? o["services"] : [],
    migrations: migrationsMode(o["migrations"]),
  };
}

function migrationsMode(v: unknown): Manifest["migrations"] {
  return v === "command" || v === "none" ? v : undefined;
}

export function nextManifest(news: Props): NextManifest {
  const n = reveal(news) as Props;
  return {
    sha: String(n["sha"]),
    release: known(news["release"], optionalString),
    pin: optionalString(n["pin"]),
    files: n["files"] as Record<string, string>,
    environment: String(n["environment"]),
    env: known(news["env"], (x) => x as Record<string, string>),
    units: n["units"] as Record<string, string>,
    services: n["services"] as PlanService[],
    migrations: migrationsMode(n["migrations"]),
    ...(n["runtime"] === "docker" ? { runtime: "docker" as const } : {}),
  };
}

/** The plan's lines, from what state holds (`olds`, empty for a first deploy) to this run. */
export function planLines(olds: Props, news: Props): string[] {
  return renderPlan(String(reveal(news["project"])), storedManifest(olds), nextManifest(news));
}

/** The message the engine prints for the resource: a heading naming the host, then the lines. */
export function planMessage(news: Props, lines: string[]): string {
  return [`deploy plan for ${String(reveal(news["host"]))}:`, ...lines.map((l) => `  ${l}`)].join("\n");
}

export function diffPlan(olds: Props, news: Props): DiffResult {
  return propertyDiff(olds, news, planKeys, []);
}

export function createPlan(news: Props): { id: string; outs: Props } {
  return { id: `plan-${randomBytes(6).toString("hex")}`, outs: { ...news, lines: planLines({}, news) } };
}

export function updatePlan(olds: Props, news: Props): { outs: Props } {
  return { outs: { ...news, lines: planLines(olds, news) } };
}
