// Small steps the end-to-end tests share: run a command on a test host and
// insist it succeeds, read which release a port serves, change the app copy.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
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
