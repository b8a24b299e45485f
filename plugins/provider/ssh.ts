// SSH for the provider: one pooled connection per target, the host key pinned
// with its algorithm, commands run through the wrapper of builders/remote.ts
// (environment on stdin, bounded on the host by `timeout`, stoppable by PID).
import { createHash } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import type { Client, ClientChannel } from "ssh2";
import {
  envPrelude,
  killGraceSeconds,
  pidMarker,
  remoteInvocation,
  splitPid,
  stopCommand,
} from "../../builders/remote";

/**
 * ssh2, loaded on first use: it is a third of the provider's start-up, and a
 * run that connects nowhere (a no-op `up`, the stack's random secrets) never
 * needs it.
 */
let sshModule: typeof import("ssh2") | undefined;
function ssh2(): typeof import("ssh2") {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy load; `import()` would make every caller async
  return (sshModule ??= require("ssh2") as typeof import("ssh2"));
}

export interface Connection {
  /** Address SSH connects to. */
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** The host's public key ("ssh-ed25519 AAAA..."), pinned. */
  hostKey?: string;
  /** Accept any host key. Off by default; only for first contact on a trusted network. */
  insecureIgnoreHostKey?: boolean;
  /** Seconds to wait for TCP + SSH handshake on each attempt. */
  connectTimeoutSeconds?: number;
  /** Attempts before giving up on an unreachable host. */
  connectAttempts?: number;
}

