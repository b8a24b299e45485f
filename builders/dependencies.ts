// Where an app lists its dependencies and the lock its hosts build from: the
// types shared by the app folder's checks (stacks/app.ts) and the lock made on
// the deploying machine (local/lock.ts).

/** Where the app's dependencies are listed, as found in its folder. */
export type DependencySource =
  /** pyproject.toml and uv.lock of its own: used as they are. */
  | { kind: "uv.lock"; appDir: string }
  /** pyproject.toml without a lock: locked here. */
  | { kind: "pyproject"; appDir: string }
  /** Requirements files only (`file` relative to appDir): a pyproject is made for them and locked here. */
  | { kind: "requirements"; appDir: string; file: string }
  /** A member of the uv workspace at `root`: its part of the workspace's lock, locked on its own here. */
  | { kind: "workspace"; appDir: string; root: string; member: string };

export interface AppLock {
  /** Folder holding the pyproject.toml and uv.lock the hosts build from. */
  dir: string;
  /** Made on this machine (false: the app's own, used as is). */
  made: boolean;
  /** What it was made from, for messages ("requirements/production.txt"). */
  from: string;
  /** Made by this run (false: the app's own, or kept from an earlier run). */
  fresh?: boolean;
}

/** The lock as messages name it: the app's own uv.lock, or "the lock made from" its source. */
export function describeLock(lock: AppLock): string {
  return lock.made ? `the lock made from ${lock.from}` : lock.from;
}

/** A failed lock: `key` is the config key an operator fixes, `message` what happened and how. */
export class LockError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

/** Where a lock comes from, for messages. */
export function describeSource(src: DependencySource): string {
  switch (src.kind) {
    case "uv.lock":
      return `${src.appDir}/uv.lock`;
    case "pyproject":
      return `${src.appDir}/pyproject.toml`;
    case "requirements":
      return `${src.appDir}/${src.file}`;
    case "workspace":
      return `the uv workspace lock ${src.root}/uv.lock (member ${src.member})`;
  }
}
