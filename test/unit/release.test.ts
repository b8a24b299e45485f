// The Release component's deploy command: how long `pulumi up` waits for it.
import { strict as assert } from "node:assert";
import { ReleaseToolSpec, releaseTimeouts } from "../../builders/releaseTool";
import { installMocks, recorded, settle } from "../support/mocks";

installMocks();
// Imported after the mocks are in place, as Pulumi's mock docs require.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Release } = require("../../components/release") as typeof import("../../components/release");

const spec = (healthTimeoutSeconds: number, watchSeconds?: number): ReleaseToolSpec => ({
  project: "demoapp",
  stage: "staging",
  user: "demoapp",
  group: "demoapp",
  services: [{ role: "web", port: 8150, reload: "handover", candidatePort: 8155 }],
  keep: 5,
  healthPath: "/health",
  healthTimeoutSeconds,
  healthPasses: 2,
  ...(watchSeconds === undefined ? {} : { watchSeconds }),
});

const archive = { path: "/nonexistent/app.tar.gz", sha256: "a".repeat(64), bytes: 1, files: {} };
const deployOf = async (name: string, pin?: string) => {
  const r = new Release(name, {
    tool: spec(300, 30),
    app: { archive, sha: "content-aaaaaaaaaaaa" },
    envHash: "env1",
    envContent: "KEY=value\n",
    secretValues: ["s3cret-value"],
    units: [],
    actor: "ops@deployer",
    ...(pin ? { pin } : {}),
  });
  await settle(r.release);
  const cmd = recorded.find((x) => x.type === "ayna:remote:Command" && x.name === `${name}-deploy`);
  assert.ok(cmd, `${name}-deploy is registered`);
  return cmd.inputs;
};

describe("Release: how long up waits for the release tool", () => {
  it("keeps 1800 s for a deploy and 900 s for a rollback with the default budget (60 s, watch 15 s) and below", () => {
    assert.deepEqual(releaseTimeouts(spec(60, 15)), { deploy: 1800, rollback: 900 });
    assert.deepEqual(releaseTimeouts(spec(60)), { deploy: 1800, rollback: 900 });
    assert.deepEqual(releaseTimeouts(spec(1, 0)), { deploy: 1800, rollback: 900 });
  });

  it("adds every second the health waits can grow by: 10 budgets (candidates, gate and the rollback's gate at three each, the watch's last check) and the watch window", () => {
    // healthTimeoutSeconds at its maximum: a stretched candidate start alone
    // can take 2700 s, past the 1800 s a fixed timeout allowed the whole deploy.
    assert.deepEqual(releaseTimeouts(spec(900, 15)), { deploy: 1800 + 8400, rollback: 900 + 8400 });
    assert.deepEqual(releaseTimeouts(spec(60, 600)), { deploy: 1800 + 585, rollback: 900 + 585 });
    assert.deepEqual(releaseTimeouts(spec(61, 15)), { deploy: 1810, rollback: 910 });
  });

  it("gives the deploy command the deploy timeout of its budget (300 s, watch 30 s: 1800 + 2415)", async () => {
    assert.equal((await deployOf("web1-release"))["timeoutSeconds"], 4215);
  });

  it("gives a pinned release (a rollback by up) the rollback timeout of its budget (900 + 2415)", async () => {
    const inputs = await deployOf("web2-release", "v2");
    assert.match(String(inputs["create"]), /rollback/);
    assert.equal(inputs["timeoutSeconds"], 3315);
  });
});

describe("Release: what pulumi up shows of the release tool", () => {
  it("the deploy and the rollback-by-pin commands show the tool's stderr (its account of the release) on success", async () => {
    assert.equal((await deployOf("web3-release"))["logStderr"], true);
    assert.equal((await deployOf("web4-release", "v2"))["logStderr"], true);
  });

  it("the deploy and the rollback-by-pin commands get the env file's secret values to scrub (redact), as a secret", async () => {
    // The engine's secret marker, as the mocks hand inputs over.
    const secret = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: ["s3cret-value"] };
    assert.deepEqual((await deployOf("web5-release"))["redact"], secret);
    assert.deepEqual((await deployOf("web6-release", "v2"))["redact"], secret);
  });
});
