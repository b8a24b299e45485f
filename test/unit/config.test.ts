// Table-driven: one row per case, input config in, typed value or exact error out.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { scrub, secretStrings, shortestScrubbed, wrapSecret } from "../../plugins/provider/secrets";
import { ConfigError, parseStackConfig, shortestMaskedSecret } from "../../stacks";
import { renderConfigDocs } from "../../stacks/docs";
import { planHosts } from "../../stacks/plan";
import { goodConfig, hostKey, privateKey, rawConfig } from "../support/config";

const raw = rawConfig;

const good = goodConfig;

interface ErrorCase {
  name: string;
  config: Record<string, unknown>;
  secret?: string[];
  stack?: string;
  /** Every listed fragment must appear in the error; key material never may. */
  errors: string[];
}

const errorCases: ErrorCase[] = [
  {
    name: "unknown top-level key with a suggestion",
    config: { ...good, projcet: "x" },
    errors: ['ayna-deploy:projcet: unknown key (did you mean "project"?)'],
  },
  {
    name: "unknown nested key",
    config: { ...good, hosts: [{ name: "web1", adress: "10.0.0.5", hostKey }] },
    errors: [
      'ayna-deploy:hosts[0].adress: unknown key (did you mean "address"?)',
      "ayna-deploy:hosts[0].address: required",
    ],
  },
  {
    name: "project with a space",
    config: { ...good, project: "my app" },
    errors: ["ayna-deploy:project: invalid value; expected 3-40 lower-case letters"],
  },
  {
    name: "project with shell characters",
    config: { ...good, project: "app$(reboot)" },
    errors: ["ayna-deploy:project: invalid value"],
  },
  {
    name: "missing project",
    config: { hosts: good.hosts, sshPrivateKey: privateKey },
    errors: ["ayna-deploy:project: required"],
  },
  {
    name: "missing private key",
    config: { project: "demoapp", hosts: good.hosts },
    secret: [],
    errors: ["ayna-deploy:sshPrivateKey: required"],
  },
  {
    name: "private key stored in plain text",
    config: good,
    secret: [],
    errors: ["ayna-deploy:sshPrivateKey: must be stored encrypted; run `pulumi config set --secret sshPrivateKey"],
  },
  {
    name: "port out of range",
    config: { ...good, hosts: [{ ...good.hosts[0], port: 70000 }] },
    errors: ["ayna-deploy:hosts[0].port: 70000 is out of range 1..65535"],
  },
  {
    name: "hosts not a list",
    config: { ...good, hosts: { name: "web1" } },
    errors: ["ayna-deploy:hosts: expected a list, got an object"],
  },
  { name: "empty hosts", config: { ...good, hosts: [] }, errors: ["ayna-deploy:hosts: needs at least 1 item(s)"] },
  {
    name: "host key missing",
    config: { ...good, hosts: [{ name: "web1", address: "10.0.0.5" }] },
    errors: ["ayna-deploy:hosts[0].hostKey: required; pin the host key (ssh-keyscan -t ed25519 10.0.0.5)"],
  },
  {
    name: "malformed host key",
    config: { ...good, hosts: [{ ...good.hosts[0], hostKey: "not a key" }] },
    errors: ["ayna-deploy:hosts[0].hostKey: invalid value"],
  },
  {
    name: "duplicate host names",
    config: { ...good, hosts: [good.hosts[0], { ...good.hosts[0], address: "10.0.0.6" }] },
    errors: ['ayna-deploy:hosts[1].name: "web1" is used twice'],
  },
  {
    name: "stage not derivable",
    config: good,
    stack: "qa",
    errors: ["ayna-deploy:stage: required when the stack is not named"],
  },
  {
    name: "bad stage",
    config: { ...good, stage: "prod" },
    errors: ["ayna-deploy:stage: expected one of dev, staging, production"],
  },
  {
    name: "project outside the registry without a range",
    config: { ...good, ports: {} },
    errors: [
      "ayna-deploy:ports.base: demoapp is not in the port registry (ayna-comply, ayna-fly, aynasite, uavcrew, skybookus); declare a free range of ten, e.g. ports.base: 8150",
    ],
  },
  {
    name: "declared range colliding with the registry",
    config: { ...good, ports: { base: 8130 } },
    errors: ["ayna-deploy:ports.base: 8130-8139 belongs to uavcrew in the port registry"],
  },
  {
    name: "registry project claiming another range",
    config: { ...good, project: "uavcrew", ports: { base: 8150 } },
    errors: ["ayna-deploy:ports.base: uavcrew owns 8130-8139 in the port registry"],
  },
  {
    name: "an explicit port on the reserved candidate offset",
    config: { ...good, services: { web: { port: 8155 } } },
    errors: [
      "ayna-deploy:services.web.port: 8155 is demoapp's reserved +5, where a new web release is health-checked before the switch; use 8150",
    ],
  },
  {
    name: "a registry project moving a role off the standard's offset",
    config: { ...good, project: "uavcrew", ports: {}, services: { api: { port: 8133 } } },
    errors: [
      "ayna-deploy:services.api.port: uavcrew is in the standard's port registry, which fixes api at +1; use 8131",
    ],
  },
  {
    name: "web and api on one port",
    config: { ...good, services: { api: { port: 8150 } } },
    errors: ["ayna-deploy:services.api.port: 8150 is also web's port"],
  },
  {
    name: "port outside the project's range",
    config: { ...good, services: { web: { port: 8100 } } },
    errors: ["ayna-deploy:services.web.port: 8100 is outside demoapp's range 8150-8159; use 8150"],
  },
  {
    name: "binding anywhere but 127.0.0.1",
    config: { ...good, services: { api: { bind: "0.0.0.0" } } },
    errors: ["ayna-deploy:services.api.bind: 0.0.0.0 is not allowed; standard v2.0 binds every port to 127.0.0.1 only"],
  },
  {
    name: "a secret in plain env",
    config: { ...good, env: { ...good.env, STRIPE_API_KEY: "sk_live_x" } },
    errors: ["ayna-deploy:env.STRIPE_API_KEY: looks like a secret; move it to secretEnv"],
  },
  {
    name: "secretEnv stored in plain text",
    config: good,
    secret: ["sshPrivateKey"],
    errors: ["ayna-deploy:secretEnv: values must be stored encrypted"],
  },
  {
    name: "a secret too short for output to mask",
    config: { ...good, secretEnv: { ...good.secretEnv, PIN: "123" } },
    errors: [
      "ayna-deploy:secretEnv.PIN: 3 characters are too short to keep out of logs (output masks secrets of 4 characters or more); set a longer value with `pulumi config set --secret --path 'secretEnv.PIN' ...`, or move it to env if it is no secret",
    ],
  },
  {
    name: "missing required variable DATABASE_URL",
    config: { ...good, secretEnv: {} },
    errors: ['ayna-deploy:env: DATABASE_URL is required by standard v2.0 ("Required Variables")'],
  },
  {
    name: "missing DJANGO_SETTINGS_MODULE",
    config: { ...good, env: {} },
    errors: ["ayna-deploy:env: DJANGO_SETTINGS_MODULE is required by standard v2.0"],
  },
  {
    name: "a derived port overridden by hand",
    config: { ...good, env: { ...good.env, WEB_PORT: "9000" } },
    errors: ["ayna-deploy:env.WEB_PORT: the program sets it to 8150"],
  },
  {
    name: "service user root",
    config: { ...good, serviceUser: "root" },
    errors: ["ayna-deploy:serviceUser: services must not run as root"],
  },
  {
    name: "Python too old",
    config: { ...good, python: "3.11" },
    errors: ["ayna-deploy:python: invalid value; expected 3.12 or newer"],
  },
  {
    name: "Redis database out of range",
    config: { ...good, redis: { db: 16 } },
    errors: ["ayna-deploy:redis.db: 16 is out of range 0..15"],
  },
  {
    name: "a Redis database without the host's Redis",
    config: { ...good, redis: { local: false, db: 3 }, env: { ...good.env, REDIS_URL: "redis://cache:6379/3" } },
    errors: [
      "ayna-deploy:redis.db: only used with redis.local: true; with another Redis, put the database in env.REDIS_URL",
    ],
  },
  {
    name: "REDIS_URL by hand beside the host's Redis",
    config: { ...good, env: { ...good.env, REDIS_URL: "redis://127.0.0.1:6379/0" } },
    errors: ["ayna-deploy:env.REDIS_URL: the program sets it to redis://127.0.0.1:6379/6"],
  },
  {
    name: "a system package name with a shell character",
    config: { ...good, systemPackages: ["libpq5;rm"] },
    errors: ["ayna-deploy:systemPackages[0]: invalid value; expected a Debian package name"],
  },
  {
    name: "bad env name",
    config: { ...good, env: { "bad-name": "x" } },
    errors: ["ayna-deploy:env.bad-name: invalid name"],
  },
];

