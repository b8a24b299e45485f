// Load on a test host's own loopback while a release runs: load.py keeps
// `clients` connections busy per URL, each request with a client timeout,
// and reports per URL what answered, what failed (and when) and how slow.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { sshExec, TestHost } from "./testhost";

const script = fs.readFileSync(path.join(__dirname, "load.py"), "utf8");

export interface UrlTally {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  releases: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  /** Seconds since the load started, of the first failures. */
  failedAt: number[];
}

export interface LoadResult {
  seconds: number;
  clients: number;
  timeout: number;
  urls: Record<string, UrlTally>;
  // Over every URL:
  ok: number;
  failed: number;
  errors: Record<string, number>;
  releases: Record<string, number>;
  /** The slowest request, in seconds. */
  max: number;
  /** With failures: the host's journal from 12 s before the first to 2 s after the last, to tell why. */
  journal?: string;
}

export interface LoadOptions {
  /** Concurrent clients per URL. @default 8 */
  clients?: number;
  /** Client timeout per request, in seconds: slower counts as failed. @default 5 */
  timeout?: number;
  /** @default the web and api index pages (web's reads the database and renders a template) */
  urls?: string[];
  /** Upper bounds, so a test that forgets to stop cannot run away. */
  maxRequests?: number;
  maxSeconds?: number;
}

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** A one-line summary for a test's log: totals, then per URL. */
export function describeLoad(r: LoadResult): string {
  const per = Object.entries(r.urls).map(
    ([url, t]) =>
      `${url.replace("http://127.0.0.1", "")}: ok ${t.ok}, failed ${t.failed}${
        t.failed ? ` ${JSON.stringify(t.errors)} at ${t.failedAt.join(",")}s` : ""
      }, p50 ${t.p50}s, p99 ${t.p99}s, max ${t.max}s, releases ${JSON.stringify(t.releases)}`,
  );
  return `${r.clients} clients per URL, ${r.timeout}s timeout, ${r.seconds}s: ${per.join("; ")}`;
}

// One load at a time on this machine. The test command runs end-to-end files
// in two lanes side by side; two loads at once would share the 2 cores and
// each would measure the other. The token is a directory (AYNA_LOAD_TOKEN, or
// one in the machine's temp dir): the process whose mkdir of it succeeds runs
// its load, others wait for its removal. A process holds it while any of its
// loads runs (batches runs several at once).
const tokenDir = process.env["AYNA_LOAD_TOKEN"] || path.join(os.tmpdir(), "ayna-e2e-load-token");
let loadsRunning = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function dropToken(): void {
  fs.rmSync(tokenDir, { recursive: true, force: true });
}

async function takeLoadToken(): Promise<void> {
  loadsRunning += 1;
  if (loadsRunning > 1) return;
  const started = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(tokenDir);
      fs.writeFileSync(path.join(tokenDir, "pid"), `${process.pid}\n`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    // A lane that died holding it leaves it behind. No pid yet: just made (or
    // its maker died in between, which only a long wait tells).
    let pid = 0;
    let age = 0;
    try {
      age = Date.now() - fs.statSync(tokenDir).mtimeMs;
      pid = Number(fs.readFileSync(path.join(tokenDir, "pid"), "utf8").trim());
    } catch {
      pid = 0;
    }
    // A pid reused since its holder died would keep it forever: 40 min is more than any load runs.
    if (pid > 0 ? !pidAlive(pid) || age > 2_400_000 : age > 60_000) dropToken();
    else await new Promise((r) => setTimeout(r, 250));
  }
  const waited = (Date.now() - started) / 1000;
  if (waited >= 1) process.stderr.write(`      waited ${waited.toFixed(0)} s for the other lane's load to end\n`);
}

function giveLoadToken(): void {
  loadsRunning -= 1;
  if (loadsRunning === 0) dropToken();
}

process.on("exit", () => {
  if (loadsRunning > 0) dropToken();
});

/** Starts load on the host; `stop()` ends it and returns the tally. */
export async function startLoad(host: TestHost, opts: LoadOptions = {}): Promise<{ stop: () => Promise<LoadResult> }> {
  await takeLoadToken();
  const stopFile = `/tmp/ayna-load-stop-${process.pid}-${Date.now()}`;
  const urls = opts.urls ?? ["http://127.0.0.1:8150/", "http://127.0.0.1:8151/"];
  const args = [
    stopFile,
    opts.maxRequests ?? 1_000_000,
    opts.maxSeconds ?? 600,
    opts.timeout ?? 5,
    opts.clients ?? 8,
    ...urls,
  ];
  const started = Date.now();
  // The token goes back when the load ends, stopped or not (a failed test never calls stop()).
  const run = sshExec(host, `python3 - ${args.join(" ")}`, {
    input: script,
    timeoutMs: ((opts.maxSeconds ?? 600) + 60) * 1000,
  }).finally(giveLoadToken);
  // Every client has sent its first request before the caller goes on.
  await new Promise((r) => setTimeout(r, 1000));
  return {
    stop: async () => {
      await sshExec(host, `touch ${stopFile}`);
      const r = await run;
      await sshExec(host, `rm -f ${stopFile}`);
      assert.equal(r.code, 0, r.stderr);
      const raw = JSON.parse(r.stdout.trim()) as Omit<LoadResult, "ok" | "failed" | "errors" | "releases" | "max">;
      const total: LoadResult = { ...raw, ok: 0, failed: 0, errors: {}, releases: {}, max: 0 };
      for (const t of Object.values(raw.urls)) {
        total.ok += t.ok;
        total.failed += t.failed;
        add(total.errors, t.errors);
        add(total.releases, t.releases);
        total.max = Math.max(total.max, t.max);
      }
      const at = Object.values(raw.urls).flatMap((t) => t.failedAt);
      if (at.length > 0) {
        // The host shares this machine's clock (a container), so load times map onto its journal.
        const since = Math.floor(started / 1000 + Math.min(...at) - 12);
        const until = Math.ceil(started / 1000 + Math.max(...at) + 2);
        const j = await sshExec(
          host,
          `sudo journalctl --no-pager -o short-precise --since @${since} --until @${until} | tail -n 150`,
        );
        total.journal = j.stdout;
      }
      return total;
    },
  };
}

/** Every request of every URL answered 200 within the client timeout. */
export function assertNoLoss(r: LoadResult): void {
  for (const [url, t] of Object.entries(r.urls)) {
    assert.equal(
      t.failed,
      0,
      `${url} lost ${t.failed} requests: ${describeLoad(r)}${r.journal ? `\nthe host's journal around the failures:\n${r.journal}` : ""}`,
    );
  }
  assert.ok(r.ok > 0, "the load sent requests");
}
