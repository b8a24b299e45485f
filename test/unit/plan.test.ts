// stacks/plan.ts: the validated config turned into what each host gets. Pure,
// so the per-host plan is checked here with exact values.
import { strict as assert } from "node:assert";
import { parseStackConfig, RawConfig } from "../../stacks";
import { planHosts } from "../../stacks/plan";

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGVtSKQWjur8Pq/ONhmYCAWFTjQzutzjFtNZ0WGKGWw";
const privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

function config(extra: Record<string, unknown> = {}) {
  const values: Record<string, unknown> = {
    project: "demoapp",
    ports: { base: 8150 },
    hosts: ["a", "b", "c", "d", "e"].map((n, i) => ({ name: n, address: `10.0.0.${i + 5}`, hostKey })),
    sshPrivateKey: privateKey,
    env: { DJANGO_SETTINGS_MODULE: "config.settings" },
    secretEnv: { DATABASE_URL: "postgresql://app:pw@db.internal:5432/app" },
    ...extra,
  };
  const raw: RawConfig = {
    values: Object.fromEntries(
      Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
    ),
    secretKeys: new Set(["sshPrivateKey", "secretEnv"]),
  };
  return parseStackConfig("ayna-deploy", "staging", raw);
}

describe("stacks/plan: a typed plan per host", () => {
  it("puts hosts in batches of release.batchSize, in config order", () => {
    const plans = planHosts(config({ release: { batchSize: 2 } }));
    assert.deepEqual(
      plans.map((p) => [p.host.name, p.batch]),
      [
        ["a", 0],
        ["b", 0],
        ["c", 1],
        ["d", 1],
        ["e", 2],
      ],
    );
  });

  it("gives web and api their ports and the reserved candidate ports (+5, +6); workers none", () => {
    const [plan] = planHosts(config());
    const ports = plan!.releaseTool.services.map((s) => [s.role, s.port ?? null, s.candidatePort ?? null]);
    assert.deepEqual(ports, [
      ["web", 8150, 8155],
      ["api", 8151, 8156],
      ["celery", null, null],
      ["beat", null, null],
    ]);
  });

  it("plans units only for the enabled roles, run by the service user", () => {
    const [plan] = planHosts(config({ services: { beat: { enabled: false }, celery: { enabled: false } } }));
    assert.deepEqual(
      plan!.units.map((u) => [u.role, u.user, u.group]),
      [
        ["web", "demoapp", "demoapp"],
        ["api", "demoapp", "demoapp"],
      ],
    );
    assert.deepEqual(
      plan!.releaseTool.services.map((s) => s.role),
      ["web", "api"],
    );
  });

  it("asks for redis-server on the host only when Redis is local", () => {
    assert.deepEqual(planHosts(config())[0]!.packages, ["redis-server"]);
    assert.deepEqual(
      planHosts(
        config({
          redis: { local: false },
          env: { DJANGO_SETTINGS_MODULE: "config.settings", REDIS_URL: "redis://cache:6379/0" },
        }),
      )[0]!.packages,
      [],
    );
  });
});
