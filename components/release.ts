import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Archive, buildArchive, gitShaOf } from "./archive";
import { argv } from "./commands/shell";
import { paths } from "./render/paths";
import { ReleaseToolSpec, renderReleaseTool } from "./render/releaseTool";
import { Connection } from "./resources/connection";
import { RemoteCommand } from "./resources/remoteCommand";
import { RemoteFile } from "./resources/remoteFile";

export interface ReleaseArgs {
  readonly connection: Connection;
  /** The host-side tool's settings (project, services, health gate, retention). */
  readonly tool: ReleaseToolSpec;
  /** Directory of the app source; its content hash makes every code change a release. */
  readonly appDir: string;
  /** Key of the Python environment the release runs on (PythonRuntime.envHash). */
  readonly envHash: string;
  /** Who deploys, for the host's audit log and lock. @default user@hostname of this machine */
  readonly actor?: string;
}

/**
 * A release per standard v2.0's deploy steps 1-9, run on the host by
 * `ayna-release`: new releases/vN with the code archive (checksum verified)
 * and its environment, migrations and collectstatic before the switch, an
 * atomic `current` switch, reload, a health gate that waits for the new
 * release to be the one serving, and automatic rollback when it is not.
 */
export class Release extends pulumi.ComponentResource {
  public readonly archive: Archive;
  /** The git commit of the app, or `content-<hash>` outside git. */
  public readonly sha: string;
  /** The release now serving on the host ("v3"). */
  public readonly release: pulumi.Output<string>;
  public readonly tool: RemoteFile;
  public readonly deploy: RemoteCommand;

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:Release", name, {}, opts);
    const project = args.tool.project;
    this.archive = buildArchive(path.resolve(args.appDir));
    this.sha = gitShaOf(args.appDir) ?? `content-${this.archive.sha256.slice(0, 12)}`;
    const toolPath = `${paths.bin(project)}/ayna-release`;

    this.tool = new RemoteFile(
      `${name}-tool`,
      {
        connection: args.connection,
        path: toolPath,
        content: renderReleaseTool(args.tool),
        mode: "0750",
        owner: "root",
        group: "root",
        sudo: true,
      },
      { parent: this },
    );
    this.deploy = new RemoteCommand(
      `${name}-deploy`,
      {
        connection: args.connection,
        create:
          argv("sudo", "-n", "env") +
          ' "AYNA_ACTOR=$AYNA_ACTOR" ' +
          argv(toolPath, "deploy", "--sha", this.sha, "--checksum", this.archive.sha256, "--venv", args.envHash),
        stdinFile: this.archive.path,
        environment: { AYNA_ACTOR: args.actor ?? `${os.userInfo().username}@${os.hostname()}` },
        triggers: [this.archive.sha256, args.envHash],
        captureStdout: true,
        timeoutSeconds: 1800,
      },
      { parent: this, dependsOn: this.tool },
    );
    // The tool prints the release that serves as its last line.
    this.release = pulumi.unsecret(this.deploy.stdout).apply((out) => (out ?? "").trim().split("\n").pop() ?? "");
    this.registerOutputs({ release: this.release, sha: this.sha, checksum: this.archive.sha256 });
  }
}
