import * as pulumi from "@pulumi/pulumi";

export interface DeployPlanArgs {
  /** The project (unit names in the plan derive from it). */
  readonly project: pulumi.Input<string>;
  /** The host's name, as the plan's heading shows it. */
  readonly host: pulumi.Input<string>;
  /** The app's git commit, or `content-<hash>` outside git. */
  readonly sha: pulumi.Input<string>;
  /** The release serving after the deploy ("v3"): the Release's output. */
  readonly release: pulumi.Input<string>;
  /** The kept release served instead of the source (a rollback). @default none */
  readonly pin?: pulumi.Input<string>;
  /** Every file of the code archive: path -> hash. */
  readonly files: pulumi.Input<Record<string, string>>;
  /** The Python environment's key (lockfile hash). */
  readonly environment: pulumi.Input<string>;
  /** The env file's values; pass a secret Output (the plan names keys only). */
  readonly env: pulumi.Input<Record<string, string>>;
  /** The unit files: name -> content hash. */
  readonly units: pulumi.Input<Record<string, string>>;
  /** How each role picks up a release. */
  readonly services: pulumi.Input<{ role: string; reload: "handover" | "restart" }[]>;
  /** How migrations run: named from the tree (Django, Alembic), the operator's command, or none. @default "listed" */
  readonly migrations?: pulumi.Input<"listed" | "command" | "none">;
  /** Docker mode: the release is an image and containers. @default venv mode */
  readonly runtime?: pulumi.Input<"docker">;
}

/**
 * The deploy plan of one host (type `ayna:deploy:Plan`): a manifest of what the
 * last successful deploy shipped. The provider prints the plan from it to this
 * run's at preview and at up, and keeps the lines as the `lines` output.
 * Nothing runs on the host.
 */
export class DeployPlan extends pulumi.CustomResource {
  /** The plan of the update that last changed this host ([] when none changed it). */
  declare public readonly lines: pulumi.Output<string[]>;

  constructor(name: string, args: DeployPlanArgs, opts?: pulumi.CustomResourceOptions) {
    super("ayna:deploy:Plan", name, { ...args, lines: undefined }, opts);
  }
}
