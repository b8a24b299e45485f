// A parsed stack config for unit tests: one host of the demo project, with
// overrides; parsed as the program parses the engine's config.
import { parseStackConfig, RawConfig, StackConfig } from "../../stacks";

export const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGVtSKQWjur8Pq/ONhmYCAWFTjQzutzjFtNZ0WGKGWw";
export const privateKey =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

/** The smallest valid config of the demo project: one host, the required variables. */
export const goodConfig = {
  project: "demoapp",
  ports: { base: 8150 },
  hosts: [{ name: "web1", address: "10.0.0.5", hostKey }],
  sshPrivateKey: privateKey,
  env: { DJANGO_SETTINGS_MODULE: "config.settings" },
  secretEnv: { DATABASE_URL: "postgresql://app:pw@db.internal:5432/app" },
};

/** Config values as the engine gives them: strings, objects and lists as JSON; an undefined value left out. */
export function rawConfig(
  values: Record<string, unknown>,
  secretKeys: string[] = ["sshPrivateKey", "secretEnv"],
): RawConfig {
  const raw: RawConfig = { values: {}, secretKeys: new Set(secretKeys) };
  for (const [k, v] of Object.entries(values)) {
    if (v !== undefined) raw.values[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return raw;
}

/** The demo stack's config with `extra` keys on top (a key set to undefined is left out). */
export function stackConfig(extra: Record<string, unknown> = {}): StackConfig {
  return parseStackConfig("ayna-deploy", "staging", rawConfig({ ...goodConfig, ...extra }));
}
