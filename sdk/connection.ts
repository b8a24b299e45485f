import * as pulumi from "@pulumi/pulumi";

/** How the provider reaches a host over SSH. */
export interface Connection {
  host: pulumi.Input<string>;
  /** @default 22 */
  port: pulumi.Input<number>;
  user: pulumi.Input<string>;
  /** Secret. Never leaves the engine except to the provider over its local gRPC channel. */
  privateKey: pulumi.Input<string>;
  /** Pinned host public key, "ssh-ed25519 AAAA...". */
  hostKey?: pulumi.Input<string>;
  /** @default false */
  insecureIgnoreHostKey?: pulumi.Input<boolean>;
  /** @default 10 */
  connectTimeoutSeconds?: pulumi.Input<number>;
  /** @default 3 */
  connectAttempts?: pulumi.Input<number>;
}
