// systemctl steps for one unit: reload the manager only when the unit file
// changed, enable it, and (re)start it once a release exists to run.
import { paths } from "../standard/paths";
import { and, argv, shell } from "./shell";

export function activateUnitCommand(project: string, role: string): string {
  const unit = `${project}-${role}.service`;
  return shell(
    and(
      "set -eu",
      `if [ "$(systemctl show -P NeedDaemonReload ${argv(unit)})" = yes ]; then systemctl daemon-reload; fi`,
      argv("systemctl", "enable", "--quiet", unit),
      // Before the first release there is nothing to run; the release starts it.
      `if [ -e ${argv(paths.current(project))} ]; then ${argv("systemctl", "restart", unit)}; fi`,
    ),
    { sudo: true },
  );
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

export function deactivateUnitCommand(project: string, role: string): string {
  const unit = `${project}-${role}.service`;
  return shell(
    and(argv("systemctl", "disable", "--now", "--quiet", unit) + " 2>/dev/null || true", "systemctl daemon-reload"),
    { sudo: true },
  );
}
