import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import {
  configureEngineCommand,
  daemonConfigPath,
  ensureBaseImageCommand,
  renderDaemonConfig,
} from "../builders/docker";
import { argv, shell } from "../builders/shell";
import { fileDigest } from "../local/archive";
import { RemoteCommand } from "../sdk/remoteCommand";

export interface DockerEngineArgs {
  /** json-file log rotation: the size of one file. @default "10m" */
  readonly logMaxSize?: string;
  /** json-file log rotation: files kept per container. @default 3 */
  readonly logMaxFiles?: number;
  /** The image release images are built FROM; it must be on the host, or come from `baseImageFile`. */
  readonly baseImage: string;
  /**
   * A root file system tarball on the deploying machine, imported as
   * `baseImage` on a host that lacks it (no registry is assumed).
   * @default none: the image must be on the host already
   */
  readonly baseImageFile?: string;
}

/**
 * Docker mode's engine on one host (Debian's docker.io, installed by the
 * host's bootstrap): daemon.json with json-file logs, rotation and
 * live-restore, restarted only when it changes, and the base image the
 * release images are built from.
 */
export class DockerEngine extends pulumi.ComponentResource {
  public readonly daemon: RemoteCommand;
  public readonly baseImage: RemoteCommand;

  constructor(name: string, args: DockerEngineArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:DockerEngine", name, {}, opts);
    const config = renderDaemonConfig({ logMaxSize: args.logMaxSize ?? "10m", logMaxFiles: args.logMaxFiles ?? 3 });
    const configHash = createHash("sha256").update(config).digest("hex");
    this.daemon = new RemoteCommand(
      `${name}-daemon`,
      {
        create: configureEngineCommand(),
        stdin: config,
        triggers: [configHash],
        // Refresh: daemon.json edited by hand, or the engine stopped.
        check: shell(
          `[ "$(sha256sum < ${argv(daemonConfigPath)} | cut -d' ' -f1)" = ${argv(configHash)} ] && systemctl is-active --quiet docker.service`,
          { sudo: true },
        ),
        timeoutSeconds: 180,
      },
      { parent: this },
    );
    if (args.baseImageFile !== undefined && !fs.existsSync(args.baseImageFile)) {
      throw new Error(`docker.baseImageFile: ${args.baseImageFile} does not exist on this machine; fix the path`);
    }
    this.baseImage = new RemoteCommand(
      `${name}-base-image`,
      {
        create: ensureBaseImageCommand(args.baseImage, args.baseImageFile !== undefined),
        ...(args.baseImageFile !== undefined ? { stdinFile: args.baseImageFile } : {}),
        triggers: [args.baseImage, ...(args.baseImageFile !== undefined ? [fileDigest(args.baseImageFile)] : [])],
        check: shell(argv("docker", "image", "inspect", "--format", "{{.Id}}", args.baseImage) + " >/dev/null", {
          sudo: true,
        }),
        timeoutSeconds: 600,
      },
      { parent: this, dependsOn: this.daemon },
    );
    this.registerOutputs({});
  }
}
