// The sample app's own pytest suite, run where its Python is: on a Debian 13
// test host (Python 3.13), with the locked dependencies (dev group included).
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { buildArchive } from "../../local/archive";
import { installUvCommand, uvBinary } from "../../builders/python";
import { defaultUvVersion } from "../../components/pythonRuntime";
import { repoRoot } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

describe("sample app: its own test suite on Debian 13", function () {
  this.timeout(600_000);
  let host: TestHost;

  before(async () => {
    host = await startHost();
  });

  after(async () => {
    if (host) await stopHost(host);
  });

  it("passes with the locked dependencies", async () => {
    const uv = await sshExec(host, installUvCommand(defaultUvVersion), { timeoutMs: 300_000 });
    assert.equal(uv.code, 0, uv.stderr);
    const archive = buildArchive(path.join(repoRoot, "sample-app"));
    const unpack = await sshExec(host, "rm -rf ~/app && mkdir ~/app && tar -xzf - -C ~/app", {
      input: fs.readFileSync(archive.path),
    });
    assert.equal(unpack.code, 0, unpack.stderr);
    const r = await sshExec(
      host,
      `cd ~/app && SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_PYTHON_DOWNLOADS=never ${uvBinary(defaultUvVersion)} run --frozen --quiet pytest -q -p no:cacheprovider`,
      { timeoutMs: 300_000 },
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const summary = /(\d+) passed/.exec(r.stdout);
    assert.ok(summary && Number(summary[1]) >= 20, r.stdout);
    assert.doesNotMatch(r.stdout, /failed|error/i);
    process.stderr.write(`      sample app pytest: ${r.stdout.trim().split("\n").pop()}\n`);
  });
});
