import * as pulumi from "@pulumi/pulumi";
import { BootstrapSpec, bootstrapCommand } from "../builders/bootstrap";
import { ClaimSpec, claimCheckCommand, claimCommand, releaseClaimCommand } from "../builders/claims";
import { paths } from "../standard/paths";
import { Provider, ProviderArgs } from "../sdk/provider";
import { RemoteCommand } from "../sdk/remoteCommand";
import { RemoteFile } from "../sdk/remoteFile";
import { standardVersion } from "../standard/variables";

export { standardVersion };

/** How the host is reached (the fields of its provider), and what it must have. */
export interface HostArgs extends ProviderArgs {
  /** Project name; the host gets `/opt/ayna/{project}/`. */
  readonly project: string;
  /** Non-root user the services run as. @default project */
  readonly serviceUser?: string;
  /** Its group. @default serviceUser */
  readonly serviceGroup?: string;
  /** Python MAJOR.MINOR the host must have. @default "3.13" */
  readonly python?: string;
  /** Debian packages beyond the base set (python3, python3-venv, curl, ...). @default [] */
  readonly packages?: string[];
  /**
   * The project's claim on the host (/etc/ayna/claims/{project}): its port
   * range and its database on the host's Redis. Made before the bootstrap, and
   * refused, before anything on the host changes, when another project there
   * holds an overlapping range or the same database; freed when the host is
   * destroyed. @default no claim
   */
  readonly claim?: { portBase: number; redisDb?: number };
  /**
   * Others may enter /opt/ayna/{project} (0751), for Caddy to reach Docker
   * mode's sockets there.
   * @default false
   */
  readonly traversable?: boolean;
  /**
   * Others may enter /opt/ayna/{project} and its releases/ (0751), for Caddy
   * to serve the serving release's static files from disk.
   * @default false
   */
  readonly staticServed?: boolean;
  /**
   * Docker mode: the system user Caddy's container runs as, made by the
   * bootstrap (Debian's caddy package, which makes it otherwise, is not
   * installed in that mode).
   * @default none
   */
  readonly proxyUser?: string;
}

/**
 * A Linux host managed over SSH: its own `ayna` provider holding the pinned
 * connection (hand it to every component on the host with
 * `{ providers: [host.provider] }`), and an idempotent bootstrap (Python
 * check, packages, service user, standard v2.0's /opt/ayna/{project} tree).
 */
export class Host extends pulumi.ComponentResource {
  /** The provider for every resource on this host; the only place its connection is kept. */
  public readonly provider: Provider;
  /** `/opt/ayna/{project}`. */
  public readonly projectDir: string;
  public readonly serviceUser: string;
  public readonly serviceGroup: string;
  public readonly bootstrap: RemoteCommand;
  /** Present when `claim` is given; the bootstrap waits for it. */
  public readonly claim?: RemoteCommand;
  public readonly templateVersionFile: RemoteFile;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:Host", name, {}, opts);
    this.projectDir = paths.root(args.project);
    this.serviceUser = args.serviceUser ?? args.project;
    this.serviceGroup = args.serviceGroup ?? this.serviceUser;
    this.provider = new Provider(
      `${name}-ssh`,
      {
        address: args.address,
        port: args.port ?? 22,
        user: args.user ?? "deploy",
        privateKey: args.privateKey,
        hostKey: args.hostKey,
        insecureIgnoreHostKey: args.insecureIgnoreHostKey ?? false,
        connectTimeoutSeconds: args.connectTimeoutSeconds,
        connectAttempts: args.connectAttempts,
      },
      { parent: this },
    );
    const onHost = { parent: this, provider: this.provider };

    const spec: BootstrapSpec = {
      project: args.project,
      user: this.serviceUser,
      group: this.serviceGroup,
      python: args.python ?? "3.13",
      packages: args.packages ?? [],
      ...(args.traversable ? { traversable: true } : {}),
      ...(args.staticServed ? { staticServed: true } : {}),
      ...(args.proxyUser !== undefined ? { proxyUser: args.proxyUser } : {}),
    };
    if (args.claim) {
      const claim: ClaimSpec = { project: args.project, ...args.claim };
      this.claim = new RemoteCommand(
        `${name}-claim`,
        {
          create: claimCommand(claim),
          delete: releaseClaimCommand(args.project),
          check: claimCheckCommand(claim),
          timeoutSeconds: 120,
        },
        onHost,
      );
    }
    this.bootstrap = new RemoteCommand(
      `${name}-bootstrap`,
      { create: bootstrapCommand(spec), timeoutSeconds: 900 },
      { ...onHost, dependsOn: this.claim ? [this.claim] : [] },
    );

    this.templateVersionFile = new RemoteFile(
      `${name}-template-version`,
      {
        path: `${this.projectDir}/.template-version`,
        content: `${standardVersion}\n`,
        mode: "0644",
        owner: "root",
        group: "root",
        sudo: true,
      },
      { ...onHost, dependsOn: this.bootstrap },
    );

    this.registerOutputs({ projectDir: this.projectDir, serviceUser: this.serviceUser });
  }
}
