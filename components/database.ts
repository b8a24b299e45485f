import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import {
  backupTimerCheckCommand,
  backupUnitNames,
  databaseCheckCommand,
  databaseToolPath,
  DatabaseSpec,
  disableBackupTimerCommand,
  enableBackupTimerCommand,
  ensureDatabaseCommand,
  localDatabaseUrl,
  renderBackupService,
  renderBackupTimer,
  renderDatabaseTool,
} from "../builders/postgres";
import { RemoteCommand } from "../sdk/remoteCommand";
import { RemoteFile } from "../sdk/remoteFile";

export interface PostgresDatabaseArgs {
  readonly project: string;
  /** Database and role name. */
  readonly name: string;
  /** The role's password (a secret; it reaches the host on stdin only). */
  readonly password: pulumi.Input<string>;
  /** Owner of the dumps (the service user) and its group. */
  readonly serviceUser: string;
  readonly serviceGroup: string;
  /**
   * Days a dump is kept; a systemd timer dumps the database daily. 0: no
   * timer (`make backup` still works).
   * @default 14
   */
  readonly backupRetentionDays?: number;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/**
 * The project's database on the host's PostgreSQL (the host's bootstrap
 * installs the package): its role and database, made when missing, and the
 * backup tool with its daily timer. Destroying the stack leaves the database
 * and its dumps on the host: data is never dropped by a deploy tool.
 */
export class PostgresDatabase extends pulumi.ComponentResource {
  /** postgresql://NAME:PASSWORD@127.0.0.1:5432/NAME (secret). */
  public readonly url: pulumi.Output<string>;
  public readonly ensure: RemoteCommand;
  public readonly tool: RemoteFile;

  constructor(name: string, args: PostgresDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ayna:components:PostgresDatabase", name, {}, opts);
    const spec: DatabaseSpec = {
      project: args.project,
      name: args.name,
      user: args.serviceUser,
      group: args.serviceGroup,
      retentionDays: args.backupRetentionDays ?? 14,
    };
    const child = { parent: this };
    this.ensure = new RemoteCommand(
      `${name}-database`,
      {
        create: ensureDatabaseCommand(spec),
        stdin: pulumi.secret(args.password),
        check: databaseCheckCommand(spec),
        timeoutSeconds: 300,
      },
      child,
    );
    this.url = pulumi.secret(pulumi.output(args.password).apply((pw) => localDatabaseUrl(args.name, pw)));

    const file = (role: string, path: string, content: string, mode: string) =>
      new RemoteFile(`${name}-${role}`, { path, content, mode, owner: "root", group: "root", sudo: true }, child);
    this.tool = file("backup-tool", databaseToolPath(args.project), renderDatabaseTool(spec), "0755");
    if (spec.retentionDays > 0) {
      const units = backupUnitNames(args.project);
      const service = renderBackupService(spec);
      const timer = renderBackupTimer(spec);
      const files = [
        file("backup-service", `/etc/systemd/system/${units.service}`, service, "0644"),
        file("backup-timer", `/etc/systemd/system/${units.timer}`, timer, "0644"),
      ];
      new RemoteCommand(
        `${name}-backup-schedule`,
        {
          create: enableBackupTimerCommand(args.project),
          delete: disableBackupTimerCommand(args.project),
          triggers: [sha256(service), sha256(timer)],
          check: backupTimerCheckCommand(args.project),
          timeoutSeconds: 120,
        },
        { ...child, dependsOn: [...files, this.tool, this.ensure] },
      );
    }
    this.registerOutputs({ url: this.url });
  }
}
