import * as pulumi from "@pulumi/pulumi";
import { BootstrapSpec, bootstrapCommand } from "../builders/bootstrap";
import { paths } from "../standard/paths";
import { Connection } from "../sdk/connection";
import { RemoteCommand } from "../sdk/remoteCommand";
import { RemoteFile } from "../sdk/remoteFile";

import { standardVersion } from "../standard/variables";

export { standardVersion };

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
  /** Non-root user the services run as. @default project */
  readonly serviceUser?: string;
  /** Its group. @default serviceUser */
  readonly serviceGroup?: string;
  /** Python MAJOR.MINOR the host must have. @default "3.13" */
  readonly python?: string;
  /** Debian packages beyond the base set (python3, python3-venv, curl, ...). @default [] */
  readonly packages?: string[];
}

/**
 * A Linux host managed over SSH: the pinned connection every other component
 * uses, and an idempotent bootstrap (Python check, packages, service user,
 * standard v2.0's /opt/ayna/{project} tree with owners and modes).
 */
export class Host extends pulumi.ComponentResource {
  /**
   * The connection for resources that act on this host. A plain object of
   * inputs (not one Output) so only the private key is secret in state.
   */
  public readonly connection: Connection;
  /** `/opt/ayna/{project}`. */
  public readonly projectDir: string;
  public readonly serviceUser: string;
  public readonly serviceGroup: string;
  public readonly bootstrap: RemoteCommand;
  public readonly templateVersionFile: RemoteFile;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:Host", name, {}, opts);
    this.projectDir = paths.root(args.project);
    this.serviceUser = args.serviceUser ?? args.project;
    this.serviceGroup = args.serviceGroup ?? this.serviceUser;
    this.connection = {
      host: args.address,
      port: args.port ?? 22,
      user: args.user ?? "deploy",
      privateKey: pulumi.secret(args.privateKey),
      hostKey: args.hostKey,
      insecureIgnoreHostKey: args.insecureIgnoreHostKey ?? false,
    };

    const spec: BootstrapSpec = {
      project: args.project,
      user: this.serviceUser,
      group: this.serviceGroup,
      python: args.python ?? "3.13",
      packages: args.packages ?? [],
    };
    this.bootstrap = new RemoteCommand(
      `${name}-bootstrap`,
      { connection: this.connection, create: bootstrapCommand(spec), timeoutSeconds: 900 },
      { parent: this },
    );

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
      { parent: this, dependsOn: this.bootstrap },
    );

    this.registerOutputs({ projectDir: this.projectDir, serviceUser: this.serviceUser });
  }
}
