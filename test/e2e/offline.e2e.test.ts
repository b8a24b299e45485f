// A host that cannot reach PyPI (issue 11), with `offline.enabled`: every
// wheel the sample app's lock needs on the host's Python, and uv's own, is
// gathered on this machine and uploaded; the host installs them with no index.
// The host's Debian packages come first, from its own mirror (as an offline
// site's would); then its default route goes, so nothing beyond this machine
// answers it, PyPI included, for the rest of the test.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { basePackages } from "../../builders/bootstrap";
import { PulumiStack, resourceSummary } from "../support/pulumi";
import { servedRelease, sh, touchCode } from "../support/sampleApp";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

const project = "offapp";

describe("a host without PyPI (offline.enabled): the sample app from wheels gathered here, uploaded and installed with no index", function () {
  this.timeout(1_200_000);
  let host: TestHost;
  let stack: PulumiStack;
  let app: string;

  before(async () => {
    host = await startHost();
    await sh(
      host,
      `sudo apt-get update -qq && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${[...basePackages, "redis-server"].join(" ")} >/dev/null`,
    );
    await sh(host, "sudo ip route del default");
    stack = await PulumiStack.create(`off${process.pid}`);
    // The wheels go to the stack's own folder, not to ~/.cache.
    stack.env["AYNA_WHEEL_DIR"] = path.join(stack.dir, "wheels");
    await stack.configureHost(project, host);
    app = await stack.configureSampleApp(project);
    await stack.setConfig("offline.enabled", "true", { path: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("the host reaches nothing beyond this machine: no route to PyPI", async () => {
    assert.equal((await sh(host, "ip route show default")).trim(), "", "no default route");
    const r = await sshExec(host, "curl -sS --max-time 10 -o /dev/null https://pypi.org/simple/", {
      timeoutMs: 30_000,
    });
    assert.notEqual(r.code, 0, "PyPI answered the host");
  });

  it("deploys from nothing: uv and every package from the uploaded wheels, no index configured; web and api serve v1", async () => {
    touchCode(app, "offline-v1");
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.match(r.stdout + r.stderr, /offline hosts: wheels gathered now for Python 3\.13 on x86_64/);
    assert.equal(await servedRelease(host), "v1");
    assert.equal(await servedRelease(host, 8151), "v1");
    // The environment holds what the exported requirements pin: every wheel uploaded was installed.
    const house = fs.readdirSync(path.join(stack.dir, "wheels")).filter((d) => !d.startsWith("."));
    assert.equal(house.length, 1);
    const wheels = fs.readdirSync(path.join(stack.dir, "wheels", house[0]!, "wheels"));
    const installed = await sh(
      host,
      `sudo /opt/ayna/.tools/uv-0.13.9/bin/uv pip list --offline --python /opt/ayna/${project}/releases/current/.venv/bin/python --format freeze`,
    );
    const norm = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");
    const have = new Set(
      installed
        .trim()
        .split("\n")
        .map((l) => l.split("=="))
        .map(([n, v]) => `${norm(n!)}==${v}`),
    );
    for (const w of wheels) {
      const [name, version] = w.split("-");
      assert.ok(have.has(`${norm(name!)}==${version}`), `${w} is not installed:\n${installed}`);
    }
  });

  it("a code-only release: the wheels gathered earlier, no environment built, v2 serves", async () => {
    touchCode(app, "offline-v2");
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.match(r.stdout + r.stderr, /offline hosts: the wheels gathered earlier/);
    assert.equal(
      (await sh(host, `sudo ls /opt/ayna/${project}/venvs`)).trim().split("\n").length,
      1,
      "one environment",
    );
    assert.equal(await servedRelease(host), "v2");
    assert.equal(await servedRelease(host, 8151), "v2");
    const again = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
  });
});
