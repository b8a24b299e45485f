import * as pulumi from "@pulumi/pulumi";

export interface RemoteFileArgs {
  /** Absolute path on the host. */
  readonly path: pulumi.Input<string>;
  /** File content; pass a secret Output for secret content. */
  readonly content: pulumi.Input<string>;
  /** Octal mode. @default "0644" */
  readonly mode?: pulumi.Input<string>;
  /** @default the connecting user */
  readonly owner?: pulumi.Input<string>;
  /** @default the owner's group */
  readonly group?: pulumi.Input<string>;
  /** Write through `sudo -n`. @default false */
  readonly sudo?: pulumi.Input<boolean>;
}

/** A file on the host of its provider, written atomically with mode and owner (type `ayna:remote:File`). */
export class RemoteFile extends pulumi.CustomResource {
  /** SHA-256 of the content as written (or as found by refresh). */
  declare public readonly sha256: pulumi.Output<string>;
  /** How many times the file was written: grows when refresh found it changed and `up` wrote it back. */
  declare public readonly writes: pulumi.Output<number>;
  declare public readonly path: pulumi.Output<string>;
  declare public readonly mode: pulumi.Output<string>;

  constructor(name: string, args: RemoteFileArgs, opts?: pulumi.CustomResourceOptions) {
    super("ayna:remote:File", name, { ...args, sha256: undefined, writes: undefined }, opts);
  }
}
