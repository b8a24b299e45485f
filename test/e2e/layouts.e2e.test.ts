// Apps that bring no uv.lock, deployed from stack config alone and with no
// change to the app (issue 11): a Django site listing its dependencies in
// requirements files (test/fixtures/django-requirements) and a FastAPI
// service with a pyproject.toml and no lock, which lacks gunicorn
// (test/fixtures/fastapi-pyproject). Each is locked on this machine with uv,
// side by side on one host; each deploys, passes its health checks, and
// survives a release and a rollback under 8 clients losing nothing.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { assertNoLoss, describeLoad, startLoad } from "../support/load";
import { PulumiStack, repoRoot, resourceSummary } from "../support/pulumi";
import { sh } from "../support/sampleApp";
import { quote } from "../../builders/shell";
import { startHost, stopHost, TestHost } from "../support/testhost";

interface Layout {
  project: string;
  fixture: string;
  /** The file whose `VERSION = "N"` line a release changes, inside the app. */
  versionFile: string;
  port: number;
  settings: [string, string][];
  /** What the program says it locked from. */
  lockedFrom: RegExp;
}

const layouts: Layout[] = [
  {
    project: "notes",
    fixture: "django-requirements",
    versionFile: "mysite/urls.py",
    port: 8150,
    settings: [
      ["ports.base", "8150"],
      ["services.api.enabled", "false"],
      ["services.celery.enabled", "false"],
      ["services.beat.enabled", "false"],
      ["services.web.module", "mysite.wsgi:application"],
      ["env.DJANGO_SETTINGS_MODULE", "mysite.settings"],
      ["redis.local", "false"],
      ["release.healthNamesRelease", "false"],
      ["release.watchSeconds", "5"],
    ],
    lockedFrom: /app dependencies: locked now from \S+\/requirements\/production\.txt with uv, for Python 3\.13/,
  },
  {
    project: "ping",
    fixture: "fastapi-pyproject",
    versionFile: "api/main.py",
    port: 8161,
    settings: [
      ["ports.base", "8160"],
      ["services.web.enabled", "false"],
      ["services.celery.enabled", "false"],
      ["services.beat.enabled", "false"],
      ["app.addPackages[0]", "gunicorn"],
      ["redis.local", "false"],
      ["release.healthNamesRelease", "false"],
      ["release.watchSeconds", "5"],
    ],
    lockedFrom: /app dependencies: locked now from \S+\/pyproject\.toml with uv, for Python 3\.13/,
  },
];

