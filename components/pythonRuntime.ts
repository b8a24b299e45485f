import { createHash } from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Archive, buildArchive } from "../local/archive";
import { buildEnvCommand, installUvCommand } from "../builders/python";
import { RemoteCommand } from "../sdk/remoteCommand";

/** uv release installed on hosts (from PyPI, pinned). */
export const defaultUvVersion = "0.13.9";

export interface PythonRuntimeArgs {
  readonly project: string;
  /** The service user; the environment is built as it (never as root). */
  readonly serviceUser: string;
  /** Its group. @default serviceUser */
  readonly serviceGroup?: string;
  /** pyproject.toml + uv.lock packed once per run (`lockfileArchive`). */
  readonly lockArchive: Archive;
  /** Python MAJOR.MINOR for the venv. @default "3.13" */
  readonly python?: string;
  /** @default defaultUvVersion */
  readonly uvVersion?: string;
}

/**
 * uv on the host and the project's Python environment, keyed by the hash of
 * its lockfile (and Python and uv versions): an unchanged lockfile installs
 * nothing, and an older release's environment stays on the host for rollback.
 */
export class PythonRuntime extends pulumi.ComponentResource {
  /** Key of the environment under /opt/ayna/{project}/venvs/. */
  public readonly envHash: string;
  public readonly lockArchive: Archive;
  public readonly environment: RemoteCommand;

  constructor(name: string, args: PythonRuntimeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:PythonRuntime", name, {}, opts);
    const python = args.python ?? "3.13";
    const uvVersion = args.uvVersion ?? defaultUvVersion;
    this.lockArchive = args.lockArchive;
    this.envHash = envKey(this.lockArchive.sha256, python, uvVersion);

    const uv = new RemoteCommand(
      `${name}-uv`,
      { create: installUvCommand(uvVersion), timeoutSeconds: 600 },
      { parent: this },
    );
    this.environment = new RemoteCommand(
      `${name}-env`,
      {
        create: buildEnvCommand({
          project: args.project,
          hash: this.envHash,
          python,
          uvVersion,
          archiveSha256: this.lockArchive.sha256,
          user: args.serviceUser,
          group: args.serviceGroup ?? args.serviceUser,
        }),
        stdinFile: this.lockArchive.path,
        triggers: [this.lockArchive.sha256],
        timeoutSeconds: 1800,
      },
      { parent: this, dependsOn: uv },
    );
    this.registerOutputs({ envHash: this.envHash });
  }
}

export function lockfileArchive(appDir: string): Archive {
  return buildArchive(path.resolve(appDir), { files: ["pyproject.toml", "uv.lock"] });
}

/** The environment's key: what decides its content. */
export function envKey(lockSha256: string, python: string, uvVersion: string): string {
  return createHash("sha256").update([lockSha256, python, uvVersion].join("\n")).digest("hex").slice(0, 24);
}