describe("stack config validation", () => {
  it("accepts a minimal config and fills defaults", () => {
    const c = parseStackConfig("ayna-deploy", "staging", raw(good));
    assert.equal(c.project, "demoapp");
    assert.equal(c.stage, "staging");
    assert.deepEqual(c.hosts, [
      { name: "web1", address: "10.0.0.5", port: 22, user: "deploy", hostKey, insecureIgnoreHostKey: false },
    ]);
    assert.equal(c.serviceUser, "demoapp");
    assert.deepEqual(c.ports, { base: 8150, source: "declared" });
    assert.equal(c.services.web.port, 8150);
    assert.equal(c.services.api.port, 8151);
    assert.equal(c.services.web.module, "config.wsgi:application");
    assert.deepEqual(c.generatedSecrets, ["SECRET_KEY"]);
    assert.deepEqual(c.env, {
      DJANGO_SETTINGS_MODULE: "config.settings",
      PROJECT_NAME: "demoapp",
      WEB_PORT: "8150",
      API_PORT: "8151",
      // 1 + (8150 / 10) mod 15: the project's own database on the host's Redis.
      REDIS_URL: "redis://127.0.0.1:6379/6",
    });
    assert.deepEqual(c.redis, { local: true, db: 6 });
    assert.deepEqual(Object.keys(c.secretEnv), ["DATABASE_URL"]);
  });

  it("uses the registry range for a listed project", () => {
    const c = parseStackConfig("ayna-deploy", "staging", raw({ ...good, project: "uavcrew", ports: {} }));
    assert.deepEqual(c.ports, { base: 8130, source: "registry" });
    assert.equal(c.env["WEB_PORT"], "8130");
    assert.equal(c.env["API_PORT"], "8131");
  });

  it("gives each project its own Redis database, from its range or from redis.db", () => {
    const url = (extra: Record<string, unknown>) =>
      parseStackConfig("ayna-deploy", "staging", raw({ ...good, ...extra })).env["REDIS_URL"];
    assert.equal(url({ ports: { base: 8170 } }), "redis://127.0.0.1:6379/8");
    assert.equal(url({ project: "uavcrew", ports: {} }), "redis://127.0.0.1:6379/4");
    assert.equal(url({ redis: { db: 0 } }), "redis://127.0.0.1:6379/0");
    assert.equal(url({ redis: { db: "11" } }), "redis://127.0.0.1:6379/11");
    const external = parseStackConfig(
      "ayna-deploy",
      "staging",
      raw({ ...good, redis: { local: false }, env: { ...good.env, REDIS_URL: "redis://cache:6379/2" } }),
    );
    assert.equal(external.env["REDIS_URL"], "redis://cache:6379/2");
    assert.equal(external.redis.db, undefined);
  });

  it("takes an explicit stage over the stack name", () => {
    assert.equal(parseStackConfig("ayna-deploy", "eu-prod", raw({ ...good, stage: "production" })).stage, "production");
  });

  for (const c of errorCases) {
    it(`rejects: ${c.name}`, () => {
      let err: unknown;
      try {
        parseStackConfig("ayna-deploy", c.stack ?? "staging", raw(c.config, c.secret));
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ConfigError, "expected a ConfigError");
      for (const want of c.errors)
        assert.ok(err.message.includes(want), `missing ${JSON.stringify(want)} in:\n${err.message}`);
      assert.ok(!err.message.includes("b3BlbnNzaC1rZXktdjEAAAAA"), "the error must not echo key material");
    });
  }
});

