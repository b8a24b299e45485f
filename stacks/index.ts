// The one place stack configuration is read. Everything else gets the typed,
// validated object.
import * as pulumi from "@pulumi/pulumi";
import { schema } from "./schema";
import { ConfigError, unknownKeyMessage, validateField } from "./validate";

export { ConfigError } from "./validate";

export interface HostConfig {
  name: string;
  address: string;
  port: number;
  user: string;
  hostKey?: string;
  insecureIgnoreHostKey: boolean;
}

export interface StackConfig {
  project: string;
  stage: "dev" | "staging" | "production";
  hosts: HostConfig[];
  sshPrivateKey: pulumi.Output<string>;
}

export interface RawConfig {
  /** Keys without the namespace, values as the engine gives them (strings; JSON for objects and lists). */
  values: Record<string, string>;
  /** Keys (without the namespace) that are stored as secrets. */
  secretKeys: Set<string>;
}

function parseValue(raw: string): unknown {
  const t = raw.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return raw;
    }
  }
  return raw;
}

/**
 * Validates raw config. Throws ConfigError listing every problem, each with the
 * key's path (`ayna-deploy:hosts[0].port`) and the fix.
 */
export function parseStackConfig(namespace: string, stack: string, raw: RawConfig): StackConfig {
  const problems: string[] = [];
  const known = Object.keys(schema);
  for (const key of Object.keys(raw.values)) {
    if (!(key in schema)) problems.push(unknownKeyMessage(`${namespace}:${key}`, key, known));
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema)) {
    const path = `${namespace}:${key}`;
    const rawValue = raw.values[key];
    if (field.kind === "string" && field.secret && rawValue !== undefined && !raw.secretKeys.has(key)) {
      problems.push(
        `${path}: must be stored encrypted; run \`pulumi config set --secret ${key} ...\` (and rotate it: it was in plain text)`,
      );
    }
    const v = validateField(path, field, rawValue === undefined ? undefined : parseValue(rawValue), problems);
    if (v !== undefined) out[key] = v;
  }
  if (out["stage"] === undefined) {
    if (["dev", "staging", "production"].includes(stack)) out["stage"] = stack;
    else problems.push(`${namespace}:stage: required when the stack is not named dev, staging or production`);
  }
  const hosts = (out["hosts"] as HostConfig[] | undefined) ?? [];
  const seen = new Set<string>();
  hosts.forEach((h, i) => {
    if (h && seen.has(h.name)) problems.push(`${namespace}:hosts[${i}].name: "${h.name}" is used twice`);
    if (h) seen.add(h.name);
    if (h && !h.hostKey && !h.insecureIgnoreHostKey) {
      problems.push(
        `${namespace}:hosts[${i}].hostKey: required; pin the host key (ssh-keyscan -t ed25519 ${h.address}) or set insecureIgnoreHostKey: true`,
      );
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...(out as Omit<StackConfig, "sshPrivateKey">),
    sshPrivateKey: pulumi.secret(out["sshPrivateKey"] as string),
  };
}

/** Reads this stack's config from the engine. */
export function loadStackConfig(): StackConfig {
  const namespace = pulumi.getProject();
  const all = pulumi.runtime.allConfig();
  const isSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  for (const [fullKey, value] of Object.entries(all)) {
    const idx = fullKey.indexOf(":");
    if (fullKey.slice(0, idx) !== namespace) continue;
    const key = fullKey.slice(idx + 1);
    values[key] = value;
    if (isSecret?.(fullKey)) secretKeys.add(key);
  }
  return parseStackConfig(namespace, pulumi.getStack(), { values, secretKeys });
}
