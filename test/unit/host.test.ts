import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";
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

  it("keeps only the private key secret, with defaults for port and user", async () => {
    const conn = pulumi.output(host.connection);
    const key = await settle(pulumi.output(host.connection.privateKey));
    assert.equal(key.secret, true);
    const addr = await settle(pulumi.output(host.connection.host));
    assert.equal(addr.secret, false);
    const all = await settle(conn);
    assert.equal(all.value.port, 22);
    assert.equal(all.value.user, "deploy");
  });
});
