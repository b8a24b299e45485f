import * as pulumi from "@pulumi/pulumi";
import { renderEnvFile } from "../builders/envFile";
import { requiredVariables } from "../standard/variables";
import { paths } from "../standard/paths";
import { RemoteFile } from "../sdk/remoteFile";

export interface EnvFileArgs {
  readonly project: string;
  /** Selects shared/.env.{stage}. */
  readonly stage: string;
  /** Owner (the service user); the file is 0600. */
  readonly owner: string;
  readonly group: string;
  /** Plain values. */
  readonly plain: Record<string, string>;
  /** Secret values (config secrets and generated ones). */
  readonly secrets: Record<string, pulumi.Input<string>>;
  /** Variables that must be present. @default standard v2.0's required variables */
  readonly required?: readonly string[];
}

/**
 * shared/.env.{stage}: mode 0600, owned by the service user, written
 * atomically through stdin. The whole content is a secret in state; its hash
 * (also secret) tells the services to restart.
 */
export class EnvFile extends pulumi.ComponentResource {
  public readonly path: string;
  /** sha256 of the content: a restart trigger. */
  public readonly sha256: pulumi.Output<string>;
  public readonly file: RemoteFile;

  constructor(name: string, args: EnvFileArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:EnvFile", name, {}, opts);
    this.path = paths.envFile(args.project, args.stage);
    const names = new Set([...Object.keys(args.plain), ...Object.keys(args.secrets)]);
    const missing = (args.required ?? requiredVariables).filter((v) => !names.has(v));
    if (missing.length > 0) throw new Error(`EnvFile ${name}: missing required variables ${missing.join(", ")}`);

    const content = pulumi.secret(
      pulumi
        .all(args.secrets)
        .apply((secrets) => renderEnvFile({ ...args.plain, ...secrets }, `${this.path}: managed by ayna-deploy`)),
    );
    this.file = new RemoteFile(
      `${name}-file`,
      {
        path: this.path,
        content,
        mode: "0600",
        owner: args.owner,
        group: args.group,
        sudo: true,
      },
      { parent: this, additionalSecretOutputs: ["sha256"] },
    );
    this.sha256 = this.file.sha256;
    this.registerOutputs({ path: this.path, sha256: this.sha256 });
  }
}
