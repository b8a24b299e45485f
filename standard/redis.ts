// The project's database on a host's local Redis. Projects on one host share
// one redis-server, so each gets its own database number (Redis has 16, 0..15)
// and its Celery workers take only its own tasks. The one place REDIS_URL is
// derived.
import { PortRange, rangeSize } from "./portRegistry";

/** Databases of a stock redis-server (`databases 16`). */
export const redisDatabases = 16;
export const localRedisAddress = "127.0.0.1:6379";

/**
 * The default database of a project: 1 + (base / 10) mod 15, from its port
 * range. Neighbouring ranges get neighbouring numbers (the registry's 8100..8140
 * get 1..5, 8150 gets 6), fifteen ranges in a row never share one, and 0, the
 * database software outside the standard uses when told nothing, is never
 * picked. Ranges fifteen blocks apart do collide; the host's claim
 * (builders/claims.ts) catches that and asks for `redis.db`.
 */
export function redisDbFor(range: Pick<PortRange, "base">): number {
  return 1 + (Math.floor(range.base / rangeSize) % (redisDatabases - 1));
}

/** REDIS_URL of a project whose Redis is the host's own. */
export function localRedisUrl(db: number): string {
  if (!Number.isInteger(db) || db < 0 || db >= redisDatabases) {
    throw new Error(`invalid Redis database ${db}: expected 0..${redisDatabases - 1}`);
  }
  return `redis://${localRedisAddress}/${db}`;
}

/** REDIS_URL in Docker mode: the project's own Redis container, by its name on the project's network. */
export function containerRedisUrl(project: string): string {
  return `redis://${project}-redis:6379/0`;
}
