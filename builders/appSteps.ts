// The one-shot steps of a release before its candidates start: migrations and
// the static files build, per framework or as the operator's own command.
import { ReleaseStep, releaseDirToken } from "./releaseTool";

/** The release environment's Python. */
export const releasePython = `${releaseDirToken}/.venv/bin/python`;

/** Django: `manage.py migrate`, skipped while no file under a migrations/ folder changed. */
export const djangoMigrate: ReleaseStep = {
  command: [releasePython, "manage.py", "migrate", "--noinput"],
  inputs: "*/migrations/*.py",
};

/**
 * Django: `manage.py collectstatic`. Its output depends on every file that is
 * not Python (templates and assets of the app and the environment) and on the
 * settings modules; a release changing only other Python files reuses the
 * serving release's static files.
 */
export const djangoCollectstatic: ReleaseStep = {
  command: [releasePython, "manage.py", "collectstatic", "--noinput"],
  inputs: "*settings*",
};

/** Alembic: `alembic upgrade head`, skipped while no revision under a versions/ folder changed. */
export const alembicUpgrade: ReleaseStep = {
  command: [`${releaseDirToken}/.venv/bin/alembic`, "upgrade", "head"],
  inputs: "*/versions/*.py",
};

/** The operator's own command, through sh in the release's directory; it runs for every new release. */
export function commandStep(command: string): ReleaseStep {
  return { command: ["/bin/sh", "-c", command] };
}
