import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Archive, buildArchive, gitShaOf } from "../local/archive";
import { createHash } from "node:crypto";
import { paths } from "../standard/paths";
import {
  bundleVariables,
  encodeUnits,
  ReleaseToolSpec,
  releaseTimeouts,
  renderReleaseTool,
  toolCommand,
  verifyCommand,
} from "../builders/releaseTool";
import { UnitFile } from "../builders/units";
import { uvicornWorker, uvicornWorkerSource } from "../builders/uvicornWorker";
import { DeployPlan } from "../sdk/deployPlan";
import { RemoteCommand } from "../sdk/remoteCommand";
import { RemoteFile } from "../sdk/remoteFile";

export interface ReleaseArgs {
  /** The host-side tool's settings (project, services, health gate, retention). */
  readonly tool: ReleaseToolSpec;
  /** The app source packed once per run (`appArchive`); its hash makes every code change a release. */
  readonly app: AppArchive;
  /** Key of the Python environment the release runs on (PythonRuntime.envHash). */
  readonly envHash: string;
  /**
   * The env file's content (a secret). It is installed by the release itself,
   * inside the lock and the health gate: candidates run with it first, and a
   * failure puts the previous file back.
   */
  readonly envContent: pulumi.Input<string>;
  /**
   * The env file's values by name (a secret), for the deploy plan, which names
   * the keys added, changed or removed. @default the plan shows no env keys
   */
  readonly envValues?: pulumi.Input<Record<string, string>>;
  /**
   * Secret values of the env file, scrubbed from what the host's tool prints
   * (its errors, its account of the release): the env file itself reaches the
   * host base64-encoded, where no scrub would find them.
   * @default none
   */
  readonly secretValues?: pulumi.Input<string[]>;
  /** The project's unit files, installed the same way (a changed unit is a gated restart). */
  readonly units: readonly UnitFile[];
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

export { toolCommand };

function sha256(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}

/**
 * A release per standard v2.0's deploy steps 1-9, run on the host by
 * `ayna-release`: new releases/vN with the code archive (checksum verified)
 * and its environment, migrations and collectstatic before the switch, an
 * atomic `current` switch, reload, a health gate that waits for the new
 * release to be the one serving, and automatic rollback when it is not.
 * The env file and unit files travel with every release: a change to either
 * alone is a release of the serving code, gated and rolled back the same way.
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
  public readonly uvicornWorker: RemoteFile;
  public readonly deploy: RemoteCommand;
  /** What the last update did to this host, in an operator's words (kept in state, printed at preview). */
  public readonly plan: DeployPlan;

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
    // The api's gunicorn worker class: readable by the service user, written before any release uses it.
    this.uvicornWorker = new RemoteFile(
      `${name}-uvicorn-worker`,
      {
        path: uvicornWorker.path(project),
        content: uvicornWorkerSource,
        mode: "0644",
        owner: "root",
        group: "root",
        sudo: true,
      },
      { parent: this },
    );
    const actor = args.actor ?? `${os.userInfo().username}@${os.hostname()}`;
    const envContent = pulumi.secret(pulumi.output(args.envContent));
    const unitsLine = encodeUnits(args.units);
    const environment = {
      AYNA_ACTOR: actor,
      [bundleVariables.env]: envContent.apply((c) => Buffer.from(c, "utf8").toString("base64")),
      [bundleVariables.units]: unitsLine,
    };
    const timeouts = releaseTimeouts(args.tool);
    // Named so a preview says which of them changed on each host.
    const bundleTriggers = [{ env: envContent.apply(sha256) }, { units: sha256(unitsLine) }];
    // What a deploy and a rollback by pin have in common.
    const shared = {
      environment,
      captureStdout: true,
      // The tool's account of the release (candidates, handovers, health, warnings) in `pulumi up`.
      logStderr: true,
      redact: pulumi.secret(pulumi.output(args.secretValues ?? [])),
      check: verifyCommand(toolPath),
    };
    this.deploy = new RemoteCommand(
      `${name}-deploy`,
      args.pin
        ? {
            ...shared,
            create: toolCommand(toolPath, ["rollback", "--to", args.pin], { bundle: true }),
            triggers: [{ pin: args.pin }, ...bundleTriggers],
            timeoutSeconds: timeouts.rollback,
          }
        : {
            ...shared,
            create: toolCommand(
              toolPath,
              ["deploy", "--sha", this.sha, "--checksum", this.archive.sha256, "--venv", args.envHash],
              { bundle: true },
            ),
            stdinFile: this.archive.path,
            triggers: [{ code: this.archive.sha256 }, { dependencies: args.envHash }, ...bundleTriggers],
            timeoutSeconds: timeouts.deploy,
          },
      { parent: this, dependsOn: [this.tool, this.uvicornWorker] },
    );
    const result = pulumi.unsecret(this.deploy.stdout).apply(parseToolResult);
    this.release = result.release;
    this.previousRelease = result.previous;
    // Registered once the deploy is through: a failed deploy leaves the last
    // good manifest in state, so the next plan is still told from what serves.
    this.plan = new DeployPlan(
      `${name}-plan`,
      {
        project,
        host: name,
        sha: this.sha,
        release: this.release,
        pin: args.pin,
        files: this.archive.files,
        environment: args.envHash,
        env: pulumi.secret(pulumi.output(args.envValues ?? {})),
        units: Object.fromEntries(args.units.map((u) => [u.name, sha256(u.content)])),
        services: args.tool.services.map((s) => ({ role: s.role, reload: s.reload })),
        ...(args.tool.docker ? { runtime: "docker" as const } : {}),
        // Left out for the default, so stacks deployed before the setting existed see no change.
        ...(!args.tool.migrate
          ? { migrations: "none" as const }
          : args.tool.migrate.inputs
            ? {}
            : { migrations: "command" as const }),
      },
      { parent: this, dependsOn: [this.deploy] },
    );
    this.registerOutputs({
      plan: this.plan.lines,
      release: this.release,
      previousRelease: this.previousRelease,
      sha: this.sha,
      checksum: this.archive.sha256,
    });
  }
}
