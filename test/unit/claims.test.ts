// The host-side claim of a project's port range and Redis database: the exact
// command (golden), and the script run for real against a directory of its own.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { claimCheckCommand, claimCommand, ClaimSpec, claimScript, releaseClaimCommand } from "../../builders/claims";
import { assertGolden } from "../support/golden";

describe("host claims: ports and Redis database per project", () => {
  let dir: string;
  let claims: string;

  function claim(spec: ClaimSpec): { code: number | null; stderr: string } {
    const r = spawnSync("sh", ["-c", claimScript(spec, { dir: claims, lock: path.join(dir, "lock") })], {
      encoding: "utf8",
    });
    return { code: r.status, stderr: r.stderr };
  }

  function snapshot(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const f of fs.readdirSync(claims)) out[f] = fs.readFileSync(path.join(claims, f), "utf8");
    return out;
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-claims-"));
    claims = path.join(dir, "claims");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("the commands that run on the host (golden, exact)", () => {
    const spec = { project: "demoapp", portBase: 8150, redisDb: 6 };
    assertGolden("claim.sh", claimCommand(spec) + "\n");
    assert.equal(
      claimCheckCommand(spec),
      `sudo -n sh -c 'printf '\\''project=%s\\nports=%s-%s\\nredis_db=%s\\n'\\'' demoapp 8150 8159 6 | cmp -s - /etc/ayna/claims/demoapp'`,
    );
    assert.equal(releaseClaimCommand("demoapp"), "sudo -n sh -c 'rm -f /etc/ayna/claims/demoapp'");
    assert.throws(() => claimCommand({ ...spec, project: "../etc" }), /invalid project name/);
    assert.throws(() => claimCommand({ ...spec, portBase: 81.5 }), /invalid claim/);
  });

  it("writes the claim 0644 with the range and database, and is idempotent for the project's own claim", () => {
    assert.deepEqual(claim({ project: "alpha", portBase: 8150, redisDb: 6 }), { code: 0, stderr: "" });
    const file = path.join(claims, "alpha");
    assert.equal(fs.readFileSync(file, "utf8"), "project=alpha\nports=8150-8159\nredis_db=6\n");
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    const inode = fs.statSync(file).ino;
    assert.deepEqual(claim({ project: "alpha", portBase: 8150, redisDb: 6 }), { code: 0, stderr: "" });
    assert.equal(fs.statSync(file).ino, inode, "an unchanged claim is not rewritten");
    assert.deepEqual(Object.keys(snapshot()), ["alpha"], "no temp file left");
    // Its own claim moves with the config.
    assert.equal(claim({ project: "alpha", portBase: 8160, redisDb: 7 }).code, 0);
    assert.equal(fs.readFileSync(file, "utf8"), "project=alpha\nports=8160-8169\nredis_db=7\n");
  });

  it("lets projects with other ranges and databases sit side by side", () => {
    assert.equal(claim({ project: "alpha", portBase: 8150, redisDb: 6 }).code, 0);
    assert.equal(claim({ project: "beta", portBase: 8170, redisDb: 8 }).code, 0);
    assert.equal(claim({ project: "ext", portBase: 8180 }).code, 0, "no database when Redis is not the host's");
    assert.equal(claim({ project: "other", portBase: 8190, redisDb: 9 }).code, 0);
    assert.deepEqual(Object.keys(snapshot()).sort(), ["alpha", "beta", "ext", "other"]);
  });

  it("refuses an overlapping range, naming the other project and ports.base, and changes nothing", () => {
    assert.equal(claim({ project: "alpha", portBase: 8150, redisDb: 6 }).code, 0);
    const before = snapshot();
    const r = claim({ project: "gamma", portBase: 8150, redisDb: 3 });
    assert.equal(r.code, 4);
    assert.equal(
      r.stderr,
      `claim refused: ports 8150-8159 on this host are claimed by project alpha (${claims}/alpha); gamma wants 8150-8159. ` +
        "Fix: set ports.base of gamma to a free range of ten (pulumi config set --path ports.base N), or remove alpha from this host first.\n",
    );
    assert.deepEqual(snapshot(), before);
    // Any overlap counts, not only the same base.
    assert.equal(claim({ project: "wide", portBase: 8140, portCount: 20, redisDb: 2 }).code, 4);
  });

  it("refuses a Redis database another project uses, naming it, redis.db and the databases in use", () => {
    assert.equal(claim({ project: "alpha", portBase: 8150, redisDb: 6 }).code, 0);
    assert.equal(claim({ project: "beta", portBase: 8170, redisDb: 8 }).code, 0);
    const before = snapshot();
    const r = claim({ project: "gamma", portBase: 8300, redisDb: 8 });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^claim refused: Redis database 8 on this host is used by project beta \(/);
    assert.match(
      r.stderr,
      /Fix: set redis\.db of gamma to a free database 0\.\.15 \(pulumi config set --path redis\.db N\); in use here: 6 8\.\n$/,
    );
    assert.deepEqual(snapshot(), before);
  });

  it("names both conflicts at once, and refuses next to a claim file it cannot read", () => {
    assert.equal(claim({ project: "alpha", portBase: 8150, redisDb: 6 }).code, 0);
    const both = claim({ project: "gamma", portBase: 8150, redisDb: 6 });
    assert.equal(both.code, 4);
    assert.match(both.stderr, /ports 8150-8159 .* project alpha .*ports\.base/);
    assert.match(both.stderr, /Redis database 6 .* project alpha .*redis\.db/);
    fs.writeFileSync(path.join(claims, "broken"), "ports=$(reboot)\n");
    const r = claim({ project: "delta", portBase: 8400, redisDb: 12 });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /cannot read .*\/broken \(expected ports=FIRST-LAST and redis_db=N\); fix or remove it/);
  });
});
