// Small steps the end-to-end tests share: run a command on a test host and
// insist it succeeds, read which release a port serves, change the app copy.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { PulumiStack, repoRoot } from "./pulumi";
import { sshExec, TestHost } from "./testhost";

/** Runs `cmd` on the host (as the host's user) and returns stdout; fails the test on a non-zero exit. */
export async function sh(host: TestHost, cmd: string): Promise<string> {
  const r = await sshExec(host, cmd, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The release ("v3") the sample app's /health names on `port`, or `none: <answer>`. */
export async function servedRelease(host: TestHost, port = 8150): Promise<string> {
  const out = await sh(host, `curl -s http://127.0.0.1:${port}/health`);
  return /"release": ?"(v\d+)"/.exec(out)?.[1] ?? `none: ${out}`;
}

/** A code change in the test's copy of the sample app: a new release on the next `up`. */
export function touchCode(app: string, tag: string): void {
  fs.writeFileSync(path.join(app, "core", "build_tag.py"), `BUILD_TAG = ${JSON.stringify(tag)}\n`);
}

/** `npm run rollback`'s command for the stack (its own config file), as an operator runs it. */
export function runRollback(stack: PulumiStack, args: string[]): Promise<{ code: number; out: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(
      "node",
      ["scripts/compiled.js", "scripts/rollback.ts", "--stack", stack.name, "--config-file", stack.configFile, ...args],
      { cwd: repoRoot, env: stack.env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, out, ms: Date.now() - started }));
  });
}

/** "PORT PROGRAM" of every TCP listener beyond loopback on the host (`ss`), deduplicated and sorted. */
export async function publicListeners(host: TestHost): Promise<{ listeners: string[]; all: string }> {
  const all = (await sh(host, "sudo ss -Htlnp")).trim();
  const listeners = all
    .split("\n")
    .map((l) => l.split(/\s+/))
    .filter((f) => !/^(127\.0\.0\.1|\[::1\]|\[::ffff:127\.0\.0\.1\]):/.test(f[3]!))
    .map((f) => `${f[3]!.replace(/^.*:/, "")} ${/users:\(\("([^"]+)"/.exec(f[5] ?? "")?.[1] ?? "?"}`);
  return { listeners: [...new Set(listeners)].sort(), all };
}

/** Caddy's local CA on a host with proxy.tls internal (venv mode: Debian's caddy). */
export const caddyRootCa = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt";

/** The same in Docker mode: in the proxy container's data volume. */
export const proxyContainerRootCa =
  "/var/lib/docker/volumes/ayna-proxy-data/_data/caddy/pki/authorities/local/root.crt";

/**
 * The command line, run on the host, of a GET through Caddy by name, the
 * certificate checked against ROOT_CA (Caddy's local CA); FLAGS go before the URL.
 */
export function curlThroughCaddy(domain: string, urlPath: string, rootCa: string, ...flags: string[]): string {
  return [
    `sudo curl -sS --max-time 10 --cacert ${rootCa} --resolve ${domain}:443:127.0.0.1`,
    ...flags,
    `https://${domain}${urlPath}`,
  ].join(" ");
}

/** GET through Caddy on the host by name, the certificate checked against Caddy's local CA. */
export async function throughCaddy(
  host: TestHost,
  domain: string,
  urlPath: string,
  rootCa = caddyRootCa,
): Promise<{ code: string; body: string }> {
  const out = await sh(host, curlThroughCaddy(domain, urlPath, rootCa, "-w '\\n%{http_code}'"));
  const i = out.lastIndexOf("\n");
  return { body: out.slice(0, i), code: out.slice(i + 1).trim() };
}

/** The response headers of a GET through Caddy (the body is dropped); FLAGS as for curlThroughCaddy. */
export function headersThroughCaddy(
  host: TestHost,
  domain: string,
  urlPath: string,
  rootCa: string,
  ...flags: string[]
): Promise<string> {
  return sh(host, curlThroughCaddy(domain, urlPath, rootCa, "-o /dev/null", "-D -", ...flags));
}
