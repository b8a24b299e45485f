import { spawnSync } from "node:child_process";
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderEnvFile, quoteEnvValue } from "../../builders/envFile";
import {
  candidateCommand,
  hardening,
  renderHandover,
  renderSocket,
  renderUnit,
  unitFiles,
  UnitSpec,
} from "../../builders/units";
import { uvicornWorkerSource } from "../../builders/uvicornWorker";
import { assertGolden } from "../support/golden";

const base: Omit<UnitSpec, "role"> = {
  project: "demoapp",
  stage: "production",
  user: "demoapp",
  group: "demoapp",
  after: ["postgresql.service", "redis-server.service"],
};

describe("systemd unit rendering (golden files)", () => {
  it("web: gunicorn, Type=notify, HUP reload, 127.0.0.1:WEB_PORT", () => {
    const unit = renderUnit({ ...base, role: "web", port: 8150, module: "config.wsgi:application" });
    assertGolden("demoapp-web.service", unit);
    // Standard v2.0, "Web Service (Django/Gunicorn)": Type=notify, ExecReload=/bin/kill -s HUP $MAINPID.
    assert.match(unit, /^Type=notify$/m);
    assert.match(unit, /^ExecReload=\/bin\/kill -s HUP \$MAINPID$/m);
    assert.match(unit, /--bind 127\.0\.0\.1:8150/);
  });

  it("api: uvicorn workers under gunicorn (ayna's draining worker class) on 127.0.0.1:API_PORT", () => {
    const unit = renderUnit({ ...base, role: "api", port: 8151, module: "api.main:app" });
    assertGolden("demoapp-api.service", unit);
    assert.match(
      unit,
      /--worker-class ayna_uvicorn\.GracefulUvicornWorker \\\n {4}--pythonpath \/opt\/ayna\/demoapp\/lib /,
    );
    assert.match(unit, /--bind 127\.0\.0\.1:8151/);
    assert.match(unit, /^ExecReload=\/bin\/kill -s HUP \$MAINPID$/m);
  });

  it("api: the standard's literal uvicorn command on request", () => {
    const unit = renderUnit({ ...base, role: "api", port: 8151, module: "api.main:app", apiServer: "uvicorn" });
    assertGolden("demoapp-api-uvicorn.service", unit);
    // Standard v2.0, "API Service (FastAPI/Uvicorn)": uvicorn --host 127.0.0.1 --port {API_PORT} --workers 2.
    assert.match(unit, /uvicorn \\\n\s+--host 127\.0\.0\.1 \\\n\s+--port 8151 \\\n\s+--workers 2/);
    assert.match(unit, /^Type=simple$/m);
  });

  it("web and api under gunicorn: a socket unit holds 127.0.0.1:PORT, so a restart queues connections instead of refusing them", () => {
    const web = { ...base, role: "web" as const, port: 8150, module: "config.wsgi:application" };
    const socket = renderSocket(web);
    assertGolden("demoapp-web.socket", socket ?? "");
    // Standard v2.0, "Port Registry": every service binds 127.0.0.1 only.
    assert.match(socket ?? "", /^ListenStream=127\.0\.0\.1:8150$/m);
    assert.deepEqual(
      unitFiles(web).map((f) => f.name),
      ["demoapp-web.service", "demoapp-web.socket", "demoapp-web-handover.service"],
    );
    const api = { ...base, role: "api" as const, port: 8151, module: "api.main:app" };
    assert.match(renderSocket(api) ?? "", /^ListenStream=127\.0\.0\.1:8151$/m);
    // The literal uvicorn command binds its own port; workers have none.
    assert.equal(renderSocket({ ...api, apiServer: "uvicorn" }), undefined);
    assert.deepEqual(
      unitFiles({ ...base, role: "celery", celeryApp: "config" }).map((f) => f.name),
      ["demoapp-celery.service"],
    );
  });

  it("the handover unit: the role's server on the role's socket, from current, never enabled or restarted by systemd", () => {
    const web = { ...base, role: "web" as const, port: 8150, module: "config.wsgi:application" };
    const handover = renderHandover(web) ?? "";
    assertGolden("demoapp-web-handover.service", handover);
    assert.match(handover, /^Sockets=demoapp-web\.socket$/m);
    assert.match(handover, /^Restart=no$/m);
    assert.doesNotMatch(handover, /^\[Install\]$/m);
    // The same command and environment as the unit it stands in for.
    const execOf = (u: string) => /^ExecStart=[\s\S]*?^(?=\S)/m.exec(u)?.[0];
    assert.equal(execOf(handover), execOf(renderUnit(web)));
    assert.match(handover, /^EnvironmentFile=\/opt\/ayna\/demoapp\/shared\/\.env\.production$/m);
    assert.equal(
      renderHandover({ ...base, role: "api", port: 8151, module: "api.main:app", apiServer: "uvicorn" }),
      undefined,
    );
  });

  it("celery worker and beat", () => {
    assertGolden("demoapp-celery.service", renderUnit({ ...base, role: "celery", celeryApp: "config" }));
    assertGolden("demoapp-beat.service", renderUnit({ ...base, role: "beat", celeryApp: "config", after: [] }));
  });

  it("every unit runs as the service user from releases/current with the stage's env file", () => {
    for (const role of ["web", "api", "celery", "beat"] as const) {
      const unit = renderUnit({ ...base, role, port: 8150, module: "m:app", celeryApp: "config" });
      assert.match(unit, /^User=demoapp$/m);
      assert.match(unit, /^WorkingDirectory=\/opt\/ayna\/demoapp\/releases\/current$/m);
      assert.match(unit, /^EnvironmentFile=\/opt\/ayna\/demoapp\/shared\/\.env\.production$/m);
      assert.match(unit, /^Restart=always$/m);
      for (const h of hardening("demoapp")) assert.ok(unit.includes(`\n${h}\n`), `${role} lacks ${h}`);
    }
  });

  it("builds the release candidates from the same command, one worker, on the reserved port", () => {
    const dir = "/opt/ayna/demoapp/releases/v7";
    assert.deepEqual(
      candidateCommand({ ...base, role: "web", port: 8150, module: "config.wsgi:application" }, dir, 8155),
      [
        `${dir}/.venv/bin/gunicorn`,
        "--bind",
        "127.0.0.1:8155",
        "--workers",
        "1",
        "--preload",
        "--timeout",
        "120",
        "--chdir",
        dir,
        "config.wsgi:application",
      ],
    );
    assert.deepEqual(candidateCommand({ ...base, role: "api", port: 8151, module: "api.main:app" }, dir, 8156), [
      `${dir}/.venv/bin/gunicorn`,
      "--worker-class",
      "ayna_uvicorn.GracefulUvicornWorker",
      "--pythonpath",
      "/opt/ayna/demoapp/lib",
      "--bind",
      "127.0.0.1:8156",
      "--workers",
      "1",
      "--preload",
      "--chdir",
      dir,
      "api.main:app",
    ]);
    assert.equal(candidateCommand({ ...base, role: "celery", celeryApp: "config" }, dir, 1), undefined);
  });

  it("refuses a web unit without a port", () => {
    assert.throws(() => renderUnit({ ...base, role: "web", module: "m:app" }), /web unit needs a port/);
  });
});

