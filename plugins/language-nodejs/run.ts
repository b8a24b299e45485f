// Pure pieces of the language host: how a RunRequest becomes a Node.js process.

export interface RunSettings {
  engineAddress: string;
  monitorAddress: string;
  project: string;
  stack: string;
  organization: string;
  pwd: string;
  rootDirectory: string;
  program: string;
  args: string[];
  dryRun: boolean;
  queryMode: boolean;
  parallel: number;
  config: Record<string, string>;
  configSecretKeys: string[];
  /** `runtime.options` from Pulumi.yaml. */
  options: Record<string, unknown>;
}

export interface Invocation {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** Exit code `@pulumi/pulumi/cmd/run` uses after it has already shown the error. */
export const exitAfterLoggedError = 32;

/** Builds the argv and environment for `node <run script> ... <program>`. */
export function buildRunInvocation(
  s: RunSettings,
  runScript: string,
  nodePath: string,
  baseEnv: NodeJS.ProcessEnv,
): Invocation {
  const nodeArgs = splitNodeArgs(s.options["nodeargs"]);
  const flags = [
    `--monitor=${s.monitorAddress}`,
    `--engine=${s.engineAddress}`,
    `--project=${s.project}`,
    `--stack=${s.stack}`,
    `--pwd=${s.pwd}`,
  ];
  if (s.organization) flags.push(`--organization=${s.organization}`);
  if (s.rootDirectory) flags.push(`--root-directory=${s.rootDirectory}`);
  if (s.dryRun) flags.push("--dry-run");
  if (s.queryMode) flags.push("--query-mode");
  if (s.parallel > 0) flags.push(`--parallel=${s.parallel}`);

  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    PULUMI_CONFIG: JSON.stringify(s.config),
    PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(s.configSecretKeys),
    PULUMI_NODEJS_TYPESCRIPT: s.options["typescript"] === false ? "false" : "true",
  };
  // Type checking is the test suite's job (tsc --noEmit); skipping it here
  // takes seconds off every preview and update.
  if (s.options["transpileOnly"] === true) env.PULUMI_NODEJS_TRANSPILE_ONLY = "true";
  const tsconfig = s.options["tsconfig"];
  if (typeof tsconfig === "string" && tsconfig !== "") env.PULUMI_NODEJS_TSCONFIG_PATH = tsconfig;

  return {
    command: nodePath,
    args: [...nodeArgs, runScript, ...flags, s.program, ...s.args],
    cwd: s.pwd || process.cwd(),
    env,
  };
}

function splitNodeArgs(v: unknown): string[] {
  if (typeof v !== "string") return [];
  return v.split(/\s+/).filter((a) => a !== "");
}

/** Maps the program's exit to the RunResponse fields. */
export function runOutcome(code: number | null, signal: NodeJS.Signals | null): { error?: string; bail?: boolean } {
  if (code === 0) return {};
  if (code === exitAfterLoggedError) return { bail: true };
  if (signal) return { error: `Program was terminated by signal ${signal}` };
  return { error: `Program exited with non-zero exit code: ${code ?? "unknown"}` };
}
