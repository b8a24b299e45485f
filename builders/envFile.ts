// The shared/.env.{stage} file: systemd EnvironmentFile syntax, read by every
// service unit (and by the release script through systemd-run).

export const envNamePattern = /^[A-Z_][A-Z0-9_]*$/;

/**
 * Quotes a value so systemd's EnvironmentFile parser yields it verbatim:
 * inside double quotes, backslash escapes exactly `"`, `\`, `` ` `` and `$`,
 * and a newline is kept as is.
 */
export function quoteEnvValue(value: string): string {
  if (value.includes("\0")) throw new Error("environment values cannot contain NUL");
  return `"${value.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`;
}

/** Renders `KEY="value"` lines, sorted by key so the content (and its hash) is stable. */
export function renderEnvFile(vars: Record<string, string>, header?: string): string {
  const lines: string[] = [];
  if (header) for (const l of header.split("\n")) lines.push(`# ${l}`);
  for (const key of Object.keys(vars).sort()) {
    if (!envNamePattern.test(key)) throw new Error(`invalid environment variable name ${JSON.stringify(key)}`);
    lines.push(`${key}=${quoteEnvValue(vars[key]!)}`);
  }
  return lines.join("\n") + "\n";
}

export { requiredVariables } from "../standard/variables";
