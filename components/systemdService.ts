import * as pulumi from "@pulumi/pulumi";
import { activateUnitCommand, deactivateUnitCommand, unitHealthyCommand } from "../builders/systemd";
import { paths } from "../standard/paths";
import { renderUnit, UnitSpec } from "../builders/units";
import { RemoteCommand } from "../sdk/remoteCommand";
import { RemoteFile } from "../sdk/remoteFile";

export interface SystemdServiceArgs {
  /** What the unit runs; rendered from standard v2.0's template for its role. */
  readonly unit: UnitSpec;
  /** Hash of the env file the unit reads: a change restarts the service. */
  readonly envFileSha256: pulumi.Input<string>;
}

/**
 * One `{project}-{role}.service`: the unit file (root, 0644, atomic), then
 * daemon-reload (only when the file changed), enable, and restart whenever the
 * unit or its env file changes.
 */
export class SystemdService extends pulumi.ComponentResource {
  public readonly unitName: string;
  public readonly unitFile: RemoteFile;
  public readonly activation: RemoteCommand;

  constructor(name: string, args: SystemdServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:SystemdService", name, {}, opts);
    const { project, role } = args.unit;
    this.unitName = `${project}-${role}.service`;
    this.unitFile = new RemoteFile(
      `${name}-unit`,
      {
        path: paths.unit(project, role),
        content: renderUnit(args.unit),
        mode: "0644",
        owner: "root",
        group: "root",
        sudo: true,
      },
      { parent: this },
    );
    this.activation = new RemoteCommand(
      `${name}-activate`,
      {
        create: activateUnitCommand(project, role),
        delete: deactivateUnitCommand(project, role),
        // A unit file written again after drift (same content) still needs a reload and restart.
        triggers: [this.unitFile.sha256, this.unitFile.writes, args.envFileSha256],
        // Refresh sees a unit stopped by hand, or edited without a daemon-reload.
        check: unitHealthyCommand(project, role),
        timeoutSeconds: 300,
      },
      { parent: this },
    );
    this.registerOutputs({ unitName: this.unitName });
  }
}
