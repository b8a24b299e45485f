// SSH to a stack's hosts for the operator commands, with the system ssh
// client: the stack's private key in a 0600 file of a private temp dir, and
// each host's configured key pinned in a known_hosts of its own there
// (StrictHostKeyChecking=yes). The dir is removed on exit, also on Ctrl-C.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { argv, Arg, shell } from "../../builders/shell";
import type { OpsHost } from "./stackConfig";

export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

const live = new Set<Keyring>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => {
    for (const k of live) k.dispose();
  });
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.on(signal, () => {
      for (const k of live) k.dispose();
      process.exit(code);
    });
  }
}

/** `sudo -n` unless the login user is root (standard hosts log in as deploy). */
export function asRoot(host: OpsHost, ...words: Arg[]): string {
  return host.user === "root" ? argv(...words) : argv("sudo", "-n", ...words);
}

/** A composed script run by sh as root. */
export function scriptAsRoot(host: OpsHost, script: string): string {
  return shell(script, { sudo: host.user !== "root" });
}

export class Keyring {
  private readonly dir: string;
  private readonly keyFile: string;
  private readonly knownHosts: string;

  constructor(privateKey: string, hosts: OpsHost[]) {
    installHandlers();
    // mkdtemp makes the dir 0700; the key is created 0600, never world-readable in between.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-ops-"));
    live.add(this);
    this.keyFile = path.join(this.dir, "id");
    this.knownHosts = path.join(this.dir, "known_hosts");
    fs.writeFileSync(this.keyFile, privateKey, { mode: 0o600, flag: "wx" });
    // One alias per host name: the pin holds whatever address or port the host has.
    fs.writeFileSync(this.knownHosts, hosts.map((h) => `${alias(h)} ${h.hostKey}\n`).join(""), { mode: 0o600 });
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** ssh's arguments up to and including the destination. */
  sshArgs(host: OpsHost, opts: { tty?: boolean } = {}): string[] {
    const o = (option: string) => ["-o", option];
    return [
      "-F",
      "/dev/null",
      "-i",
      this.keyFile,
      "-p",
      String(host.port),
      ...o("IdentitiesOnly=yes"),
      ...o("BatchMode=yes"),
      ...o("StrictHostKeyChecking=yes"),
      ...o(`UserKnownHostsFile=${this.knownHosts}`),
      ...o("GlobalKnownHostsFile=/dev/null"),
      ...o(`HostKeyAlias=${alias(host)}`),
      ...o("ConnectTimeout=10"),
      ...o("ServerAliveInterval=15"),
      ...o("LogLevel=ERROR"),
      opts.tty ? "-t" : "-T",
      `${host.user}@${host.address}`,
    ];
  }

  /** Runs `command` on the host and collects its output. */
  capture(host: OpsHost, command: string, opts: { timeoutMs?: number } = {}): Promise<Captured> {
    return new Promise((resolve, reject) => {
      const child = spawn("ssh", [...this.sshArgs(host), "--", command], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? 255, stdout, stderr });
      });
    });
  }

  /**
   * Runs `command` with its output either passed through or, with `prefix`,
   * line by line behind the host's name; `input` hands it this process's stdin.
   */
  attach(
    host: OpsHost,
    command: string,
    opts: { tty?: boolean; prefix?: string; input?: boolean } = {},
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const piped = opts.prefix !== undefined;
      const child = spawn("ssh", [...this.sshArgs(host, { tty: opts.tty }), "--", command], {
        stdio: [opts.input ? "inherit" : "ignore", piped ? "pipe" : "inherit", piped ? "pipe" : "inherit"],
      });
      if (piped) {
        prefixLines(child.stdout!, process.stdout, opts.prefix!);
        prefixLines(child.stderr!, process.stderr, opts.prefix!);
      }
      child.on("error", reject);
      child.on("close", (code) => resolve(code ?? 255));
    });
  }
}

function alias(host: OpsHost): string {
  return `ayna-ops-${host.name}`;
}

function prefixLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  let rest = "";
  from.setEncoding("utf8");
  from.on("data", (d: string) => {
    const lines = (rest + d).split("\n");
    rest = lines.pop()!;
    for (const l of lines) to.write(`${prefix}${l}\n`);
  });
  from.on("end", () => {
    if (rest) to.write(`${prefix}${rest}\n`);
  });
}

/** What ssh itself said when it could not run the command (exit 255). */
export function sshFailure(host: OpsHost, r: Captured): string {
  const why = r.stderr.trim().split("\n").pop() || `exit ${r.code}`;
  const hint = /host key|HOST IDENTIFICATION/i.test(r.stderr)
    ? ` (the host's key is not the one pinned in hosts[].hostKey; if the machine was rebuilt on purpose, verify and pin the new key)`
    : "";
  return `cannot reach ${host.name} (${host.user}@${host.address}:${host.port}): ${why}${hint}`;
}