export interface ExecOptions {
  /** The command's own input (after the environment prelude). */
  stdin?: string | Buffer;
  /** Variables for the command; sent on stdin, never on the command line. */
  env?: Record<string, string>;
  /** Stopped on the host after this long. @default 600 */
  timeoutSeconds?: number;
  /** Called with each line the command writes to stderr, as it comes (the wrapper's PID line left out). */
  onStderrLine?: (line: string) => void;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What the provider needs of SSH; unit tests give a fake. */
export interface Executor {
  exec(c: Connection, command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Stops every command still running, on the host too. */
  cancelAll(): Promise<void>;
  closeAll(): void;
  /** Logs in and runs nothing: proves a new connection before it is stored. */
  probe?(c: Connection): Promise<void>;
}

export interface Failure {
  property: string;
  reason: string;
}

const maxOutput = 256 * 1024;
const maxChannelsPerConnection = 6;

/**
 * A line longer than this is not handed on, however it arrives: cut in pieces,
 * a secret across a cut could not be masked (the final message still has it,
 * scrubbed whole).
 */
const maxLine = 4096;

/**
 * Complete lines of a byte stream, as they arrive: a character split across
 * chunks stays whole; `end` hands on what is left after the last newline.
 */
export function lineReader(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  let tooLong = false;
  const drain = () => {
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      if (!tooLong && nl <= maxLine) onLine(pending.slice(0, nl));
      tooLong = false;
      pending = pending.slice(nl + 1);
    }
    if (pending.length > maxLine) {
      tooLong = true;
      pending = "";
    }
  };
  return {
    push(chunk) {
      pending += decoder.write(chunk);
      drain();
    },
    end() {
      pending += decoder.end();
      drain();
      if (pending !== "" && !tooLong) onLine(pending);
      pending = "";
    },
  };
}

/** Host key types ssh2 may negotiate for a pinned key of each type. */
const hostKeyAlgorithms: Record<string, string[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

export interface PinnedKey {
  type: string;
  blob: Buffer;
}

/** Parses "type base64 [comment]"; the type must match the one inside the blob. */
export function parseHostKey(line: string): PinnedKey | undefined {
  const parts = line.trim().split(/\s+/);
  const [type, b64] = parts;
  if (!type || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64) || !(type in hostKeyAlgorithms)) return undefined;
  const blob = Buffer.from(b64, "base64");
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (blob.toString("latin1", 4, 4 + n) !== type) return undefined;
  return { type, blob };
}

/** `SHA256:...` as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

/**
 * The identity of the machine behind a connection: the pinned key's
 * fingerprint. Address, port, user and login key are only how it is reached.
 */
export function hostIdentity(c: Pick<Connection, "hostKey">): string {
  const pinned = c.hostKey ? parseHostKey(c.hostKey) : undefined;
  return pinned ? `${pinned.type} ${fingerprint(pinned.blob)}` : "unpinned";
}

/** Checks a connection's shape; names the field and never echoes a value. */
export function validateConnection(c: Partial<Connection>, opts: { parseKey?: boolean } = {}): Failure[] {
  const errs: Failure[] = [];
  if (typeof c.host !== "string" || c.host === "" || /\s/.test(c.host)) {
    errs.push({ property: "address", reason: "required: the host's IP address or DNS name" });
  }
  if (typeof c.port !== "number" || !Number.isInteger(c.port) || c.port < 1 || c.port > 65535) {
    errs.push({ property: "port", reason: "must be an integer 1-65535" });
  }
  if (typeof c.user !== "string" || !/^[a-z_][a-z0-9_-]*\$?$/.test(c.user)) {
    errs.push({ property: "user", reason: "must be a POSIX user name" });
  }
  if (typeof c.privateKey !== "string" || c.privateKey === "") {
    errs.push({ property: "privateKey", reason: "required (set it with `pulumi config set --secret`)" });
  } else if (opts.parseKey !== false && ssh2().utils.parseKey(c.privateKey) instanceof Error) {
    errs.push({
      property: "privateKey",
      reason: "is not a private key ssh can read (expected an unencrypted OpenSSH or PEM key)",
    });
  }
  if (c.hostKey !== undefined && c.hostKey !== "" && parseHostKey(c.hostKey) === undefined) {
    errs.push({
      property: "hostKey",
      reason:
        'must look like "ssh-ed25519 AAAA..." (a line of known_hosts without the host name; ' +
        `types: ${Object.keys(hostKeyAlgorithms).join(", ")})`,
    });
  }
  if (!c.hostKey && !c.insecureIgnoreHostKey) {
    errs.push({
      property: "hostKey",
      reason: "required: pin the host's public key (ssh-keyscan -t ed25519 HOST), or set insecureIgnoreHostKey: true",
    });
  }
  return errs;
}

export function target(c: Connection): string {
  return `${c.user}@${c.host}:${c.port}`;
}

function poolKey(c: Connection): string {
  const keyHash = createHash("sha256").update(c.privateKey).digest("hex");
  return [c.host, c.port, c.user, keyHash, c.hostKey ?? "", c.insecureIgnoreHostKey ? "1" : "0"].join("\n");
}

/** The message for a host whose key is not the pinned one. */
export function hostKeyMismatch(c: Connection, offered: Buffer, pinned: PinnedKey | undefined): string {
  return (
    `host key mismatch for ${target(c)}: pinned ${pinned ? `${pinned.type} ${fingerprint(pinned.blob)}` : "(none)"}, ` +
    `offered ${fingerprint(offered)}. Nothing was run on it. If the host was rebuilt on purpose, check the new key ` +
    `out of band (on its console: ssh-keygen -lf /etc/ssh/ssh_host_${pinned?.type === "ssh-ed25519" ? "ed25519" : "*"}_key.pub), ` +
    `then pin it (this program: pulumi config set --path 'hosts[i].hostKey' "$(ssh-keyscan -t ed25519 ${c.host} | cut -d' ' -f2-)"); ` +
    `the next \`pulumi up\` provisions the new host from nothing. Otherwise do not deploy: someone may be in the way.`
  );
}

class Pooled {
  private active = 0;
  private waiters: (() => void)[] = [];
  constructor(readonly client: Client) {}

  async acquire(): Promise<void> {
    if (this.active < maxChannelsPerConnection) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.active++;
  }

  release(): void {
    this.active--;
    this.waiters.shift()?.();
  }
}

interface Running {
  c: Connection;
  pid?: number;
  /** Set before a cancel stops the command, so its end reads as cancelled, not as a failure. */
  cancelled?: boolean;
  stop: (why: string) => void;
}

export class SshPool implements Executor {
  private conns = new Map<string, Promise<Pooled>>();
  private running = new Set<Running>();

