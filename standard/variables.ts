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
