// The stack configuration, described once: this table both documents every key
// (see `npm run config-docs`) and is what unknown or malformed keys are
// rejected against.
import { databaseNamePattern } from "../builders/postgres";

export type Field =
  | {
      kind: "string";
      doc: string;
      required?: boolean;
      default?: string;
      pattern?: RegExp;
      patternHint?: string;
      secret?: boolean;
    }
  | { kind: "int"; doc: string; required?: boolean; default?: number; min?: number; max?: number }
  | { kind: "bool"; doc: string; required?: boolean; default?: boolean }
  | { kind: "enum"; doc: string; required?: boolean; default?: string; values: readonly string[] }
  | { kind: "object"; doc: string; required?: boolean; fields: Record<string, Field> }
  | { kind: "array"; doc: string; required?: boolean; items: Field; minItems?: number; default?: unknown[] }
  | {
      kind: "map";
      doc: string;
      required?: boolean;
      values: Field;
      keyPattern: RegExp;
      keyHint: string;
      secret?: boolean;
    };

export const projectNamePattern = /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/;

export const hostFields: Record<string, Field> = {
  name: {
    kind: "string",
    doc: "Short name of the host, used in resource names and messages.",
    required: true,
    pattern: /^[a-z][a-z0-9-]{0,30}$/,
    patternHint: "lower-case letters, digits and dashes, starting with a letter",
  },
  address: {
    kind: "string",
    doc: "IP address or DNS name that SSH connects to.",
    required: true,
    pattern: /^[A-Za-z0-9.:-]+$/,
    patternHint: "an IP address or a DNS name",
  },
  port: { kind: "int", doc: "SSH port.", default: 22, min: 1, max: 65535 },
  user: {
    kind: "string",
    doc: "User that SSH logs in as; needs passwordless sudo unless it is root.",
    default: "deploy",
    pattern: /^[a-z_][a-z0-9_-]{0,31}$/,
    patternHint: "a POSIX user name",
  },
  hostKey: {
    kind: "string",
    doc: 'The host\'s SSH public key, pinned ("ssh-ed25519 AAAA..."; get it with `ssh-keyscan -t ed25519 HOST`).',
    pattern:
      /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+=*( .*)?$/,
    patternHint: 'a public key line such as "ssh-ed25519 AAAA..."',
  },
  insecureIgnoreHostKey: {
    kind: "bool",
    doc: "Skip host key verification. Never for production; prefer pinning hostKey.",
    default: false,
  },
};

const envKey = { keyPattern: /^[A-Z_][A-Z0-9_]*$/, keyHint: "an environment variable name (A-Z, 0-9, _)" };

function serviceFields(role: "web" | "api", module: string, workers: number): Record<string, Field> {
  return {
    enabled: { kind: "bool", doc: `Run the ${role} service.`, default: true },
    port: {
      kind: "int",
      doc: `Port; defaults to the registry's (+${role === "web" ? 0 : 1}). Must lie in the project's range.`,
      min: 1,
      max: 65535,
    },
    bind: { kind: "string", doc: "Bind address; only 127.0.0.1 is allowed (standard v2.0).", default: "127.0.0.1" },
    workers: { kind: "int", doc: "Worker processes.", default: workers, min: 1, max: 64 },
    module: {
      kind: "string",
      doc: "The app to serve.",
      default: module,
      pattern: /^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$/,
      patternHint: "module.path:attribute",
    },
    healthPath: {
      kind: "string",
      doc: `Health endpoint of ${role}; defaults to release.healthPath.`,
      pattern: /^\/[A-Za-z0-9._~/-]*$/,
      patternHint: "an absolute URL path",
    },
    ...(role === "web"
      ? { timeoutSeconds: { kind: "int", doc: "gunicorn --timeout.", default: 120, min: 1, max: 3600 } as Field }
      : {}),
    ...(role === "api"
      ? {
          server: {
            kind: "enum",
            doc: "gunicorn: uvicorn workers under gunicorn, on a socket systemd holds, handed over to each new release without a dropped request; uvicorn: the standard's literal command (restarted on each release, with a gap).",
            values: ["gunicorn", "uvicorn"],
            default: "gunicorn",
          } as Field,
        }
      : {}),
  };
}

