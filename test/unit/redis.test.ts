import { strict as assert } from "node:assert";
import { registry } from "../../standard/portRegistry";
import { localRedisUrl, redisDbFor } from "../../standard/redis";

describe("Redis database per project", () => {
  it("derives 1 + (base / 10) mod 15: the registry's ranges get 1..5, never 0", () => {
    assert.deepEqual(
      Object.values(registry).map((base) => redisDbFor({ base })),
      [1, 2, 3, 4, 5],
    );
    assert.equal(redisDbFor({ base: 8150 }), 6);
    assert.equal(redisDbFor({ base: 8170 }), 8);
  });

  it("gives fifteen ranges in a row fifteen different databases, none of them 0", () => {
    for (let start = 1030; start <= 65380; start += 10) {
      const dbs = Array.from({ length: 15 }, (_, i) => redisDbFor({ base: start + 10 * i }));
      assert.equal(new Set(dbs).size, 15, `from ${start}`);
      assert.ok(
        dbs.every((d) => d >= 1 && d <= 15),
        `from ${start}: ${dbs.join(",")}`,
      );
    }
  });

  it("builds REDIS_URL for the host's own Redis, and only for databases 0..15", () => {
    assert.equal(localRedisUrl(6), "redis://127.0.0.1:6379/6");
    assert.equal(localRedisUrl(0), "redis://127.0.0.1:6379/0");
    assert.throws(() => localRedisUrl(16), /invalid Redis database 16: expected 0\.\.15/);
    assert.throws(() => localRedisUrl(-1), /invalid Redis database/);
  });
});