describe("apps without a uv.lock, locked on the deploying machine: requirements files (Django), a pyproject alone (FastAPI, gunicorn added by config)", function () {
  this.timeout(1_200_000);
  let host: TestHost;
  const stacks = new Map<string, PulumiStack>();
  const apps = new Map<string, string>();

  before(async () => {
    host = await startHost();
  });

  after(async () => {
    for (const s of stacks.values()) await s.remove();
    if (host) await stopHost(host);
  });

  const served = async (l: Layout) =>
    JSON.parse(await sh(host, `curl -sf http://127.0.0.1:${l.port}/`)) as { version: string };

  function setVersion(l: Layout, v: string): void {
    const f = path.join(apps.get(l.project)!, l.versionFile);
    fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace(/^VERSION = ".*"$/m, `VERSION = "${v}"`));
  }

  for (const l of layouts) {
    describe(`${l.fixture} (${l.project})`, () => {
      it("deploys from nothing: locked here once, the host's environment built from that lock (kept with it), /health answers 200", async () => {
        const stack = await PulumiStack.create(`${l.project}${process.pid}`);
        stacks.set(l.project, stack);
        // The made locks go to the stack's own folder, not to ~/.cache.
        stack.env["AYNA_LOCK_DIR"] = path.join(stack.dir, "locks");
        await stack.configureHost(l.project, host);
        const app = path.join(stack.dir, "app");
        fs.cpSync(path.join(repoRoot, "test", "fixtures", l.fixture), app, { recursive: true });
        apps.set(l.project, app);
        await stack.setConfig("app.path", app, { path: true });
        await stack.setConfig("secretEnv.DATABASE_URL", `sqlite:////opt/ayna/${l.project}/shared/db.sqlite3`, {
          path: true,
          secret: true,
        });
        for (const [k, v] of l.settings) await stack.setConfig(k, v, { path: true });
        const before = fs.readdirSync(app).sort();

        const r = await stack.ok(["up", "--yes"]);
        assert.match(r.stdout + r.stderr, l.lockedFrom);
        assert.deepEqual(fs.readdirSync(app).sort(), before, "nothing written into the app");
        const made = fs.readdirSync(path.join(stack.dir, "locks")).filter((d) => !d.startsWith("."));
        assert.equal(made.length, 1, "one lock made");
        const local = fs.readFileSync(path.join(stack.dir, "locks", made[0]!, "uv.lock"), "utf8");
        const onHost = await sh(host, `sudo cat /opt/ayna/${l.project}/releases/current/.venv/.ayna-lock/uv.lock`);
        assert.equal(onHost, local, "the release's environment was built from the lock made here");
        assert.match(local, /^name = "gunicorn"$/m);
        assert.equal((await served(l)).version, "1");
        assert.equal(
          (await sh(host, `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${l.port}/health`)).trim(),
          "200",
        );
      });

      it("a release under 8 clients: the kept lock, uv not run again; the new code serves, nothing lost", async () => {
        const stack = stacks.get(l.project)!;
        setVersion(l, "2");
        const load = await startLoad(host, { urls: [`http://127.0.0.1:${l.port}/`] });
        const r = await stack.ok(["up", "--yes", "--skip-preview"]);
        const res = await load.stop();
        process.stderr.write(`      load through the release: ${describeLoad(res)}\n`);
        assert.match(r.stdout + r.stderr, /app dependencies: the lock made earlier from /);
        assert.equal((await served(l)).version, "2");
        assertNoLoss(res);
      });

      it("a rollback (release.pin v1) under 8 clients: v1's code serves again, nothing lost; a second up makes 0 changes", async () => {
        const stack = stacks.get(l.project)!;
        const load = await startLoad(host, { urls: [`http://127.0.0.1:${l.port}/`] });
        await stack.setConfig("release.pin", "v1", { path: true });
        await stack.ok(["up", "--yes", "--skip-preview"]);
        const res = await load.stop();
        process.stderr.write(`      load through the rollback: ${describeLoad(res)}\n`);
        assert.equal((await served(l)).version, "1");
        assertNoLoss(res);
        const again = await stack.ok(["up", "--yes", "--skip-preview"]);
        assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
      });
    });
  }
  // Issue 11: every mismatch between the config and the app is a clear error
  // at preview, before anything reaches a host. Each row is a variant of
  // ping's deployed stack (its own copy of the config file, and of the app
  // where the row changes the app); none may log in to the host.
  interface Mismatch {
    name: string;
    /** Keys set (or removed, with undefined) in the variant's config. */
    set: [string, string | undefined][];
    /** A change to a copy of the app (app.path then points at the copy). */
    app?: (dir: string) => void;
    error: RegExp;
  }
  const mismatches: Mismatch[] = [
    {
      name: "the web server the role needs is missing (app.addPackages emptied)",
      set: [["app.addPackages", undefined]],
      error:
        /ayna-deploy:services\.api: needs gunicorn, which the lock made from \S+\/pyproject\.toml does not have .*list it in app\.addPackages/,
    },
    {
      name: "an entry point that is not in the app",
      set: [["services.api.module", "api.nothere:app"]],
      error:
        /ayna-deploy:services\.api\.module: module api\.nothere is not in \S+ .*set services\.api\.module to the app's module/,
    },
    {
      name: "Django's migrate for an app without manage.py",
      set: [["app.migrate", "django"]],
      error:
        /ayna-deploy:app\.migrate: django needs \S+\/manage\.py; set app\.migrate to the app's own command, or none/,
    },
    {
      name: "collectstatic for an app without manage.py",
      set: [["app.static", "collectstatic"]],
      error:
        /ayna-deploy:app\.static: collectstatic needs \S+\/manage\.py; set app\.static to the app's own command, or none/,
    },
    {
      name: "a health path that is not a path",
      set: [["services.api.healthPath", "health"]],
      error: /ayna-deploy:services\.api\.healthPath: .*an absolute URL path/,
    },
    {
      name: "a system package name Debian cannot have",
      set: [["systemPackages[0]", "Not A Package"]],
      error: /ayna-deploy:systemPackages\[0\]: .*a Debian package name/,
    },
    {
      name: "a misspelt key",
      set: [["app.requirment", "requirements.txt"]],
      error: /ayna-deploy:app\.requirment: unknown key \(did you mean "\S*requirements"\?\)/,
    },
    {
      name: "a Python the app does not allow",
      set: [],
      app: (dir) => {
        const f = path.join(dir, "pyproject.toml");
        fs.writeFileSync(
          f,
          fs.readFileSync(f, "utf8").replace('requires-python = ">=3.12"', 'requires-python = ">=3.10,<3.13"'),
        );
      },
      error:
        /ayna-deploy:python: 3\.13 is outside the app's requires-python ">=3\.10,<3\.13" \(\S+\/pyproject\.toml\); set python to a version it allows/,
    },
    {
      name: "an app folder that is not there",
      set: [["app.path", "/nonexistent/ping"]],
      error: /ayna-deploy:app\.path: \/nonexistent\/ping is not a folder; set app\.path/,
    },
  ];

  // After the layouts' own tests (mocha runs a describe's tests before its nested describes).
  describe("mismatches against ping's deployed stack", () => {
    it("each app mismatch fails preview and up naming the key and the fix, never a stack trace; no SSH login reaches the host, nothing there changes", async () => {
      const stack = stacks.get("ping")!;
      const state =
        'find /opt/ayna/ping /etc/systemd/system -printf "%p %s %m %T@\\n" | sort | sha256sum; systemctl show -P MainPID ping-api';
      // Logins since the last look, less the looks' own (each names its client
      // port; its journal line may come before or after its cursor), then the
      // journal's cursor now and the host's state.
      let look = { port: "", cursor: "" };
      const logins = async (): Promise<{ logins: string[]; state: string[] }> => {
        const since = look.cursor ? `--after-cursor ${quote(look.cursor)}` : "-n 0";
        const out = await sh(
          host,
          `echo "$SSH_CLIENT"; sudo sh -c ${quote(
            `journalctl -q --no-pager -o cat ${since} | grep '^Accepted publickey' || true; echo ==; journalctl -q -n 1 -o cat --show-cursor | tail -n 1; ${state}`,
          )}`,
        );
        const [client, ...lines] = out.trim().split("\n");
        const split = lines.indexOf("==");
        const port = client!.split(" ")[1]!;
        const [cursor, ...rest] = lines.slice(split + 1);
        assert.match(cursor!, /^-- cursor: /);
        const seen = lines.slice(0, split).filter((l) => ![look.port, port].some((p) => l.includes(` port ${p} `)));
        look = { port, cursor: cursor!.replace(/^-- cursor: /, "") };
        return { logins: seen, state: rest };
      };
      const before = await logins();
      for (const [i, m] of mismatches.entries()) {
        const variant = stack.copyConfig(`mismatch${i}`);
        if (m.app) {
          const copy = path.join(stack.dir, `app-mismatch${i}`);
          fs.cpSync(apps.get("ping")!, copy, { recursive: true });
          m.app(copy);
          await stack.setConfig("app.path", copy, { path: true, configFile: variant });
        }
        for (const [k, v] of m.set) {
          if (v === undefined) await stack.ok(["config", "rm", "--path", k], { configFile: variant });
          else await stack.setConfig(k, v, { path: true, configFile: variant });
        }
        for (const args of [["preview"], ["up", "--yes", "--skip-preview"]]) {
          const r = await stack.run(args, { configFile: variant });
          const out = r.stdout + r.stderr;
          assert.notEqual(r.code, 0, `${m.name}: pulumi ${args[0]} succeeded\n${out}`);
          assert.match(out, m.error, `${m.name}: pulumi ${args[0]}`);
          assert.doesNotMatch(out, /^\s+at \S+ \(?\S+:\d+:\d+\)?$/m, `${m.name}: a stack trace\n${out}`);
        }
        const now = await logins();
        assert.deepEqual(now.logins, [], `${m.name}: an SSH login reached the host`);
        assert.deepEqual(now.state, before.state, `${m.name}: files, modes or the api's process changed`);
      }
      const again = await stack.ok(["up", "--yes", "--skip-preview"]);
      assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
    });
  });
});
