import { strict as assert } from "node:assert";
import { claimCheckCommand, claimCommand } from "../../builders/claims";
import { installMocks, recorded, settle } from "../support/mocks";

installMocks();
// Imported after the mocks are in place, as Pulumi's mock docs require.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Host, standardVersion } = require("../../components/host") as typeof import("../../components/host");

describe("Host component (mocks)", () => {
  const host = new Host("web1", {
    project: "demoapp",
    address: "10.0.0.5",
    privateKey: "PRIVATE-KEY-MATERIAL",
    hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGVtSKQWjur8Pq/ONhmYCAWFTjQzutzjFtNZ0WGKGWw",
    claim: { portBase: 8150, redisDb: 6 },
  });

  it("uses the standard's project directory", () => assert.equal(host.projectDir, "/opt/ayna/demoapp"));

  it("marks the project directory with the standard version (v2.0 lists .template-version)", async () => {
    await settle(host.templateVersionFile.sha256);
    const file = recorded.find((r) => r.type === "ayna:remote:File" && r.name === "web1-template-version");
    assert.ok(file, "a RemoteFile is registered");
    assert.equal(file.inputs["path"], "/opt/ayna/demoapp/.template-version");
    assert.equal(file.inputs["content"], `${standardVersion}\n`);
    assert.equal(file.inputs["mode"], "0644");
    assert.equal(file.inputs["owner"], "root");
    assert.equal(standardVersion, "2.0.0");
  });

  it("claims the project's ports and Redis database on the host, freed on destroy", async () => {
    await settle(host.bootstrap.urn);
    const claim = recorded.find((r) => r.type === "ayna:remote:Command" && r.name === "web1-claim");
    assert.ok(claim, "a claim command is registered");
    const spec = { project: "demoapp", portBase: 8150, redisDb: 6 };
    assert.equal(claim.inputs["create"], claimCommand(spec));
    assert.equal(claim.inputs["check"], claimCheckCommand(spec));
    assert.equal(claim.inputs["delete"], "sudo -n sh -c 'rm -f /etc/ayna/claims/demoapp'");
  });

  it("gives the host one provider holding the connection, the private key secret, defaults for port and user", async () => {
    await settle(host.bootstrap.urn);
    const providers = recorded.filter((r) => r.type === "pulumi:providers:ayna");
    assert.deepEqual(
      providers.map((r) => r.name),
      ["web1-ssh"],
    );
    const inputs = providers[0]!.inputs;
    assert.equal(inputs["address"], "10.0.0.5");
    assert.equal(inputs["port"], 22);
    assert.equal(inputs["user"], "deploy");
    // The SDK hands a secret to the engine wrapped with Pulumi's secret signature.
    assert.deepEqual(inputs["privateKey"], {
      "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
      value: "PRIVATE-KEY-MATERIAL",
    });
    assert.equal(inputs["hostKey"], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGVtSKQWjur8Pq/ONhmYCAWFTjQzutzjFtNZ0WGKGWw");
  });

  it("puts no connection on the resources of the host", async () => {
    await settle(host.templateVersionFile.sha256);
    const onHost = recorded.filter((r) => r.type.startsWith("ayna:remote:"));
    assert.ok(onHost.length >= 2);
    for (const r of onHost) {
      assert.equal(r.inputs["connection"], undefined, r.name);
      assert.ok(!JSON.stringify(r.inputs).includes("PRIVATE-KEY-MATERIAL"), r.name);
    }
  });
});