function workerFields(role: "celery" | "beat"): Record<string, Field> {
  return {
    enabled: { kind: "bool", doc: `Run the ${role} service.`, default: true },
    app: {
      kind: "string",
      doc: "The Celery app (-A).",
      default: "config",
      pattern: /^[A-Za-z_][A-Za-z0-9_.]*$/,
      patternHint: "a Python module path",
    },
    ...(role === "celery"
      ? { concurrency: { kind: "int", doc: "--concurrency.", default: 4, min: 1, max: 256 } as Field }
      : {}),
  };
}

export const schema: Record<string, Field> = {
  project: {
    kind: "string",
    doc: "Project name: the /opt/ayna/{project} directory and the {project}-<role> unit names.",
    required: true,
    pattern: projectNamePattern,
    patternHint: "3-40 lower-case letters, digits and dashes, starting with a letter (no spaces or shell characters)",
  },
  stage: {
    kind: "enum",
    doc: "Deployment stage; selects shared/.env.{stage}. Defaults to the stack name.",
    values: ["dev", "staging", "production"],
  },
  hosts: {
    kind: "array",
    doc: "Hosts to deploy to.",
    required: true,
    minItems: 1,
    items: { kind: "object", doc: "One host.", fields: hostFields },
  },
  serviceUser: {
    kind: "string",
    doc: "Non-root user (and group) the services run as. Defaults to the project name.",
    pattern: /^[a-z_][a-z0-9_-]{0,31}$/,
    patternHint: "a POSIX user name",
  },
  python: {
    kind: "string",
    doc: "Python version of the venv; the host must have it (Debian 13 has 3.13). Standard v2.0 asks for 3.12 or newer.",
    default: "3.13",
    pattern: /^3\.(1[2-9]|[2-9][0-9])$/,
    patternHint: "3.12 or newer, as MAJOR.MINOR",
  },
  runtime: {
    kind: "enum",
    doc: "How the services run on the hosts: `venv` (standard v2.0: a uv venv per lockfile, systemd units, symlinked releases) or `docker` (the Docker standard: one image per release tagged `sha-<SHA>`, hardened containers `{project}-<role>`, blue-green behind Caddy; needs proxy.enabled).",
    values: ["venv", "docker"],
    default: "venv",
  },
  docker: {
    kind: "object",
    doc: "Docker mode (runtime: docker): Debian's docker.io on each host, json-file logs with rotation, and the limits every container gets.",
    fields: {
      baseImage: {
        kind: "string",
        doc: "The image the app's image is built FROM: a Debian with the same Python as `python` (no registry is assumed: it must be on the host, or given as baseImageFile).",
        pattern: /^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[a-f0-9]{64})?$/,
        patternHint: "an image reference such as debian-python:trixie",
      },
      baseImageFile: {
        kind: "string",
        doc: "A root file system tarball on the deploying machine (.tar or .tar.gz), imported on a host as baseImage when the host lacks it.",
      },
      dockerfile: {
        kind: "string",
        doc: "The app's own Dockerfile, a path inside app.path (`none`: ignore the one there). Each release first builds it (context: the release's files) and builds its image FROM the result, with the release's environment and code on top at the paths the role commands use; so it must build FROM an image on the host with the same Python at /usr/bin as `python` (docker.baseImage is one). Default: `Dockerfile` when app.path has one, else none (FROM docker.baseImage).",
        pattern: /^(none|[A-Za-z0-9._][A-Za-z0-9._/-]*)$/,
        patternHint: "a relative path such as Dockerfile or deploy/Dockerfile.prod, or none",
      },
      memory: {
        kind: "string",
        doc: "Memory limit of each app container (`docker run --memory`).",
        default: "512m",
        pattern: /^[1-9][0-9]*[kmg]$/,
        patternHint: "a number with k, m or g, such as 512m",
      },
      cpus: {
        kind: "string",
        doc: "CPU limit of each app container (`docker run --cpus`).",
        default: "1.0",
        pattern: /^[0-9]+(\.[0-9]+)?$/,
        patternHint: "a number of CPUs such as 1.0",
      },
      pidsLimit: { kind: "int", doc: "Process limit of each container.", default: 256, min: 16, max: 65536 },
      logMaxSize: {
        kind: "string",
        doc: "json-file log rotation: the size of one log file (daemon.json `max-size`).",
        default: "10m",
        pattern: /^[1-9][0-9]*[kmg]$/,
        patternHint: "a number with k, m or g, such as 10m",
      },
      logMaxFiles: {
        kind: "int",
        doc: "json-file log rotation: files kept per container.",
        default: 3,
        min: 1,
        max: 100,
      },
    },
  },
  ports: {
    kind: "object",
    doc: "Port range, for a project that is not in the standard's port registry.",
    fields: { base: { kind: "int", doc: "First port of a free block of ten.", min: 1024, max: 65530 } },
  },
  services: {
    kind: "object",
    doc: "Which of the standard's services run, and their settings.",
    fields: {
      web: {
        kind: "object",
        doc: "Django under gunicorn (Type=notify).",
        fields: serviceFields("web", "config.wsgi:application", 4),
      },
      api: { kind: "object", doc: "FastAPI under uvicorn.", fields: serviceFields("api", "api.main:app", 2) },
      celery: { kind: "object", doc: "Celery worker.", fields: workerFields("celery") },
      beat: { kind: "object", doc: "Celery beat.", fields: workerFields("beat") },
    },
  },
  app: {
    kind: "object",
    doc: "The application to release.",
    fields: {
      path: {
        kind: "string",
        doc: "Directory of the app, relative to the project: with pyproject.toml and uv.lock (used as they are), pyproject.toml alone or inside a uv workspace, or requirements files (each locked on the deploying machine with uv, for `python`).",
        default: "sample-app",
      },
      requirements: {
        kind: "string",
        doc: "For an app without pyproject.toml: the requirements file the hosts install, relative to app.path (its -r and -c includes follow). Unset: requirements.txt, else requirements/production.txt, else the app's only requirements file.",
        pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9_./-]+$/,
        patternHint: "a path inside app.path, such as requirements/production.txt",
      },
      addPackages: {
        kind: "array",
        doc: "Packages the app lacks but its roles need (e.g. gunicorn, uvicorn), added to its dependencies in a lock made on the deploying machine; the app's own files are not changed.",
        items: {
          kind: "string",
          doc: "package",
          pattern:
            /^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?((~=|==|!=|<=|>=|<|>)[A-Za-z0-9.*+!]+(,(~=|==|!=|<=|>=|<|>)[A-Za-z0-9.*+!]+)*)?$/,
          patternHint: "a package name with an optional version, such as gunicorn or gunicorn>=23",
        },
        default: [],
      },
      migrate: {
        kind: "string",
        doc: "Migrations, run once per release before its candidates start: `auto` (Django's `manage.py migrate` when the app has manage.py, else Alembic's `alembic upgrade head` when it has alembic.ini, else none), `django`, `alembic`, `none`, or a command of your own (run by sh in the release's directory as the service user, with the env file and the venv on PATH, for every new release).",
        default: "auto",
      },
      static: {
        kind: "string",
        doc: "The static files build before the switch: `auto` (`manage.py collectstatic` when the app has manage.py, else none), `collectstatic`, `none`, or a command of your own (as for migrate).",
        default: "auto",
      },
    },
  },
  env: {
    kind: "map",
    doc: "Plain environment variables for shared/.env.{stage}.",
    values: { kind: "string", doc: "value" },
    ...envKey,
  },
  secretEnv: {
    kind: "map",
    doc: "Secret environment variables, each at least 4 characters (output masks no shorter secret). Set each with `pulumi config set --secret --path 'secretEnv.NAME' VALUE`.",
    values: { kind: "string", doc: "value" },
    secret: true,
    ...envKey,
  },
  generatedSecrets: {
    kind: "array",
    doc: "Variables whose value is generated once and kept (e.g. SECRET_KEY).",
    items: { kind: "string", doc: "name", pattern: /^[A-Z_][A-Z0-9_]*$/, patternHint: "an environment variable name" },
    default: ["SECRET_KEY"],
  },
  systemPackages: {
    kind: "array",
    doc: "Debian packages the app needs on each host beyond the base set (e.g. libpq5, libmagic1), installed by the bootstrap when missing.",
    items: {
      kind: "string",
      doc: "package",
      pattern: /^[a-z0-9][a-z0-9+.-]+$/,
      patternHint: "a Debian package name",
    },
    default: [],
  },
  redis: {
    kind: "object",
    doc: "Redis for Celery.",
    fields: {
      local: { kind: "bool", doc: "Install redis-server on the host and set REDIS_URL.", default: true },
      db: {
        kind: "int",
        doc:
          "Database of the host's Redis for this project (REDIS_URL `redis://127.0.0.1:6379/DB`), so projects on one host never take each other's tasks. " +
          "Defaults to 1 + (ports.base / 10) mod 15 (1..15, never 0). The host refuses a database another project there uses: then set a free one. Only with redis.local.",
        min: 0,
        max: 15,
      },
    },
  },
  proxy: {
    kind: "object",
    doc: "Caddy in front (Debian's caddy under systemd; in Docker mode the host's ayna-proxy container): the only listener on ports 80 and 443, `/` to web and the api under `apiPath`, on the services' 127.0.0.1 ports. A site change is validated by Caddy, reloaded gracefully and kept only when every domain answers through it.",
    fields: {
      enabled: { kind: "bool", doc: "Put Caddy in front of this project on every host.", default: false },
      domains: {
        kind: "array",
        doc: "The names this project answers to (one Caddy site); each name belongs to one project on a host.",
        items: {
          kind: "string",
          doc: "domain",
          pattern: /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
          patternHint: "a host name such as app.example.com",
        },
        default: [],
      },
      tls: {
        kind: "enum",
        doc: "`auto`: public certificates from Let's Encrypt or ZeroSSL (the names must resolve to the hosts and ports 80 and 443 be reachable); `internal`: Caddy's own CA, for tests and private networks.",
        values: ["auto", "internal"],
        default: "auto",
      },
      email: {
        kind: "string",
        doc: "E-mail for the certificate authority's account (tls: auto).",
        pattern: /^[^@\s]+@[^@\s]+\.[^@\s]+$/,
        patternHint: "an e-mail address",
      },
      apiPath: {
        kind: "string",
        doc: "Path prefix routed to the api (stripped before the api sees the request); `/` sends everything to the api (web must then be off).",
        default: "/api",
        pattern: /^\/([A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*)?$/,
        patternHint: "an absolute path without a trailing slash, such as /api",
      },
      staticPath: {
        kind: "string",
        doc: "The URL path Caddy serves from the serving release's `staticfiles/` itself (the app's STATIC_URL); a file not there goes to web as before. `auto`: `/static/` when the release builds static files (app.static), else none; `none`: everything goes to the app.",
        default: "auto",
        pattern: /^(auto|none|\/([A-Za-z0-9._~-]+\/)+)$/,
        patternHint: "auto, none, or a path with slashes at both ends such as /static/",
      },
    },
  },
  offline: {
    kind: "object",
    doc: "Hosts that cannot reach PyPI: the wheels of the app's lock for `python` and the hosts' CPU, and uv's own, are gathered on the deploying machine (uv and pip, through its index) and uploaded; the hosts install them with no index at all. Debian packages still come from the hosts' own mirror.",
    fields: {
      enabled: {
        kind: "bool",
        doc: "Gather and upload the wheels instead of letting the hosts fetch them.",
        default: false,
      },
      arch: {
        kind: "enum",
        doc: "The hosts' CPU, which the gathered wheels are built for.",
        values: ["x86_64", "aarch64"],
        default: "x86_64",
      },
    },
  },
  database: {
    kind: "object",
    doc: "PostgreSQL on the host itself (Debian's postgresql, listening on 127.0.0.1 only). Without it, DATABASE_URL comes from secretEnv.",
    fields: {
      local: {
        kind: "bool",
        doc: "Install PostgreSQL on each host, with a database and a role for the project, a generated password kept as a stack secret, and DATABASE_URL derived from them.",
        default: false,
      },
      name: {
        kind: "string",
        doc: "Database and role name. Defaults to the project name with `-` as `_`.",
        pattern: databaseNamePattern,
        patternHint: "a lower-case PostgreSQL name (letters, digits, _)",
      },
      backupRetentionDays: {
        kind: "int",
        doc: "A systemd timer dumps the database daily into shared/backups (files 0600); dumps older than this many days are deleted. 0 turns the timer off.",
        default: 14,
        min: 0,
        max: 3650,
      },
    },
  },
  release: {
    kind: "object",
    doc: "How releases are kept and gated.",
    fields: {
      keep: { kind: "int", doc: "Releases to keep on the host.", default: 5, min: 2, max: 100 },
      healthPath: {
        kind: "string",
        doc: "Health endpoint of web and api.",
        default: "/health",
        pattern: /^\/[A-Za-z0-9._~/-]*$/,
        patternHint: "an absolute URL path",
      },
      healthTimeoutSeconds: {
        kind: "int",
        doc: "How long a new release may take to answer healthy. A server that still refuses connections at the end while its process keeps using CPU (starting on a busy host) gets up to twice this again; one that answers an error, idles or restarts does not.",
        default: 60,
        min: 1,
        max: 900,
      },
      healthPasses: { kind: "int", doc: "Consecutive healthy answers required.", default: 2, min: 1, max: 20 },
      healthNamesRelease: {
        kind: "bool",
        doc: 'The health answer names the release it comes from (`"release": "vN"` in its JSON; the release is in `.ayna-release.json` of the working directory), so the gate knows the new code answers. Off for an app that cannot: then a 200 is enough, after its candidates answered 200 on their own ports.',
        default: true,
      },
      watchSeconds: {
        kind: "int",
        doc: "After the switch, how long every service must keep running in the same process (no crash, no restart) for the release to pass; a service that dies within it rolls the release back. 0 checks once.",
        default: 15,
        min: 0,
        max: 600,
      },
      pin: {
        kind: "string",
        doc: "Serve this release (e.g. v2) that is still on the hosts instead of the source: rollback by plain `pulumi up`. Remove the key to deploy again.",
        pattern: /^v[1-9][0-9]*$/,
        patternHint: "a release name such as v2",
      },
      batchSize: {
        kind: "int",
        doc: "Hosts released at once; the next batch starts only when this one is healthy.",
        default: 1,
        min: 1,
        max: 100,
      },
      lockWaitSeconds: {
        kind: "int",
        doc: "How long a deploy waits for another one's lock on a host.",
        default: 120,
        min: 0,
        max: 3600,
      },
    },
  },
  sshPrivateKey: {
    kind: "string",
    doc: "Private key for SSH (OpenSSH or PEM, unencrypted). Set with `pulumi config set --secret sshPrivateKey < key`.",
    required: true,
    secret: true,
  },
};