  async exec(c: Connection, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const pooled = await this.connection(c);
    await pooled.acquire();
    try {
      return await this.runOnChannel(pooled.client, c, command, opts);
    } finally {
      pooled.release();
    }
  }

  async probe(c: Connection): Promise<void> {
    const client = await connectWithRetry({ ...c, connectAttempts: 1 });
    client.end();
  }

  async cancelAll(): Promise<void> {
    const all = [...this.running];
    for (const r of all) r.cancelled = true;
    await Promise.all(all.map((r) => this.stopOnHost(r)));
    for (const r of all) r.stop("cancelled");
  }

  closeAll(): void {
    for (const p of this.conns.values())
      p.then(
        (x) => x.client.end(),
        () => undefined,
      );
    this.conns.clear();
  }

  private async stopOnHost(r: Running): Promise<void> {
    if (r.pid === undefined) return;
    try {
      const pooled = await this.connection(r.c);
      await new Promise<void>((resolve) => {
        pooled.client.exec(stopCommand(r.pid!), (err, stream) => {
          if (err) return resolve();
          stream.on("close", () => resolve());
          stream.resume();
          stream.stderr.resume();
          stream.end();
        });
      });
    } catch {
      // The host is gone: nothing left to stop.
    }
  }

  private connection(c: Connection): Promise<Pooled> {
    const key = poolKey(c);
    let p = this.conns.get(key);
    if (!p) {
      p = connectWithRetry(c).then((client) => {
        const pooled = new Pooled(client);
        const forget = () => {
          if (this.conns.get(key) === p) this.conns.delete(key);
        };
        client.on("close", forget);
        client.on("error", forget);
        return pooled;
      });
      p.catch(() => this.conns.delete(key));
      this.conns.set(key, p);
    }
    return p;
  }