describe("secretEnv values and the provider's output masking", () => {
  // "Secrets never appear in plain text ... not in logs": the shortest value
  // the config takes is one the provider masks; one character less is refused.
  it("takes a value of shortestMaskedSecret characters, which scrub() masks, and refuses one shorter", () => {
    assert.equal(shortestMaskedSecret, shortestScrubbed);
    const fits = "x".repeat(shortestMaskedSecret);
    const c = parseStackConfig("ayna-deploy", "staging", raw({ ...good, secretEnv: { ...good.secretEnv, PIN: fits } }));
    assert.ok("PIN" in c.secretEnv);
    assert.equal(scrub(`pin=${fits};`, secretStrings(wrapSecret(fits))), "pin=[secret];");
    const short = fits.slice(1);
    assert.equal(scrub(`pin=${short};`, secretStrings(wrapSecret(short))), `pin=${short};`);
    assert.throws(
      () => parseStackConfig("ayna-deploy", "staging", raw({ ...good, secretEnv: { ...good.secretEnv, PIN: short } })),
      /secretEnv\.PIN: 3 characters are too short/,
    );
  });
});

describe("database.local", () => {
  const { secretEnv: _unused, ...noUrl } = good;
  void _unused;

  it("derives DATABASE_URL (so it is not required) and names the database after the project, - as _", () => {
    const c = parseStackConfig(
      "ayna-deploy",
      "staging",
      raw({ ...noUrl, project: "my-app", database: { local: true } }, ["sshPrivateKey"]),
    );
    assert.deepEqual(c.database, { local: true, name: "my_app", backupRetentionDays: 14 });
    assert.ok(c.requiredEnv.includes("DATABASE_URL"));
    assert.ok(!("DATABASE_URL" in c.secretEnv));
  });

  it("refuses secretEnv.DATABASE_URL beside it, and database.name without it", () => {
    assert.throws(
      () => parseStackConfig("ayna-deploy", "staging", raw({ ...good, database: { local: true } })),
      /ayna-deploy:secretEnv\.DATABASE_URL: database\.local derives it from the host's PostgreSQL; remove it \(pulumi config rm --path secretEnv\.DATABASE_URL\) or set database\.local: false/,
    );
    assert.throws(
      () => parseStackConfig("ayna-deploy", "staging", raw({ ...good, database: { name: "x" } })),
      /ayna-deploy:database\.name: only used with database\.local: true/,
    );
  });

  it("puts PostgreSQL (and systemPackages) on the host and orders the units after it", () => {
    const c = parseStackConfig(
      "ayna-deploy",
      "staging",
      raw({ ...noUrl, database: { local: true } }, ["sshPrivateKey"]),
    );
    const [plan] = planHosts(c);
    assert.deepEqual(plan!.packages, ["redis-server", "postgresql"]);
    const withExtra = parseStackConfig(
      "ayna-deploy",
      "staging",
      raw({ ...noUrl, database: { local: true }, systemPackages: ["libmagic1"] }, ["sshPrivateKey"]),
    );
    assert.deepEqual(planHosts(withExtra)[0]!.packages, ["redis-server", "postgresql", "libmagic1"]);
    assert.deepEqual(plan!.units[0]!.after, ["redis-server.service", "postgresql.service"]);
  });
});

