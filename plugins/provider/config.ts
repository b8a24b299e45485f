// The provider's own configuration: the connection to one host. A program
// makes one provider per host; its resources then carry no connection at all,
// so the private key is stored once per host (encrypted) and a new address,
// user or key is one change on the provider that runs nothing on the host.
import { Connection, Failure, validateConnection } from "./ssh";
import { containsUnknown, reveal, wrapSecret } from "./secrets";
import { DiffResult, propertyDiff } from "./util";

/** The keys the provider takes, as the program sets them. */
export const configKeys = [
  "address",
  "port",
  "user",
  "privateKey",
  "hostKey",
  "insecureIgnoreHostKey",
  "connectTimeoutSeconds",
  "connectAttempts",
] as const;

/** Keys the engine adds to every provider's inputs. */
const engineKeys = new Set(["version", "pluginDownloadURL"]);

/** How the engine may hand over values: typed, or (older style) as strings. */
function asNumber(v: unknown): unknown {
  return typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
}

function asBool(v: unknown): unknown {
  return v === "true" ? true : v === "false" ? false : v;
}

/** A connection from the provider's (revealed) inputs; undefined when no connection is configured. */
export function connectionOf(config: Record<string, unknown>): Connection | undefined {
  const c = reveal(config) as Record<string, unknown>;
  if (c["address"] === undefined && c["privateKey"] === undefined && c["user"] === undefined) return undefined;
  return {
    host: c["address"] as string,
    port: (asNumber(c["port"]) ?? 22) as number,
    user: (c["user"] ?? "deploy") as string,
    privateKey: c["privateKey"] as string,
    hostKey: (c["hostKey"] as string | undefined) || undefined,
    insecureIgnoreHostKey: (asBool(c["insecureIgnoreHostKey"]) ?? false) as boolean,
    connectTimeoutSeconds: asNumber(c["connectTimeoutSeconds"]) as number | undefined,
    connectAttempts: asNumber(c["connectAttempts"]) as number | undefined,
  };
}

/**
 * CheckConfig: an empty config is fine (only random secrets then); a partial
 * one is not. The private key is parsed only when it differs from `olds`'
 * (the key already in state passed this check when it was set).
 */
export function checkConfig(
  news: Record<string, unknown>,
  olds: Record<string, unknown> = {},
): { inputs: Record<string, unknown>; failures: Failure[] } {
  const failures: Failure[] = [];
  for (const k of Object.keys(news)) {
    if (!(configKeys as readonly string[]).includes(k) && !engineKeys.has(k) && !k.startsWith("__")) {
      failures.push({ property: k, reason: `unknown setting; the ayna provider takes ${configKeys.join(", ")}` });
    }
  }
  const inputs = { ...news };
  // The key stays a secret in state whatever form it arrived in.
  if (inputs["privateKey"] !== undefined && reveal(inputs["privateKey"]) === inputs["privateKey"]) {
    inputs["privateKey"] = wrapSecret(inputs["privateKey"]);
  }
  if (containsUnknown(news)) return { inputs, failures };
  const conn = connectionOf(news);
  const partial = configKeys.filter((k) => news[k] !== undefined);
  if (!conn && partial.length > 0) {
    failures.push({
      property: "address",
      reason: `a connection needs address, user and privateKey (only ${partial.join(", ")} given)`,
    });
  }
  if (conn) {
    const keyInState = olds["privateKey"] !== undefined && reveal(olds["privateKey"]) === conn.privateKey;
    for (const f of validateConnection(conn, { parseKey: !keyInState })) failures.push(f);
    if (conn.connectTimeoutSeconds !== undefined && !(conn.connectTimeoutSeconds > 0)) {
      failures.push({ property: "connectTimeoutSeconds", reason: "must be a positive number" });
    }
    if (conn.connectAttempts !== undefined && !(Number.isInteger(conn.connectAttempts) && conn.connectAttempts >= 1)) {
      failures.push({ property: "connectAttempts", reason: "must be a whole number, 1 or more" });
    }
  }
  return { inputs, failures };
}

/**
 * DiffConfig: any connection change is an in-place update of the provider,
 * never a replacement. A new pinned host key changes the host's identity,
 * which the provider's resources see in their own diff (they are replaced,
 * since the machine behind them is a new one).
 */
export function diffConfig(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  return propertyDiff(olds, news, [...configKeys], []);
}