  private runOnChannel(client: Client, c: Connection, command: string, opts: ExecOptions): Promise<ExecResult> {
    const timeoutSeconds = opts.timeoutSeconds ?? 600;
    return new Promise((resolve, reject) => {
      client.exec(remoteInvocation(command, timeoutSeconds), (err: Error | undefined, stream: ClientChannel) => {
        if (err) {
          reject(new Error(`ssh to ${target(c)}: could not start a command: ${err.message}`));
          return;
        }
        let stdout = "";
        let stderr = "";
        let done = false;
        const running: Running = {
          c,
          stop: (why) => {
            if (done) return;
            done = true;
            clearTimeout(backstop);
            this.running.delete(running);
            stream.close();
            reject(new Error(`command on ${target(c)} ${why} (stopped on the host)`));
          },
        };
        this.running.add(running);
        const append = (buf: string, chunk: Buffer) => {
          const next = buf + chunk.toString("utf8");
          return next.length > maxOutput ? next.slice(next.length - maxOutput) : next;
        };
        // The host's `timeout` stops the command; this only covers a host that stopped answering.
        const backstop = setTimeout(
          () => {
            void this.stopOnHost(running).then(() =>
              running.stop(`did not finish within ${timeoutSeconds}s and the host did not answer`),
            );
          },
          (timeoutSeconds + killGraceSeconds + 20) * 1000,
        );
        const onLine = opts.onStderrLine;
        let first = true;
        const lines = onLine
          ? lineReader((line) => {
              const wrapperLine = first && line.startsWith(pidMarker);
              first = false;
              if (!wrapperLine) onLine(line);
            })
          : undefined;
        stream.on("data", (chunk: Buffer) => (stdout = append(stdout, chunk)));
        stream.stderr.on("data", (chunk: Buffer) => {
          lines?.push(chunk);
          stderr = append(stderr, chunk);
          if (running.pid === undefined) {
            const { pid } = splitPid(stderr);
            if (pid !== undefined) running.pid = pid;
          }
        });
        stream.on("close", (code: number | null, signal?: string) => {
          if (running.cancelled) return running.stop("cancelled");
          clearTimeout(backstop);
          this.running.delete(running);
          if (done) return;
          done = true;
          lines?.end();
          resolve({ code: code ?? (signal ? 128 : 255), stdout, stderr: splitPid(stderr).rest });
        });
        stream.write(envPrelude(opts.env));
        stream.end(opts.stdin ?? "");
      });
    });
  }
}

const retryable = new Set(["ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ECONNRESET", "ENETUNREACH", "EAI_AGAIN"]);

type Ssh2Error = Error & { level?: string; code?: string };
const handshakeTimedOut = (err: Ssh2Error) => /timed out/i.test(err.message);
const lostBeforeHandshake = (err: Ssh2Error) => /lost before handshake/i.test(err.message);

/** A failed attempt worth another: the host may be slow, or a busy sshd (MaxStartups) dropped it before its banner. */
function isTransient(err: Ssh2Error): boolean {
  if (err.level === "client-authentication") return false;
  return retryable.has(err.code ?? "") || handshakeTimedOut(err) || lostBeforeHandshake(err);
}

/** What connectOnce rejects with: the operator's message, and whether trying again may help. */
type ConnectError = Error & { transient?: boolean };

async function connectWithRetry(c: Connection): Promise<Client> {
  const attempts = Math.max(1, c.connectAttempts ?? 3);
  let last: ConnectError | undefined;
  for (let i = 1; i <= attempts; i++) {
    try {
      return await connectOnce(c);
    } catch (err) {
      last = err as ConnectError;
      if (!last.transient || i === attempts) break;
      await new Promise((r) => setTimeout(r, 1000 * i));
    }
  }
  throw last ?? new Error(`could not connect to ${target(c)}`);
}

function connectOnce(c: Connection): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new (ssh2().Client)();
    let hostKeyProblem: string | undefined;
    const pinned = c.hostKey ? parseHostKey(c.hostKey) : undefined;
    const timeoutSec = c.connectTimeoutSeconds ?? 10;
    let settled = false;
    client.once("ready", () => {
      settled = true;
      resolve(client);
    });
    // Kept for the client's whole life: ssh2 can emit a second error for one failure (a handshake
    // timeout destroys the socket, whose close then reports "Connection lost before handshake"),
    // and an error event nobody listens to would take the provider process down.
    client.on("error", (err: Ssh2Error) => {
      client.end();
      if (settled) return;
      settled = true;
      if (hostKeyProblem) {
        reject(new Error(hostKeyProblem));
        return;
      }
      const e: ConnectError = new Error(describeConnectError(c, err, timeoutSec));
      e.transient = isTransient(err);
      reject(e);
    });
    client.connect({
      host: c.host,
      port: c.port,
      username: c.user,
      privateKey: c.privateKey,
      readyTimeout: timeoutSec * 1000,
      keepaliveInterval: 15000,
      // Ask for the pinned key's own type, so a host that also has other keys is compared like for like.
      ...(pinned ? { algorithms: { serverHostKey: hostKeyAlgorithms[pinned.type] as never } } : {}),
      hostVerifier: (key: Buffer) => {
        if (c.insecureIgnoreHostKey && !pinned) return true;
        if (pinned && key.equals(pinned.blob)) return true;
        hostKeyProblem = hostKeyMismatch(c, key, pinned);
        return false;
      },
    });
  });
}

function describeConnectError(c: Connection, err: Ssh2Error, timeoutSec: number): string {
  const t = target(c);
  if (err.level === "client-authentication") {
    return `ssh to ${t}: the host refused the key (check the user and that the public key is in ~${c.user}/.ssh/authorized_keys)`;
  }
  if (handshakeTimedOut(err)) {
    return `ssh to ${t}: no answer within ${timeoutSec}s (check the address and port, and that the host is up and reachable)`;
  }
  if (lostBeforeHandshake(err)) {
    return `ssh to ${t}: the host closed the connection before the SSH handshake (is this port sshd's, and is sshd overloaded? see its MaxStartups)`;
  }
  switch (err.code) {
    case "ECONNREFUSED":
      return `ssh to ${t}: connection refused (is sshd running, and is the port right?)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `ssh to ${t}: cannot resolve ${c.host} (check the address)`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `ssh to ${t}: host unreachable (check the address and the network route)`;
    default:
      // ssh2 messages name the failing stage; none carries key material.
      return `ssh to ${t}: ${err.message}`;
  }
}