describe("env file rendering", () => {
  it("renders sorted, quoted lines (golden)", () => {
    assertGolden(
      "env.production",
      renderEnvFile(
        { WEB_PORT: "8150", PROJECT_NAME: "demoapp", TRICKY: 'a "b" $(c) `d` \\e\nline2' },
        "managed by ayna-deploy",
      ),
    );
  });

  it("rejects bad names and NUL", () => {
    assert.throws(() => renderEnvFile({ "bad-name": "x" }), /invalid environment variable name/);
    assert.throws(() => quoteEnvValue("a\0b"), /NUL/);
  });

  it("round-trips through a POSIX shell's double-quote rules too", () => {
    // systemd's parser and sh agree on these escapes; sh is what we have locally.
    const value = `q"uo'te $(touch /tmp/x) \`id\` back\\slash\nsecond line`;
    const out = execFileSync("sh", ["-c", `V=${quoteEnvValue(value)}; printf %s "$V"`]).toString();
    assert.equal(out, value);
  });
});

describe("the api's worker class (ayna_uvicorn)", () => {
  it("is valid Python that closes its listeners and waits before uvicorn's own shutdown closes idle connections", () => {
    const r = spawnSync("python3", ["-c", "import ast, sys; ast.parse(sys.stdin.read())"], {
      input: uvicornWorkerSource,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const shutdown = /async def shutdown\(self, sockets=None\):\n([\s\S]*?)\n\n/.exec(uvicornWorkerSource)?.[1] ?? "";
    const order = [
      "server.close()",
      "sock.close()",
      "await asyncio.sleep(DRAIN_SECONDS / DRAIN_STEPS)",
      "await super().shutdown(",
    ];
    const at = order.map((s) => shutdown.indexOf(s));
    assert.ok(
      at.every((i, n) => i >= 0 && (n === 0 || i > at[n - 1]!)),
      `listeners closed, then the drain, then uvicorn's shutdown:\n${shutdown}`,
    );
  });

  it("drains up to 0.5 s while a connection is open, ends the drain once none is, and skips it when none was", () => {
    // The worker module against stand-ins of gunicorn, uvicorn and uvicorn_worker,
    // with asyncio.sleep recorded (and a connection closed at the step a scenario says).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-uvicorn-"));
    try {
      const files: Record<string, string> = {
        "ayna_uvicorn.py": uvicornWorkerSource,
        "gunicorn/__init__.py": "",
        "gunicorn/arbiter.py": "class Arbiter:\n    WORKER_BOOT_ERROR = 3\n",
        "uvicorn/__init__.py": "",
        "uvicorn/server.py": [
          "LOG = []",
          "class Server:",
          "    def __init__(self, config=None):",
          "        self.config = config",
          "    async def shutdown(self, sockets=None):",
          "        LOG.append('uvicorn shutdown')",
          "",
        ].join("\n"),
        "uvicorn_worker.py": "class UvicornWorker:\n    pass\n",
        "run.py": [
          "import asyncio, json, sys, types",
          "import ayna_uvicorn",
          "from uvicorn.server import LOG",
          "def scenario(open_for, has_state=True):",
          "    LOG.clear()",
          "    s = ayna_uvicorn.DrainingServer.__new__(ayna_uvicorn.DrainingServer)",
          "    s.servers = [types.SimpleNamespace(close=lambda: LOG.append('listener closed'))]",
          "    conns = set() if open_for == 0 else {'c'}",
          "    if has_state:",
          "        s.server_state = types.SimpleNamespace(connections=conns)",
          "    async def sleep(t):",
          "        LOG.append(t)",
          "        if open_for is not None and len([x for x in LOG if not isinstance(x, str)]) >= open_for:",
          "            conns.clear()",
          "    ayna_uvicorn.asyncio.sleep = sleep",
          "    asyncio.run(s.shutdown())",
          "    return list(LOG)",
          "print(json.dumps({'none': scenario(0), 'closes': scenario(3), 'stays': scenario(None),",
          "                  'old': scenario(None, has_state=False)}))",
          "",
        ].join("\n"),
      };
      for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), text);
      }
      const r = spawnSync("python3", ["run.py"], { cwd: dir, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as Record<string, (string | number)[]>;
      const step = 0.05;
      assert.deepEqual(out["none"], ["listener closed", "uvicorn shutdown"]);
      assert.deepEqual(out["closes"], ["listener closed", step, step, step, "uvicorn shutdown"]);
      // A connection that stays open: the whole drain, 10 steps of 0.05 s.
      assert.deepEqual(out["stays"], ["listener closed", ...new Array<number>(10).fill(step), "uvicorn shutdown"]);
      // A uvicorn without server_state: the whole drain, as before.
      assert.deepEqual(out["old"], out["stays"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
