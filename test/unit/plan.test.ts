// stacks/plan.ts: the validated config turned into what each host gets. Pure,
// so the per-host plan is checked here with exact values.
import { strict as assert } from "node:assert";
import { planHosts, releaseToolSpec } from "../../stacks/plan";
import { hostKey, stackConfig } from "../support/config";

const config = (extra: Record<string, unknown> = {}) =>
  stackConfig({
    hosts: ["a", "b", "c", "d", "e"].map((n, i) => ({ name: n, address: `10.0.0.${i + 5}`, hostKey })),
    ...extra,
  });

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

  it("gives the release tool each role's own health path, and whether answers name the release", () => {
    const spec = releaseToolSpec(
      config({ services: { api: { healthPath: "/api/health" } }, release: { healthNamesRelease: false } }),
    );
    assert.deepEqual(spec.healthPaths, { api: "/api/health" });
    assert.equal(spec.healthPath, "/health");
    assert.equal(spec.healthNamesRelease, false);
    assert.equal(releaseToolSpec(config()).healthNamesRelease, true);
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
