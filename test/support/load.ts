// Load on a test host's own loopback while a release runs: load.py keeps
// `clients` connections busy per URL, each request with a client timeout,
// and reports per URL what answered, what failed (and when) and how slow.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
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

/** Starts load on the host; `stop()` ends it and returns the tally. */
export async function startLoad(host: TestHost, opts: LoadOptions = {}): Promise<{ stop: () => Promise<LoadResult> }> {
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
  const run = sshExec(host, `python3 - ${args.join(" ")}`, {
    input: script,
    timeoutMs: ((opts.maxSeconds ?? 600) + 60) * 1000,
  });
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
