// Real Debian test hosts (systemd as PID 1, sshd, python3) for end-to-end tests.
//
// A thin wrapper around scripts/testhost.sh, which boots each host with
// systemd-nspawn from a cached debootstrap image. Needs root. Every host this process starts is torn down on process exit, SIGINT
// and SIGTERM; hosts left by a process that was SIGKILLed are removed by the
// next run (`testhost.sh gc --stale`) or by `scripts/testhost.sh gc`.

import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export type Suite = "trixie" | "bookworm";

export interface TestHost {
  name: string;
  address: string;
  port: number;
  user: string;
  privateKeyPath: string;
  privateKey: string;
  /** "ssh-ed25519 AAAA..." */
  hostKey: string;
  knownHostsPath: string;
  suite: Suite;
  /** pid of the systemd-nspawn process */
  pid: number;
  /**
   * On this machine: the host's writable layer (overlay upper dir), every file
   * the host has written since `up`, reboots included; on its own tmpfs with `diskMb`.
   */
  upperDir: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Time limit for `up`: a cold cache builds the image first (about a minute). */
const UP_TIMEOUT_MS = 10 * 60 * 1000;
const DOWN_TIMEOUT_MS = 2 * 60 * 1000;
const VERBOSE = process.env.AYNA_TESTHOST_VERBOSE === "1";

function findScript(): string {
  const fromEnv = process.env.AYNA_TESTHOST_SCRIPT;
  if (fromEnv) return path.resolve(fromEnv);
  const rel = path.join("scripts", "testhost.sh");
  // This file lives in <repo>/test/support/ (when run from source).
  const starts: string[] = [];
  if (typeof __dirname === "string") starts.push(__dirname);
  starts.push(process.cwd());
  for (const start of starts) {
    let dir = path.resolve(start);
    for (;;) {
      const candidate = path.join(dir, rel);
      if (fs.existsSync(candidate)) return candidate;
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  throw new Error(`cannot find ${rel} above ${starts.join(" or ")} (set AYNA_TESTHOST_SCRIPT)`);
}

let scriptPath: string | undefined;

/** Command and arguments to run the script with. */
function scriptCommand(args: string[]): [string, string[]] {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    // nspawn, bridges, NAT and overlay mounts need root; so does reading the client key.
    throw new Error("test hosts need root (run the tests as root)");
  }
  scriptPath ??= findScript();
  return ["bash", [scriptPath, ...args]];
}

const inflight = new Set<ChildProcess>();

function runScript(args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  const [cmd, argv] = scriptCommand(args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    inflight.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      if (VERBOSE) process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM"); // the script's traps clean up what it started
      setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      inflight.delete(child);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      inflight.delete(child);
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs} ms` : signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(new Error(`testhost.sh ${args.join(" ")}: ${why}\n${stderr.trim()}`));
    });
  });
}

// ------------------------------------------------------------------ cleanup

/** Hosts this process started (or is starting) and has not stopped. */
const started = new Set<string>();
/** Every host name this process has used. */
const everStarted = new Set<string>();
let counter = 0;
let handlersInstalled = false;
let staleCollected: Promise<void> | undefined;

function cleanupSync(): void {
  for (const child of inflight) child.kill("SIGTERM");
  if (started.size === 0) return;
  const names = [...started];
  started.clear();
  try {
    const [cmd, argv] = scriptCommand(["down", ...names]);
    execFileSync(cmd, argv, { stdio: ["ignore", "ignore", "inherit"], timeout: DOWN_TIMEOUT_MS });
  } catch (err) {
    process.stderr.write(`testhost: cleanup of ${names.join(", ")} failed: ${String(err)}\n`);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupSync();
  // If nobody else (e.g. mocha) handles the signal, die of it as usual.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", cleanupSync);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

// ------------------------------------------------------------------ API

/** Parses the JSON line `testhost.sh up` and `reboot` print last. */
function parseHostLine(what: string, out: string): Omit<TestHost, "privateKey"> {
  const line = out.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as Omit<TestHost, "privateKey">;
  } catch {
    throw new Error(`testhost.sh ${what}: unexpected output: ${out}`);
  }
}

/**
 * Boots a fresh host.
 *
 * @param opts.address - the address a host stopped with
 *   `stopHost(h, { keepAddress: true })` left reserved: a machine rebuilt in place.
 * @param opts.diskMb - the size in MiB of the host's disk: its writable layer
 *   lives on a tmpfs of its own of that size (at least 32), so `df /` inside
 *   reports it and filling it gives ENOSPC inside the host, not on this
 *   machine's disk. Without it the writable layer is a plain directory in
 *   the harness's state dir (AYNA_TESTHOST_STATE) on this machine.
 * @param opts.docker - boot it so that a Docker engine installed inside
 *   (Debian's docker.io; not preinstalled) runs containers with the overlay2
 *   storage driver and cgroup limits: /var/lib/docker and /var/lib/containerd
 *   are plain directories of its state dir on this machine, and a unit
 *   remounts the cgroup controllers read-write before the engine starts
 *   (`testhost.sh up --docker`). Reboots keep it so.
 */
export async function startHost(
  opts: { suite?: Suite; name?: string; address?: string; diskMb?: number; docker?: boolean } = {},
): Promise<TestHost> {
  installHandlers();
  // Once per process: remove hosts whose owner died (an earlier run killed with -9).
  staleCollected ??= runScript(["gc", "--stale"], DOWN_TIMEOUT_MS).then(
    () => undefined,
    (err: unknown) => {
      process.stderr.write(`testhost: gc --stale failed: ${String(err)}\n`);
    },
  );
  await staleCollected;

  const suite: Suite = opts.suite ?? "trixie";
  const name = opts.name ?? `t-${process.pid}-${++counter}`;
  if (started.has(name)) throw new Error(`test host ${name} is already running`);
  started.add(name);
  everStarted.add(name);
  let out: string;
  try {
    ({ stdout: out } = await runScript(
      [
        "up",
        name,
        "--suite",
        suite,
        "--owner-pid",
        String(process.pid),
        ...(opts.address ? ["--address", opts.address] : []),
        ...(opts.diskMb !== undefined ? ["--disk-mb", String(opts.diskMb)] : []),
        ...(opts.docker ? ["--docker"] : []),
      ],
      UP_TIMEOUT_MS,
    ));
  } catch (err) {
    started.delete(name); // a failed `up` has taken its host down again
    throw err;
  }
  const info = parseHostLine(`up ${name}`, out);
  const privateKey = fs.readFileSync(info.privateKeyPath, "utf8");
  return { ...info, privateKey };
}

/**
 * Reboots a running host in place and waits until it is up again as
 * {@link startHost} does (ssh login with its pinned host key, systemd running).
 * Its files (the overlay, and the tmpfs of `diskMb`), name, address, ssh host
 * keys and machine-id stay; it stays this process's host (stopped on exit).
 *
 * @param opts.hard - a power cut: SIGKILL to systemd-nspawn and the
 *   container's init at once. Default: a clean poweroff first, as
 *   {@link stopHost} does.
 * @returns the same host with its new {@link TestHost.pid}. If the reboot
 *   fails, the host is left stopped (not removed): {@link stopHost} removes it.
 */
export async function rebootHost(host: TestHost, opts: { hard?: boolean } = {}): Promise<TestHost> {
  const args = ["reboot", host.name, ...(opts.hard ? ["--hard"] : [])];
  const { stdout } = await runScript(args, UP_TIMEOUT_MS);
  return { ...parseHostLine(args.join(" "), stdout), privateKey: host.privateKey };
}

export async function stopHost(host: TestHost | string, opts: { keepAddress?: boolean } = {}): Promise<void> {
  const name = typeof host === "string" ? host : host.name;
  await runScript(["down", name, ...(opts.keepAddress ? ["--keep-address"] : [])], DOWN_TIMEOUT_MS);
  started.delete(name);
}

/** Time limit for `base-image`: a cold cache runs debootstrap (about a minute). */
const BASE_IMAGE_TIMEOUT_MS = 10 * 60 * 1000;

/**
 * Path on this machine of a gzip'd root file system tarball for
 * `docker import` (no image registry is reachable from here): Debian SUITE,
 * minbase with python3 and ca-certificates, the test hosts' apt sources and
 * this machine's extra CAs (so `apt-get update && apt-get install` works in a
 * `docker build --network host` on a test host); no systemd, no sshd, no
 * package lists. Built once and cached (`testhost.sh base-image`).
 */
export async function baseImageTarball(suite: Suite = "trixie"): Promise<string> {
  const { stdout } = await runScript(["base-image", "--suite", suite], BASE_IMAGE_TIMEOUT_MS);
  const file = stdout.trim().split("\n").pop() ?? "";
  if (!file.endsWith(".tar.gz") || !fs.existsSync(file)) {
    throw new Error(`testhost.sh base-image: unexpected output: ${stdout}`);
  }
  return file;
}

/** Gives a running host a second address on the test network; returns it. */
export async function addAddress(host: TestHost): Promise<string> {
  const { stdout } = await runScript(["alias", host.name], DOWN_TIMEOUT_MS);
  return stdout.trim();
}

/** Stops every host this process started. */
export async function stopAllHosts(): Promise<void> {
  const names = [...started];
  if (names.length === 0) return;
  await runScript(["down", ...names], DOWN_TIMEOUT_MS);
  for (const n of names) started.delete(n);
}

/** Names of the hosts this process has started and not stopped. */
export function runningHosts(): string[] {
  return [...started];
}

/** Arguments for the system ssh client (before the command), strict host key checking. */
export function sshArgs(host: TestHost, extra: string[] = []): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    host.privateKeyPath,
    "-p",
    String(host.port),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${host.knownHostsPath}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    // A freshly booted host on a machine whose 2 cores run other tests can
    // take more than 5 s to send its SSH banner (seen in CI).
    "ConnectTimeout=20",
    "-o",
    "LogLevel=ERROR",
    ...extra,
    `${host.user}@${host.address}`,
  ];
}

/**
 * Runs COMMAND on the host (through its login shell, as ssh does) as the
 * host's user. Its stdin is `input`, or the file `inputFile` on this machine
 * streamed (e.g. an image tarball into `docker import -`), or nothing.
 * Resolves with the exit code (255: ssh itself failed); rejects when it takes
 * longer than timeoutMs (default 60 s) or inputFile cannot be read.
 */
export function sshExec(
  host: TestHost,
  command: string,
  opts: { input?: string | Buffer; inputFile?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", [...sshArgs(host), "--", command], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`ssh ${host.name} ${JSON.stringify(command)} timed out after ${timeoutMs} ms\n${stderr}`));
      } else if (code === null) {
        reject(new Error(`ssh ${host.name} ${JSON.stringify(command)} killed by ${signal}`));
      } else {
        resolve({ code, stdout, stderr });
      }
    });
    child.stdin.on("error", () => {
      /* the remote side may exit without reading its input */
    });
    if (opts.inputFile !== undefined) {
      const file = opts.inputFile;
      fs.createReadStream(file)
        .on("error", (err) => {
          clearTimeout(timer);
          child.kill("SIGKILL");
          reject(new Error(`ssh ${host.name}: cannot read ${file}: ${err.message}`));
        })
        .pipe(child.stdin);
    } else {
      child.stdin.end(opts.input ?? "");
    }
  });
}

/**
 * Throws, listing what is left, unless nothing of the hosts this process
 * started remains (process, overlay mount, state dir) and, once no host of
 * anyone is left, neither the bridge nor the NAT rules. `{ all: true }`
 * checks everything of the harness, including hosts of other processes.
 */
export async function assertClean(opts: { all?: boolean } = {}): Promise<void> {
  const names = opts.all ? [] : [...everStarted];
  await runScript(["check-clean", ...names], DOWN_TIMEOUT_MS);
}
