import * as pulumi from "@pulumi/pulumi";

export interface RandomSecretArgs {
  /** @default 50 */
  readonly length?: pulumi.Input<number>;
  /** @default "alnum" */
  readonly alphabet?: pulumi.Input<"alnum" | "urlsafe">;
  /** Any change generates a new value. */
  readonly keepers?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** A random value generated once and kept across updates (type `ayna:random:Secret`). */
export class RandomSecret extends pulumi.CustomResource {
  declare public readonly value: pulumi.Output<string>;

  constructor(name: string, args: RandomSecretArgs = {}, opts?: pulumi.CustomResourceOptions) {
    super(
      "ayna:random:Secret",
      name,
      { ...args, value: undefined },
      { ...opts, additionalSecretOutputs: ["value", ...(opts?.additionalSecretOutputs ?? [])] },
    );
  }
}
