import * as pulumi from "@pulumi/pulumi";
import { renderEnvFile } from "../builders/envFile";
import { requiredVariables } from "../standard/variables";
import { paths } from "../standard/paths";

export interface EnvFileArgs {
  readonly project: string;
  /** Selects shared/.env.{stage}. */
  readonly stage: string;
  /** Plain values. */
  readonly plain: Record<string, string>;
  /** Secret values (config secrets and generated ones). */
  readonly secrets: Record<string, pulumi.Input<string>>;
  /**
   * Variables that must be present: the stack config's `requiredEnv`, which
   * follows the roles the project runs.
   * @default all of standard v2.0's required variables
   */
  readonly required?: readonly string[];
}

/**
 * shared/.env.{stage}: its content, checked for the required variables and
 * kept secret. The Release installs it on the host (mode 0600, owned by the
 * service user, atomically) inside its lock and health gate, so an env change
 * is a gated release like a code change.
 */
export class EnvFile extends pulumi.ComponentResource {
  public readonly path: string;
  /** The rendered file (secret). */
  public readonly content: pulumi.Output<string>;
  /** Its values by name (secret): the deploy plan compares them and names the keys that changed. */
  public readonly values: pulumi.Output<Record<string, string>>;
  /** The secret values alone (secret): what output from the host must never show. */
  public readonly secretValues: pulumi.Output<string[]>;

  constructor(name: string, args: EnvFileArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:EnvFile", name, {}, opts);
    this.path = paths.envFile(args.project, args.stage);
    const names = new Set([...Object.keys(args.plain), ...Object.keys(args.secrets)]);
    const missing = (args.required ?? requiredVariables).filter((v) => !names.has(v));
    if (missing.length > 0) {
      // A RunError: the engine shows the message without a stack trace.
      throw new pulumi.RunError(
        `EnvFile ${name}: missing required variables ${missing.join(", ")}; set each with \`pulumi config set --path 'env.NAME' VALUE\` (or --secret --path 'secretEnv.NAME')`,
      );
    }

    const secrets = pulumi.all(args.secrets);
    this.values = pulumi.secret(secrets.apply((s) => ({ ...args.plain, ...s })));
    this.secretValues = pulumi.secret(secrets.apply((s) => Object.values(s)));
    this.content = pulumi.secret(
      this.values.apply((values) => renderEnvFile(values, `${this.path}: installed by ayna-release`)),
    );
    this.registerOutputs({ path: this.path });
  }
}
