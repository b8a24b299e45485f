import * as pulumi from "@pulumi/pulumi";

export interface RemoteCommandArgs {
  /** Shell command run on create (and on update when `update` is unset). */
  readonly create: pulumi.Input<string>;
  /** Shell command run when `create`, `update`, `stdin` or `triggers` change. @default create */
  readonly update?: pulumi.Input<string>;
  /** Shell command run on delete. @default nothing runs */
  readonly delete?: pulumi.Input<string>;
  /** Text sent on stdin: the only way secrets reach a command. */
  readonly stdin?: pulumi.Input<string>;
  /** A local file streamed on stdin (e.g. a release archive); put its hash in `triggers`. */
  readonly stdinFile?: pulumi.Input<string>;
  /** Variables for the command, sent on stdin (never on the command line); changing only these does not re-run it. */
  readonly environment?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Values whose change re-runs the command (content hashes, never timestamps). */
  readonly triggers?: pulumi.Input<pulumi.Input<unknown>[]>;
  /** @default 600 */
  readonly timeoutSeconds?: pulumi.Input<number>;
  /** Keep stdout (with secrets scrubbed) as an output. @default false */
  readonly captureStdout?: pulumi.Input<boolean>;
  /**
   * Show what a successful run wrote to stderr (secrets scrubbed, its last
   * 200 lines) on the resource in `pulumi up`'s output; a failed run always
   * shows its output in the error. Changing it alone runs nothing.
   * @default false
   */
  readonly logStderr?: pulumi.Input<boolean>;
  /**
   * Secret values that reach the host only inside another input (an env file
   * sent base64-encoded), scrubbed from the command's output and errors like
   * the secrets among its inputs. Must be secret. Changing it alone runs nothing.
   * @default none
   */
  readonly redact?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Run by `pulumi refresh` to see whether what the command set up still
   * holds; a non-zero exit marks it drifted, and the next `up` runs it again.
   * @default no check
   */
  readonly check?: pulumi.Input<string>;
}

/** A command run over SSH on the host of its provider (type `ayna:remote:Command`). */
export class RemoteCommand extends pulumi.CustomResource {
  /** Present only with `captureStdout`. */
  declare public readonly stdout: pulumi.Output<string | undefined>;

  constructor(name: string, args: RemoteCommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      "ayna:remote:Command",
      name,
      { ...args, stdout: undefined },
      { ...opts, additionalSecretOutputs: ["stdout", ...(opts?.additionalSecretOutputs ?? [])] },
    );
  }
}
