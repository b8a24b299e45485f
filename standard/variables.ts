// Environment variables standard v2.0 names.

/** Variables standard v2.0 lists as required ("Required Variables"). */
export const requiredVariables = [
  "PROJECT_NAME",
  "DJANGO_SETTINGS_MODULE",
  "SECRET_KEY",
  "DATABASE_URL",
  "REDIS_URL",
  "WEB_PORT",
  "API_PORT",
] as const;

/** The standard version this program implements (written to `.template-version`). */
export const standardVersion = "2.0.0";

/**
 * The required variables a project needs for the roles it runs. Standard v2.0
 * lists all seven for a project that runs every role; a variable only one role
 * reads is required when that role runs: the web role is Django
 * (DJANGO_SETTINGS_MODULE, WEB_PORT), the api role listens on API_PORT, and
 * Celery's worker and beat talk to Redis (REDIS_URL).
 */
export function requiredVariablesFor(roles: readonly ("web" | "api" | "celery" | "beat")[]): string[] {
  const runs = (r: "web" | "api" | "celery" | "beat") => roles.includes(r);
  const byRole: Record<(typeof requiredVariables)[number], boolean> = {
    PROJECT_NAME: true,
    DJANGO_SETTINGS_MODULE: runs("web"),
    SECRET_KEY: true,
    DATABASE_URL: true,
    REDIS_URL: runs("celery") || runs("beat"),
    WEB_PORT: runs("web"),
    API_PORT: runs("api"),
  };
  return requiredVariables.filter((v) => byRole[v]);
}
