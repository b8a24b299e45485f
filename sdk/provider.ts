import * as pulumi from "@pulumi/pulumi";

export interface ProviderArgs {
  /** IP address or DNS name SSH connects to. */
  readonly address: pulumi.Input<string>;
  /** SSH port. @default 22 */
  readonly port?: pulumi.Input<number>;
  /** Login user; needs passwordless sudo unless root. @default "deploy" */
  readonly user?: pulumi.Input<string>;
  /** Private key for SSH (OpenSSH or PEM, unencrypted). Kept secret in state, once per host. */
  readonly privateKey: pulumi.Input<string>;
  /**
   * The host's public key, pinned ("ssh-ed25519 AAAA..."). It is the host's
   * identity: a new pinned key makes every resource on the host new.
   */
  readonly hostKey?: pulumi.Input<string>;
  /** Accept any host key. Never for production. @default false */
  readonly insecureIgnoreHostKey?: pulumi.Input<boolean>;
  /** Seconds for each TCP + SSH handshake attempt. @default 10 */
  readonly connectTimeoutSeconds?: pulumi.Input<number>;
  /** Attempts before an unreachable host fails the update. @default 3 */
  readonly connectAttempts?: pulumi.Input<number>;
}

/**
 * The `ayna` provider for one host: it holds the connection, so the host's
 * resources carry none. A new address, user or key is one change here and
 * runs nothing on the host.
 */
export class Provider extends pulumi.ProviderResource {
  constructor(name: string, args: ProviderArgs, opts?: pulumi.ResourceOptions) {
    super("ayna", name, { ...args, privateKey: pulumi.secret(args.privateKey) }, opts);
  }
}