describe("committed stack files", () => {
  // Only keys the schema knows, in the shapes it wants; the secret is set by each operator.
  for (const stack of ["staging", "production"]) {
    it(`Pulumi.${stack}.yaml validates (but for the operator's secret key)`, () => {
      const text = fs.readFileSync(path.join(__dirname, "..", "..", `Pulumi.${stack}.yaml`), "utf8");
      const config = (yaml.load(text) as { config: Record<string, unknown> }).config;
      const values: Record<string, unknown> = { sshPrivateKey: privateKey, secretEnv: good.secretEnv };
      for (const [k, v] of Object.entries(config)) values[k.replace(/^ayna-deploy:/, "")] = v;
      const c = parseStackConfig("ayna-deploy", stack, raw(values));
      assert.equal(c.stage, stack);
      assert.ok(!text.includes("PRIVATE KEY"), "no key material in a committed stack file");
    });
  }
});

describe("required variables", () => {
  it("counts an empty value as missing", () => {
    assert.throws(
      () => parseStackConfig("ayna-deploy", "staging", raw({ ...good, secretEnv: { DATABASE_URL: "" } })),
      /DATABASE_URL is required by standard v2\.0/,
    );
  });

  const only = (...roles: string[]) =>
    Object.fromEntries(["web", "api", "celery", "beat"].map((r) => [r, { enabled: roles.includes(r) }]));

  it("every role: standard v2.0's seven, in its order", () => {
    assert.deepEqual(parseStackConfig("ayna-deploy", "staging", raw(good)).requiredEnv, [
      "PROJECT_NAME",
      "DJANGO_SETTINGS_MODULE",
      "SECRET_KEY",
      "DATABASE_URL",
      "REDIS_URL",
      "WEB_PORT",
      "API_PORT",
    ]);
  });

  it("an api-only project needs neither Django's settings, Redis nor WEB_PORT", () => {
    const c = parseStackConfig(
      "ayna-deploy",
      "staging",
      raw({ ...good, services: only("api"), redis: { local: false }, env: {} }),
    );
    assert.deepEqual(c.requiredEnv, ["PROJECT_NAME", "SECRET_KEY", "DATABASE_URL", "API_PORT"]);
    assert.deepEqual(c.env, { PROJECT_NAME: "demoapp", API_PORT: "8151" });
  });

  it("a worker-only project needs REDIS_URL but no port", () => {
    const c = parseStackConfig("ayna-deploy", "staging", raw({ ...good, services: only("celery", "beat"), env: {} }));
    assert.deepEqual(c.requiredEnv, ["PROJECT_NAME", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"]);
    assert.throws(
      () =>
        parseStackConfig(
          "ayna-deploy",
          "staging",
          raw({ ...good, services: only("celery"), redis: { local: false }, env: {} }),
        ),
      /ayna-deploy:env: REDIS_URL is required by standard v2\.0 \("Required Variables"\); set redis\.local: true, or env\.REDIS_URL/,
    );
  });

  it("the web role still needs DJANGO_SETTINGS_MODULE", () => {
    assert.throws(
      () => parseStackConfig("ayna-deploy", "staging", raw({ ...good, services: only("web"), env: {} })),
      /ayna-deploy:env: DJANGO_SETTINGS_MODULE is required by standard v2\.0/,
    );
  });
});

describe("configuration reference", () => {
  it("the README's table is the one the schema renders (npm run config-docs)", () => {
    const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
    const m = /<!-- config-docs:start -->\n([\s\S]*?)<!-- config-docs:end -->/.exec(readme);
    assert.ok(m, "README has the config-docs markers");
    assert.equal(m[1], renderConfigDocs(), "regenerate the table with npm run config-docs");
  });
});
