// The idempotent host bootstrap: Python check, packages, the service user and
// standard v2.0's directory tree. Runs as root; a second run changes nothing.
import { paths } from "../standard/paths";
import { and, argv, or, shell } from "./shell";

export interface BootstrapSpec {
  project: string;
  user: string;
  group: string;
  /** MAJOR.MINOR the venv needs, e.g. "3.13". */
  python: string;
  packages: string[];
  /**
   * Others may pass through /opt/ayna/{project} (0751: enter, never list),
   * for Caddy to reach the sockets of Docker mode. @default false (0750)
   */
  traversable?: boolean;
  /**
   * Others may pass through /opt/ayna/{project} and its releases/ (0751:
   * enter, never list), for Caddy to read the serving release's staticfiles/
   * (which the release tool makes readable by all: they are public). @default false
   */
  staticServed?: boolean;
  /**
   * A system user (and group of that name) for Caddy when it runs as a
   * container (Docker mode), made before any release so the socket
   * directory can be given its group. @default none
   */
  proxyUser?: string;
}

/** Packages every host gets; the config adds redis-server (and more) on top. */
export const basePackages = ["python3", "python3-venv", "ca-certificates", "curl", "tar", "gzip"];

export function pythonCheck(python: string): string {
  const bin = `python${python}`;
  // Says which Python the host does have, and the fix, before anything is installed.
  const explain =
    "printf '%s%s (%s)\\n%s\\n' " +
    argv(`this host has no ${bin}; it has: `) +
    ' "$(python3 --version 2>&1 || echo no python3)" "$(. /etc/os-release && echo "$PRETTY_NAME")" ' +
    argv(
      `Fix: set the stack config key python to a version the host has (3.12 or newer), or use Debian 13, which ships Python 3.13.`,
    ) +
    " >&2; exit 3";
  return or(argv("command", "-v", bin) + " >/dev/null", `{ ${explain}; }`);
}

export function installPackages(packages: string[]): string {
  const list = [...new Set(packages)].sort();
  // Only missing packages are installed; apt is not touched at all otherwise.
  return [
    "missing=",
    `for p in ${list.map((p) => argv(p)).join(" ")}; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; done`,
    'if [ -n "$missing" ]; then export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; fi',
  ].join("; ");
}

export function ensureUser(user: string, group: string, home: string): string {
  return and(
    or(argv("getent", "group", group) + " >/dev/null", argv("groupadd", "--system", group)),
    or(
      argv("id", "-u", user) + " >/dev/null 2>&1",
      argv(
        "useradd",
        "--system",
        "--gid",
        group,
        "--home-dir",
        home,
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        user,
      ),
    ),
  );
}

/** The tree of standard v2.0 "Directory Structure", with owners and modes. */
export function directories(s: BootstrapSpec): string {
  const root = paths.root(s.project);
  const rootOwned = [root, paths.releases(s.project), paths.venvs(s.project), paths.bin(s.project)];
  const appOwned = [
    paths.shared(s.project),
    `${paths.shared(s.project)}/media`,
    `${paths.shared(s.project)}/backups`,
    paths.logs(s.project),
  ];
  return and(
    argv("install", "-d", "-o", "root", "-g", "root", "-m", "0755", "/opt/ayna"),
    argv("install", "-d", "-o", "root", "-g", s.group, "-m", "0750", ...rootOwned),
    s.staticServed
      ? argv("chmod", "0751", root, paths.releases(s.project))
      : s.traversable
        ? argv("chmod", "0751", root)
        : "",
    argv("install", "-d", "-o", s.user, "-g", s.group, "-m", "0750", ...appOwned),
    // venv/ follows the current release to its environment (see PythonRuntime).
    argv("ln", "-sfn", "releases/current/.venv", paths.venv(s.project)),
  );
}

export function bootstrapScript(s: BootstrapSpec): string {
  return and(
    "set -eu",
    pythonCheck(s.python),
    installPackages([...basePackages, ...s.packages]),
    ensureUser(s.user, s.group, paths.root(s.project)),
    s.proxyUser !== undefined ? ensureUser(s.proxyUser, s.proxyUser, `/var/lib/${s.proxyUser}`) : "",
    directories(s),
  );
}

export function bootstrapCommand(s: BootstrapSpec): string {
  return shell(bootstrapScript(s), { sudo: true });
}
