// Where standard v2.0 puts things on a host. One function per path so every
// renderer and builder agrees.

export function projectRoot(project: string): string {
  return `/opt/ayna/${project}`;
}

export const paths = {
  root: projectRoot,
  releases: (p: string) => `${projectRoot(p)}/releases`,
  current: (p: string) => `${projectRoot(p)}/releases/current`,
  shared: (p: string) => `${projectRoot(p)}/shared`,
  envFile: (p: string, stage: string) => `${projectRoot(p)}/shared/.env.${stage}`,
  venv: (p: string) => `${projectRoot(p)}/venv`,
  venvs: (p: string) => `${projectRoot(p)}/venvs`,
  logs: (p: string) => `${projectRoot(p)}/logs`,
  bin: (p: string) => `${projectRoot(p)}/bin`,
  unit: (p: string, role: string) => `/etc/systemd/system/${p}-${role}.service`,
  socketUnit: (p: string, role: string) => `/etc/systemd/system/${p}-${role}.socket`,
  handoverUnit: (p: string, role: string) => `/etc/systemd/system/${p}-${role}-handover.service`,
  stateDir: (p: string) => `/var/lib/${p}`,
};
