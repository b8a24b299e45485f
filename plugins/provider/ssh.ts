// SSH for the provider: one pooled connection per target, host keys pinned,
// commands run with their input on stdin and bounded time and output.
import { createHash } from "node:crypto";
import { Client, ClientChannel, utils as sshUtils } from "ssh2";

export interface Connection {
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
  stdin?: string | Buffer;
  timeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

const maxOutput = 256 * 1024;
const maxChannelsPerConnection = 6;

/** Checks a connection's shape; returns problems as `field: reason` without echoing values. */
export function validateConnection(c: Partial<Connection>): { property: string; reason: string }[] {
  const errs: { property: string; reason: string }[] = [];
  const p = (f: string) => `connection.${f}`;
  if (typeof c.host !== "string" || c.host === "") errs.push({ property: p("host"), reason: "required" });
  if (typeof c.port !== "number" || !Number.isInteger(c.port) || c.port < 1 || c.port > 65535) {
    errs.push({ property: p("port"), reason: "must be an integer 1-65535" });
  }
  if (typeof c.user !== "string" || !/^[a-z_][a-z0-9_-]*\$?$/.test(c.user)) {
    errs.push({ property: p("user"), reason: "must be a POSIX user name" });
  }
  if (typeof c.privateKey !== "string" || c.privateKey === "") {
    errs.push({ property: p("privateKey"), reason: "required (set it with `pulumi config set --secret`)" });
  } else if (sshUtils.parseKey(c.privateKey) instanceof Error) {
    errs.push({
      property: p("privateKey"),
      reason: "is not a private key ssh can read (expected an unencrypted OpenSSH or PEM key)",
    });
  }
  if (c.hostKey !== undefined && c.hostKey !== "" && hostKeyBlob(c.hostKey) === undefined) {
    errs.push({
      property: p("hostKey"),
      reason: 'must look like "ssh-ed25519 AAAA..." (a line of known_hosts without the host)',
    });
  }
  if (!c.hostKey && !c.insecureIgnoreHostKey) {
    errs.push({
      property: p("hostKey"),
      reason: "required: pin the host's public key (ssh-keyscan -t ed25519 HOST), or set insecureIgnoreHostKey: true",
    });
  }
  return errs;
}

/** The key blob of "type base64 [comment]", or undefined. */
export function hostKeyBlob(line: string): Buffer | undefined {
  const parts = line.trim().split(/\s+/);
  const b64 = parts.length >= 2 ? parts[1] : undefined;
  if (!b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return undefined;
  const blob = Buffer.from(b64, "base64");
  return blob.length > 0 ? blob : undefined;
}

export function fingerprint(blob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

function target(c: Connection): string {
  return `${c.user}@${c.host}:${c.port}`;
}

function poolKey(c: Connection): string {
  const keyHash = createHash("sha256").update(c.privateKey).digest("hex");
  return [c.host, c.port, c.user, keyHash, c.hostKey ?? "", c.insecureIgnoreHostKey ? "1" : "0"].join("\n");
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

export class SshPool {
  private conns = new Map<string, Promise<Pooled>>();

  async exec(c: Connection, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const pooled = await this.connection(c);
    await pooled.acquire();
    try {
      return await runOnChannel(pooled.client, c, command, opts);
    } finally {
      pooled.release();
    }
  }

  closeAll(): void {
    for (const p of this.conns.values())
      p.then(
        (x) => x.client.end(),
        () => undefined,
      );
    this.conns.clear();
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
}

const retryable = new Set(["ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ECONNRESET", "ENETUNREACH", "EAI_AGAIN"]);

async function connectWithRetry(c: Connection): Promise<Client> {
  const attempts = Math.max(1, c.connectAttempts ?? 3);
  let last: Error | undefined;
  for (let i = 1; i <= attempts; i++) {
    try {
      return await connectOnce(c);
    } catch (err) {
      last = err as Error;
      const code = (err as NodeJS.ErrnoException).code ?? "";
      const timedOut = /timed out/i.test(last.message);
      if (!(retryable.has(code) || timedOut) || i === attempts) break;
      await new Promise((r) => setTimeout(r, 1000 * i));
    }
  }
  throw last ?? new Error(`could not connect to ${target(c)}`);
}

function connectOnce(c: Connection): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyProblem: string | undefined;
    const pinned = c.hostKey ? hostKeyBlob(c.hostKey) : undefined;
    const timeoutSec = c.connectTimeoutSeconds ?? 10;
    client.once("ready", () => resolve(client));
    client.once("error", (err: Error & { level?: string; code?: string }) => {
      client.end();
      if (hostKeyProblem) {
        reject(new Error(hostKeyProblem));
        return;
      }
      const e = new Error(describeConnectError(c, err, timeoutSec)) as NodeJS.ErrnoException;
      e.code = err.code;
      reject(e);
    });
    client.connect({
      host: c.host,
      port: c.port,
      username: c.user,
      privateKey: c.privateKey,
      readyTimeout: timeoutSec * 1000,
      keepaliveInterval: 15000,
      hostVerifier: (key: Buffer) => {
        if (c.insecureIgnoreHostKey && !pinned) return true;
        if (pinned && key.equals(pinned)) return true;
        hostKeyProblem =
          `host key of ${target(c)} is ${fingerprint(key)}, which does not match the pinned key ` +
          `${pinned ? fingerprint(pinned) : "(none)"}. If the host was rebuilt on purpose, ` +
          `set connection.hostKey to its new key (ssh-keyscan -t ed25519 ${c.host}); otherwise do not deploy.`;
        return false;
      },
    });
  });
}

function describeConnectError(
  c: Connection,
  err: Error & { level?: string; code?: string },
  timeoutSec: number,
): string {
  const t = target(c);
  if (err.level === "client-authentication") {
    return `ssh to ${t}: the host refused the key (check connection.user and that the public key is in ~${c.user}/.ssh/authorized_keys)`;
  }
  if (/timed out/i.test(err.message)) {
    return `ssh to ${t}: no answer within ${timeoutSec}s (check connection.host and connection.port, and that the host is up and reachable)`;
  }
  switch (err.code) {
    case "ECONNREFUSED":
      return `ssh to ${t}: connection refused (is sshd running, and is connection.port right?)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `ssh to ${t}: cannot resolve ${c.host} (check connection.host)`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `ssh to ${t}: host unreachable (check connection.host and the network route)`;
    default:
      // ssh2 messages name the failing stage; none carries key material.
      return `ssh to ${t}: ${err.message}`;
  }
}

function runOnChannel(client: Client, c: Connection, command: string, opts: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
      if (err) {
        reject(new Error(`ssh to ${target(c)}: could not start a command: ${err.message}`));
        return;
      }
      let stdout = "";
      let stderr = "";
      let done = false;
      const append = (buf: string, chunk: Buffer) => {
        const next = buf + chunk.toString("utf8");
        return next.length > maxOutput ? next.slice(next.length - maxOutput) : next;
      };
      const timer =
        opts.timeoutMs !== undefined
          ? setTimeout(() => {
              if (done) return;
              done = true;
              stream.close();
              reject(new Error(`command on ${target(c)} did not finish within ${Math.round(opts.timeoutMs! / 1000)}s`));
            }, opts.timeoutMs)
          : undefined;
      stream.on("data", (chunk: Buffer) => (stdout = append(stdout, chunk)));
      stream.stderr.on("data", (chunk: Buffer) => (stderr = append(stderr, chunk)));
      stream.on("close", (code: number | null, signal?: string) => {
        if (timer) clearTimeout(timer);
        if (done) return;
        done = true;
        resolve({ code: code ?? (signal ? 128 : 255), stdout, stderr });
      });
      stream.end(opts.stdin ?? "");
    });
  });
}
