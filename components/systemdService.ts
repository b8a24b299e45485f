import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { deactivateUnitCommand, enableUnitCommand, unitHealthyCommand } from "../builders/systemd";
import { UnitFile, unitFiles, UnitSpec, usesSocket } from "../builders/units";
import { RemoteCommand } from "../sdk/remoteCommand";

export interface SystemdServiceArgs {
  /** What the unit runs; rendered from standard v2.0's template for its role. */
  readonly unit: UnitSpec;
}

/**
 * One `{project}-{role}.service` (and, for web and api under gunicorn, its
 * `.socket`). The unit files are installed by the Release, inside its health
 * gate; this component keeps them enabled, shows in a preview when one of
 * them changes, lets refresh see a unit stopped or edited by hand, and
 * disables the unit when its role is turned off.
 */
export class SystemdService extends pulumi.ComponentResource {
  public readonly unitName: string;
  /** The files the Release installs for this role. */
  public readonly files: UnitFile[];
  public readonly activation: RemoteCommand;

  constructor(name: string, args: SystemdServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:SystemdService", name, {}, opts);
    const { project, role } = args.unit;
    this.unitName = `${project}-${role}.service`;
    this.files = unitFiles(args.unit);
    const socket = usesSocket(args.unit);
    this.activation = new RemoteCommand(
      `${name}-activate`,
      {
        create: enableUnitCommand(project, role, socket),
        delete: deactivateUnitCommand(project, role, socket),
        // Named by file, so a preview shows which unit changed.
        triggers: this.files.map((f) => ({ [f.name]: createHash("sha256").update(f.content).digest("hex") })),
        // Refresh sees a unit stopped by hand, or edited without a daemon-reload.
        check: unitHealthyCommand(project, role),
        timeoutSeconds: 120,
      },
      { parent: this },
    );
    this.registerOutputs({ unitName: this.unitName });
  }
}
