import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Archive, buildArchive, gitShaOf } from "../local/archive";
import { argv } from "../builders/shell";
import { paths } from "../standard/paths";
import { ReleaseToolSpec, renderReleaseTool } from "../builders/releaseTool";
import { RemoteCommand } from "../sdk/remoteCommand";
import { RemoteFile } from "../sdk/remoteFile";

export interface ReleaseArgs {
  /** The host-side tool's settings (project, services, health gate, retention). */
  readonly tool: ReleaseToolSpec;
  /** The app source packed once per run (`appArchive`); its hash makes every code change a release. */
  readonly app: AppArchive;
  /** Key of the Python environment the release runs on (PythonRuntime.envHash). */
  readonly envHash: string;
  /** Who deploys, for the host's audit log and lock. @default user@hostname of this machine */
  readonly actor?: string;
  /**
   * Serve this existing release ("v2") instead of deploying the source: a
   * rollback by plain `pulumi up`. A release that is not on the host is refused.
   */
  readonly pin?: string;
}

export interface AppArchive {
  archive: Archive;
  /** The git commit of the app, or `content-<hash>` outside git. */
  sha: string;
}

/** Packs the app directory; built once per program run and shared by every host's Release. */
export function appArchive(appDir: string): AppArchive {
  const archive = buildArchive(path.resolve(appDir));
  return { archive, sha: gitShaOf(appDir) ?? `content-${archive.sha256.slice(0, 12)}` };
}

/** The tool's last line: `release=v3 previous=v2`. */
export function parseToolResult(stdout: string | undefined): { release: string; previous: string } {
  const last = (stdout ?? "").trim().split("\n").pop() ?? "";
  const m = /^release=(\S*) previous=(\S*)$/.exec(last);
  return { release: m?.[1] ?? "", previous: m?.[2] ?? "" };
}

/**
 * Runs the tool as a transient systemd unit: a client that disconnects (a
 * killed `pulumi up`, a dropped network) cannot stop a deploy half way.
 */
export function toolCommand(toolPath: string, args: string[]): string {
  return (
    argv("sudo", "-n", "systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec") +
    ' "--setenv=AYNA_ACTOR=$AYNA_ACTOR" ' +
    argv(toolPath, ...args)
  );
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
  /** The release that served before it: what `npm run rollback` goes back to. */
  public readonly previousRelease: pulumi.Output<string>;
  public readonly tool: RemoteFile;
  public readonly deploy: RemoteCommand;

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:Release", name, {}, opts);
    const project = args.tool.project;
    this.archive = args.app.archive;
    this.sha = args.app.sha;
    const toolPath = `${paths.bin(project)}/ayna-release`;

    this.tool = new RemoteFile(
      `${name}-tool`,
      {
        path: toolPath,
        content: renderReleaseTool(args.tool),
        mode: "0750",
        owner: "root",
        group: "root",
        sudo: true,
      },
      { parent: this },
    );
    const actor = args.actor ?? `${os.userInfo().username}@${os.hostname()}`;
    this.deploy = new RemoteCommand(
      `${name}-deploy`,
      args.pin
        ? {
            create: toolCommand(toolPath, ["rollback", "--to", args.pin]),
            environment: { AYNA_ACTOR: actor },
            triggers: [args.pin],
            captureStdout: true,
            timeoutSeconds: 900,
          }
        : {
            create: toolCommand(toolPath, [
              "deploy",
              "--sha",
              this.sha,
              "--checksum",
              this.archive.sha256,
              "--venv",
              args.envHash,
            ]),
            stdinFile: this.archive.path,
            environment: { AYNA_ACTOR: actor },
            triggers: [this.archive.sha256, args.envHash],
            captureStdout: true,
            timeoutSeconds: 1800,
          },
      { parent: this, dependsOn: this.tool },
    );
    const result = pulumi.unsecret(this.deploy.stdout).apply(parseToolResult);
    this.release = result.release;
    this.previousRelease = result.previous;
    this.registerOutputs({
      release: this.release,
      previousRelease: this.previousRelease,
      sha: this.sha,
      checksum: this.archive.sha256,
    });
  }
}
