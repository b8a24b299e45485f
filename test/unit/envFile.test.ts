import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, settle } from "../support/mocks";

installMocks();
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { EnvFile } = require("../../components/envFile") as typeof import("../../components/envFile");

describe("EnvFile component (mocks)", () => {
  const apiOnly = {
    project: "fastapp",
    stage: "staging",
    plain: { PROJECT_NAME: "fastapp", API_PORT: "8151" },
    secrets: { DATABASE_URL: pulumi.secret("postgresql://app@db/app"), SECRET_KEY: pulumi.secret("k") },
  };

  it("takes the variables the stack's roles need: an api-only project without WEB_PORT, REDIS_URL or Django", async () => {
    const env = new EnvFile("api1", {
      ...apiOnly,
      required: ["PROJECT_NAME", "SECRET_KEY", "DATABASE_URL", "API_PORT"],
    });
    const content = await settle(env.content);
    assert.equal(content.secret, true);
    assert.equal(
      content.value,
      '# /opt/ayna/fastapp/shared/.env.staging: installed by ayna-release\nAPI_PORT="8151"\nDATABASE_URL="postgresql://app@db/app"\nPROJECT_NAME="fastapp"\nSECRET_KEY="k"\n',
    );
  });

  it("lists the secret values alone, as a secret, for the release to scrub from the host's output", async () => {
    const env = new EnvFile("api3", { ...apiOnly, required: [] });
    const values = await settle(env.secretValues);
    assert.deepEqual(values, { value: ["postgresql://app@db/app", "k"], secret: true });
  });

  it("refuses missing variables with a message naming them and the fix, and no stack trace (a RunError)", () => {
    assert.throws(
      () => new EnvFile("api2", apiOnly),
      (e: unknown) => {
        assert.ok(pulumi.RunError.isInstance(e), "a RunError");
        assert.equal(
          (e as Error).message,
          "EnvFile api2: missing required variables DJANGO_SETTINGS_MODULE, REDIS_URL, WEB_PORT; set each with `pulumi config set --path 'env.NAME' VALUE` (or --secret --path 'secretEnv.NAME')",
        );
        return true;
      },
    );
  });
});
