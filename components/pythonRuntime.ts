import { createHash } from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Archive, buildArchive } from "../local/archive";
import { buildEnvCommand, installUvCommand, installUvOfflineCommand } from "../builders/python";
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
  /**
   * For hosts without PyPI: the lock's wheels (`wheelhouseArchive`) and uv's
   * own wheel (`uvWheelArchive`), uploaded and installed with no index.
   * @default undefined (uv and the packages come from PyPI)
   */
  readonly offline?: { readonly wheels: Archive; readonly uvWheel: Archive };
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
    const offline = args.offline;
    // The same lock built offline is another environment (made by another installer).
    this.envHash = envKey(this.lockArchive.sha256, python, offline ? `${uvVersion} offline` : uvVersion);
    // What the environment is built from: the lock alone, or the lock with its wheels.
    const envInput = offline ? offline.wheels : this.lockArchive;

    const uv = new RemoteCommand(
      `${name}-uv`,
      offline
        ? {
            create: installUvOfflineCommand(uvVersion, offline.uvWheel.sha256),
            stdinFile: offline.uvWheel.path,
            timeoutSeconds: 600,
          }
        : { create: installUvCommand(uvVersion), timeoutSeconds: 600 },
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
          archiveSha256: envInput.sha256,
          offline: offline !== undefined,
          user: args.serviceUser,
          group: args.serviceGroup ?? args.serviceUser,
        }),
        stdinFile: envInput.path,
        triggers: [envInput.sha256],
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

/** The lock with its exported requirements and wheels (`gatherWheels`'s folder), for an offline build. */
export function wheelhouseArchive(dir: string): Archive {
  return buildArchive(path.resolve(dir), { files: ["pyproject.toml", "uv.lock", "requirements.txt", "wheels"] });
}

/** uv's wheel alone (`uv/` of `gatherWheels`'s folder). */
export function uvWheelArchive(dir: string): Archive {
  return buildArchive(path.resolve(dir), { files: ["uv"] });
}

/** The environment's key: what decides its content. */
export function envKey(lockSha256: string, python: string, uvVersion: string): string {
  return createHash("sha256").update([lockSha256, python, uvVersion].join("\n")).digest("hex").slice(0, 24);
}
