import * as pulumi from "@pulumi/pulumi";
import { Connection } from "./resources/connection";
import { RemoteFile } from "./resources/remoteFile";

/** The standard version this program implements (written to `.template-version`). */
export const standardVersion = "2.0.0";

export interface HostArgs {
  /** Project name; the host gets `/opt/ayna/{project}/`. */
  readonly project: string;
  /** Address SSH connects to. */
  readonly address: pulumi.Input<string>;
  /** SSH port. @default 22 */
  readonly port?: pulumi.Input<number>;
  /** Login user; needs passwordless sudo unless root. @default "deploy" */
  readonly user?: pulumi.Input<string>;
  /** SSH private key (secret). */
  readonly privateKey: pulumi.Input<string>;
  /** Pinned host public key. Required unless `insecureIgnoreHostKey`. */
  readonly hostKey?: pulumi.Input<string>;
  /** @default false */
  readonly insecureIgnoreHostKey?: pulumi.Input<boolean>;
}

/**
 * A Linux host managed over SSH: the pinned connection every other component
 * uses, and the project's root directory marked with the standard version.
 */
export class Host extends pulumi.ComponentResource {
  /**
   * The connection for resources that act on this host. A plain object of
   * inputs (not one Output) so only the private key is secret in state.
   */
  public readonly connection: Connection;
  /** `/opt/ayna/{project}`. */
  public readonly projectDir: string;
  public readonly templateVersionFile: RemoteFile;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:Host", name, {}, opts);
    this.projectDir = `/opt/ayna/${args.project}`;
    this.connection = {
      host: args.address,
      port: args.port ?? 22,
      user: args.user ?? "deploy",
      privateKey: pulumi.secret(args.privateKey),
      hostKey: args.hostKey,
      insecureIgnoreHostKey: args.insecureIgnoreHostKey ?? false,
    };

    this.templateVersionFile = new RemoteFile(
      `${name}-template-version`,
      {
        connection: this.connection,
        path: `${this.projectDir}/.template-version`,
        content: `${standardVersion}\n`,
        mode: "0644",
        owner: "root",
        group: "root",
        sudo: true,
      },
      { parent: this },
    );

    this.registerOutputs({ projectDir: this.projectDir });
  }
}
