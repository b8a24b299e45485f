// systemctl steps for one role's units outside a release: enable, the refresh
// check, and turning a role off.
import { paths } from "../standard/paths";
import { and, argv, shell } from "./shell";

/** Keeps the role's units enabled at boot; the Release installs, reloads and starts them. */
export function enableUnitCommand(project: string, role: string, socket: boolean): string {
  const units = [`${project}-${role}.service`, ...(socket ? [`${project}-${role}.socket`] : [])];
  return shell(argv("systemctl", "enable", "--quiet", ...units), { sudo: true });
}

/**
 * For `pulumi refresh`: fails when the unit is not what activation left, i.e.
 * systemd still runs an older unit file, or (once a release exists) the
 * service is not running.
 */
export function unitHealthyCommand(project: string, role: string): string {
  const unit = `${project}-${role}.service`;
  return shell(
    and(
      `test "$(systemctl show -P NeedDaemonReload ${argv(unit)})" != yes`,
      `{ [ ! -e ${argv(paths.current(project))} ] || ${argv("systemctl", "is-active", "--quiet", unit)}; }`,
    ),
    { sudo: true },
  );
}

/** A role turned off: its units stopped and disabled (the Release removes their files). */
export function deactivateUnitCommand(project: string, role: string, socket: boolean): string {
  const units = [`${project}-${role}.service`, ...(socket ? [`${project}-${role}.socket`] : [])];
  return shell(
    and(argv("systemctl", "disable", "--now", "--quiet", ...units) + " 2>/dev/null || true", "systemctl daemon-reload"),
    { sudo: true },
  );
}
