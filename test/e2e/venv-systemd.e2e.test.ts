// venv/systemd mode end to end: the sample app from nothing to four running
// services on a fresh Debian 13 host, through the real CLI, then the checks of
// standard v2.0 ("Port Registry": all bind 127.0.0.1; "Systemd Service
// Pattern"; "Environment Configuration": shared/.env.{stage}).
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { archiveDir } from "../../local/archive";
import {
  findLeaks,
  grepPatterns,
  grepTree,
  hitsFromMatches,
  ProcSample,
  Secrets,
  startProcSampler,
  TreeHits,
  treeLeaks,
} from "../support/leaks";
import { CliResult, PulumiStack, resourceSummary } from "../support/pulumi";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";
import { sh } from "../support/sampleApp";

const project = "demoapp";
const roles = ["web", "api", "celery", "beat"];
// Quotes, $(), backticks, a backslash and a newline: must land verbatim and run nothing.
const hostile = `q"uo'te $(touch /tmp/pwned-dollar) \`touch /tmp/pwned-tick\` back\\slash\nsecond line`;

async function logins(host: TestHost): Promise<number> {
  return Number(
    (await sh(host, "sudo journalctl --no-pager -o cat -u ssh.service | grep -c 'Accepted publickey' || true")).trim(),
  );
}

/** Files in the host's tmpfs mounts (outside its overlay upper dir) that hold a secret; the patterns go on stdin. */
async function hostTmpfsHits(host: TestHost, secrets: Secrets): Promise<TreeHits> {
  const r = await sshExec(host, "sudo grep -rFaoZ -D skip -f /dev/stdin -- /run /tmp /dev/shm", {
    input: grepPatterns(secrets),
    timeoutMs: 120_000,
  });
  // 1: nothing found; 2 is fine only for files that went away during the walk.
  const complaints = r.stderr.split("\n").filter((l) => l && !/No such file or directory$/.test(l));
  assert.ok(r.code <= 2 && complaints.length === 0, `grep on the host's tmpfs exited ${r.code}: ${r.stderr}`);
  return hitsFromMatches(r.stdout, secrets);
}

describe("venv/systemd mode: the sample app on a fresh host", function () {
  this.timeout(900_000);
  let host: TestHost;
  let stack: PulumiStack;
  let deployMs = 0;

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`venv${process.pid}`);
    await stack.configureHost(project, host);
    await stack.configureSampleApp(project);
    await stack.setConfig("secretEnv.HOSTILE_VALUE", hostile, { path: true, secret: true });
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("pulumi up deploys from nothing: four services active, and its output has the release tool's account of the gate", async () => {
    const r = await stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    deployMs = r.ms;
    process.stderr.write(`      cold deploy: ${(deployMs / 1000).toFixed(1)} s\n`);
    const active = await sh(host, `systemctl is-active ${roles.map((r) => `${project}-${r}`).join(" ")}`);
    assert.deepEqual(active.trim().split("\n"), ["active", "active", "active", "active"]);
    // Shown by the provider (logStderr) on the release's deploy command, although it succeeded.
    const printed = r.stdout + r.stderr;
    for (const line of [
      "candidate ok: web of v1 is healthy on 127.0.0.1:8155",
      "health ok: http://127.0.0.1:8150/health serves v1",
      "health ok: http://127.0.0.1:8151/health serves v1",
    ]) {
      assert.ok(
        printed.split("\n").some((l) => l.trim() === line),
        `${line}\n${printed}`,
      );
    }
  });

  it("web and api answer /health 200 on 127.0.0.1 at the registry ports (declared range 8150)", async () => {
    for (const [port, service] of [
      [8150, "web"],
      [8151, "api"],
    ] as const) {
      const out = await sh(host, `curl -s -o /dev/stderr -w '%{http_code}' http://127.0.0.1:${port}/health 2>&1`);
      assert.match(out, /200$/, `${service} on ${port}: ${out}`);
      assert.match(out, new RegExp(`"service": ?"${service}"`));
      assert.match(out, /"release": ?"v1"/);
    }
  });

  it("nothing of the project listens on 0.0.0.0 or ::", async () => {
    // systemd holds web's and api's sockets (socket units) and hands them to
    // gunicorn: a listener is the project's when its port is in the range or
    // one of the project's processes holds it.
    const pids = (await sh(host, `pgrep -u ${project} || true`)).trim().split("\n").filter(Boolean);
    const listeners = await sh(host, "sudo ss -ltnpH");
    const ours = listeners.split("\n").filter((l) => /:815\d\s/.test(l) || pids.some((p) => l.includes(`pid=${p},`)));
    assert.equal(ours.length, 2, `web and api listen:\n${listeners}`);
    for (const l of ours) assert.match(l, /^LISTEN\s+\d+\s+\d+\s+127\.0\.0\.1:815[01]\s.*gunicorn/, l);
    assert.equal(
      (await sh(host, `systemctl is-active ${project}-web.socket ${project}-api.socket`)).trim(),
      "active\nactive",
    );
  });

  it("builds the Python environment as the service user, then leaves it root's and read-only to the services", async () => {
    // uv's cache is written during the build only: its files belong to whoever ran uv.
    const cacheOwners = await sh(host, `sudo find /opt/ayna/${project}/.uv-cache -type f -printf '%u\\n' | sort -u`);
    assert.equal(cacheOwners.trim(), project, "uv ran as the service user");
    const envOwners = await sh(host, `sudo find /opt/ayna/${project}/venvs -mindepth 1 -printf '%u\\n' | sort -u`);
    assert.equal(envOwners.trim(), "root");
    const writable = await sh(
      host,
      `sudo -u ${project} find /opt/ayna/${project}/venvs -mindepth 1 -writable -print -quit 2>/dev/null || true`,
    );
    assert.equal(writable.trim(), "", "the service user cannot change its environment");
  });

  it("runs as the non-root service user from releases/current, env file 0600", async () => {
    const user = await sh(host, `ps -o user= -C gunicorn | sort -u`);
    assert.equal(user.trim(), project);
    assert.equal((await sh(host, `sudo readlink /opt/ayna/${project}/releases/current`)).trim(), "v1");
    assert.equal(
      (await sh(host, `sudo stat -c '%a %U %G' /opt/ayna/${project}/shared/.env.staging`)).trim(),
      `600 ${project} ${project}`,
    );
    const dirs = await sh(
      host,
      `sudo sh -c 'cd /opt/ayna/${project} && stat -c "%n %a %U %G" releases shared shared/media shared/backups logs venvs'`,
    );
    assert.equal(
      dirs,
      [
        `releases 750 root ${project}`,
        `shared 750 ${project} ${project}`,
        `shared/media 750 ${project} ${project}`,
        `shared/backups 750 ${project} ${project}`,
        `logs 750 ${project} ${project}`,
        `venvs 750 root ${project}`,
        "",
      ].join("\n"),
    );
  });

  it("lands hostile values verbatim in the service environment and runs none of them", async () => {
    const pid = (await sh(host, `systemctl show -P MainPID ${project}-web`)).trim();
    const environ = await sh(host, `sudo cat /proc/${pid}/environ | base64 -w0`);
    const vars = Buffer.from(environ, "base64").toString("utf8").split("\0");
    assert.ok(vars.includes(`HOSTILE_VALUE=${hostile}`), "the value reaches the service byte for byte");
    assert.equal((await sh(host, "ls /tmp/pwned-dollar /tmp/pwned-tick 2>/dev/null | wc -l")).trim(), "0");
    assert.ok(
      vars.some((v) => /^SECRET_KEY=[A-Za-z0-9]{50}$/.test(v)),
      "a generated SECRET_KEY",
    );
  });

  it("a secret changed by up appears nowhere but the env file: CLI output, stack outputs, state, config file, host journal, audit log, host files, deployer files, process arguments on both machines sampled during up", async () => {
    const started = Date.now();
    const envRel = `opt/ayna/${project}/shared/.env.staging`;
    const token = `sweep-${crypto.randomBytes(24).toString("hex")}`;
    // Everything the run writes to temp lands in the stack's dir, searched below.
    const tmp = path.join(stack.dir, "tmp");
    fs.mkdirSync(tmp, { recursive: true });
    const marker = path.join(stack.dir, "sweep-start");
    fs.writeFileSync(marker, "");
    const savedTmp = stack.env["TMPDIR"];
    stack.env["TMPDIR"] = tmp;
    const sampler = await startProcSampler();
    let preview: CliResult, up: CliResult;
    let sample: ProcSample;
    try {
      await stack.setConfig("secretEnv.SWEEP_TOKEN", token, { path: true, secret: true });
      preview = await stack.ok(["preview", "--diff"]);
      up = await stack.ok(["up", "--yes", "--skip-preview"]);
    } finally {
      sample = await sampler.stop();
      if (savedTmp === undefined) delete stack.env["TMPDIR"];
      else stack.env["TMPDIR"] = savedTmp;
    }
    const runMs = Date.now() - started;
    // The release, and the deploy plan that records it.
    assert.equal(resourceSummary(up.stdout)["updated"], 2, `the env change is a release:\n${up.stdout}`);

    const key = (
      await sh(host, `sudo sed -n 's/^SECRET_KEY="\\(.*\\)"$/\\1/p' /opt/ayna/${project}/shared/.env.staging`)
    ).trim();
    assert.equal(key.length, 50, "a generated SECRET_KEY in the env file");
    const keyLines = host.privateKey.split("\n").filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
    // A line from the middle: the first lines of every OpenSSH key are alike, the middle ones are the key's own.
    assert.ok(keyLines.length >= 3, "the SSH private key has base64 lines");
    const secrets = {
      SWEEP_TOKEN: token,
      SECRET_KEY: key,
      "an SSH private key line": keyLines[Math.floor(keyLines.length / 2)]!,
    };

    // Positive controls: the token is where it belongs, and the sampler ran on both machines during the up.
    const envFile = await sh(host, `sudo cat /opt/ayna/${project}/shared/.env.staging`);
    assert.ok(envFile.includes(`SWEEP_TOKEN="${token}"`), "the env file holds the token");
    const hostCmds = sample.cmdlines.host;
    const machineCmds = sample.cmdlines.machine;
    assert.ok(
      hostCmds.some((c) => c.includes("ayna-release")),
      `the sampler saw ayna-release on the host (${sample.processes.host} host processes)`,
    );
    assert.ok(
      machineCmds.some((c) => c.includes("pulumi-resource-ayna")),
      `the sampler saw the provider on this machine (${sample.processes.machine} processes)`,
    );

    const sweepStarted = Date.now();
    const texts: Record<string, string> = {
      "preview output": preview.stdout + preview.stderr,
      "up output": up.stdout + up.stderr,
      "stack outputs": (await stack.ok(["stack", "output", "--json"])).stdout,
      state: await stack.exportState(),
      "config file": fs.readFileSync(stack.configFile, "utf8"),
      // Every field of every entry: messages, and the command lines journald records with them.
      "host journal": await sh(host, "sudo journalctl --no-pager -o export"),
      "audit log": await sh(host, `sudo cat /opt/ayna/${project}/logs/deploy-audit.log`),
      "host process arguments": hostCmds.join("\n"),
      "deployer process arguments": machineCmds.join("\n"),
    };
    const upper = await grepTree(host.upperDir, secrets);
    assert.deepEqual(upper["SWEEP_TOKEN"], [envRel], "the search of the host's files finds the env file");
    const hostTmpfs = await hostTmpfsHits(host, secrets);
    const archives = archiveDir(stack.env);
    const leaks = [
      ...findLeaks(texts, secrets),
      ...findLeaks(
        { state: texts["state"]!, "config file": texts["config file"]! },
        { "the hostile value": "second line" },
      ),
      ...treeLeaks(upper, "host file", [envRel]),
      ...treeLeaks(hostTmpfs, "host tmpfs file"),
      ...treeLeaks(await grepTree(stack.dir, secrets), `deployer file ${stack.dir}/`),
      ...treeLeaks(await grepTree(archives, secrets), `deployer file ${archives}/`),
      ...treeLeaks(await grepTree(os.homedir(), secrets, { newer: marker, prune: [archives] }), "deployer file ~/"),
    ];
    process.stderr.write(
      `      sampler: ${sample.rounds} rounds; ${sample.processes.host} host and ${sample.processes.machine} machine processes, ` +
        `${hostCmds.length} and ${machineCmds.length} distinct command lines` +
        `${sample.dropped ? ` (${sample.dropped} dropped)` : ""}\n` +
        `      sweep: preview + up ${(runMs / 1000).toFixed(1)} s, search ${((Date.now() - sweepStarted) / 1000).toFixed(1)} s\n`,
    );
    assert.deepEqual(leaks, [], `secrets where they must not be:\n${leaks.join("\n")}`);
  });

  it("scores 5.0 or lower on systemd-analyze security for every unit", async () => {
    for (const role of roles) {
      const out = await sh(host, `sudo systemd-analyze security --no-pager ${project}-${role}.service | tail -n 1`);
      const score = Number(/exposure level for \S+: ([\d.]+)/.exec(out)?.[1]);
      process.stderr.write(`      systemd-analyze security ${project}-${role}: ${score}\n`);
      assert.ok(score <= 5.0, out);
    }
  });

  it("a second up makes 0 changes and runs 0 remote commands", async () => {
    const before = await logins(host);
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    const after = await logins(host);
    const summary = resourceSummary(r.stdout);
    assert.deepEqual(Object.keys(summary), ["unchanged"], r.stdout);
    assert.equal(after - before, 1, `pulumi up made ${after - before - 1} SSH logins`);
    process.stderr.write(`      no-op up: ${(r.ms / 1000).toFixed(1)} s\n`);
  });

  it("a unit edited by hand and a service stopped by hand: refresh finds both, up --refresh repairs both", async () => {
    const unit = `/etc/systemd/system/${project}-celery.service`;
    await sh(host, `sudo sh -c 'echo "# edited by hand" >> ${unit} && systemctl stop ${project}-beat.service'`);
    const preview = await stack.ok(["preview", "--refresh", "--diff"]);
    // The release checks its env file and units; each service's activation checks the service.
    for (const name of ["web1-deploy", "web1-celery-activate", "web1-beat-activate"]) {
      assert.ok(preview.stdout.includes(`::${name}]`), `the preview names ${name}:\n${preview.stdout}`);
    }
    await stack.ok(["up", "--refresh", "--yes", "--skip-preview"]);
    assert.equal((await sh(host, `grep -c 'edited by hand' ${unit} || true`)).trim(), "0", "the unit is ours again");
    const state = await sh(
      host,
      `systemctl show -P NeedDaemonReload ${project}-celery.service; systemctl is-active ${project}-celery.service ${project}-beat.service`,
    );
    assert.equal(state, "no\nactive\nactive\n", "reloaded, and both services running");
    const again = await stack.ok(["up", "--refresh", "--yes", "--skip-preview"]);
    assert.deepEqual(Object.keys(resourceSummary(again.stdout)), ["unchanged"], again.stdout);
  });

  it("an env change previews as a release of the same code with a new env file, and restarts through the gate", async () => {
    await stack.setConfig("env.FEATURE_FLAG", "on", { path: true });
    const preview = await stack.ok(["preview", "--diff"]);
    // Every resource the preview would change, by name (the stack itself is always listed).
    const touched = [...preview.stdout.matchAll(/\[urn=(urn:pulumi:[^\]]+)\]/g)]
      .map((m) => m[1]!.split("::"))
      .filter((parts) => parts[2] !== "pulumi:pulumi:Stack")
      .map((parts) => parts[3])
      .sort();
    assert.deepEqual(touched, ["web1-deploy", "web1-plan"], preview.stdout);
    assert.match(preview.stdout, /env:/, "the preview says the env file changed");
    // The env file's content stays masked: the key is named by the deploy plan
    // (the preview's diagnostics, on stderr), never its value.
    const printed = preview.stdout + preview.stderr;
    assert.deepEqual(
      printed
        .split("\n")
        .filter((l) => l.includes("FEATURE_FLAG"))
        .map((l) => l.trim()),
      ["env keys: added FEATURE_FLAG"],
      printed,
    );
    const pidBefore = (await sh(host, `systemctl show -P MainPID ${project}-web`)).trim();
    const r = await stack.ok(["up", "--yes", "--skip-preview"]);
    assert.equal(resourceSummary(r.stdout)["updated"], 2, r.stdout);
    const pidAfter = (await sh(host, `systemctl show -P MainPID ${project}-web`)).trim();
    assert.notEqual(pidAfter, pidBefore, "web restarted");
    assert.match(
      await sh(host, `sudo grep FEATURE_FLAG /opt/ayna/${project}/shared/.env.staging`),
      /FEATURE_FLAG="on"/,
    );
    const audit = (await sh(host, `sudo tail -n 1 /opt/ayna/${project}/logs/deploy-audit.log`)).trim();
    assert.match(audit, /from=v1\tto=v1\t.*result=ok\tconfig \(env file\)$/, audit);
  });

  describe("bad config fails with the key and the fix, and touches no host", () => {
    // A folder that says nothing of its dependencies (requirements files and
    // a pyproject without a lock are locked here: layouts.e2e).
    const bareApp = path.join(os.tmpdir(), `ayna-bare-app-${process.pid}`);
    before(() => {
      fs.mkdirSync(bareApp, { recursive: true });
      fs.writeFileSync(path.join(bareApp, "manage.py"), "");
    });
    after(() => fs.rmSync(bareApp, { recursive: true, force: true }));

    const cases: { name: string; set: [string, string, { path?: boolean; secret?: boolean }?][]; expect: RegExp }[] = [
      {
        name: "an unknown key",
        set: [["projcet", "x"]],
        expect: /ayna-deploy:projcet: unknown key \(did you mean "project"\?\)/,
      },
      {
        name: "a port outside the registry range",
        set: [["services.web.port", "8100", { path: true }]],
        expect: /ayna-deploy:services\.web\.port: 8100 is outside demoapp's range 8150-8159; use 8150/,
      },
      {
        name: "a project name with spaces and shell characters",
        set: [["project", "demo app;rm"]],
        expect: /ayna-deploy:project: invalid value; expected 3-40 lower-case letters/,
      },
      {
        name: "a missing required secret",
        set: [["secretEnv.DATABASE_URL", "", { path: true, secret: true }]],
        expect: /ayna-deploy:secretEnv\.DATABASE_URL|DATABASE_URL is required/,
      },
      {
        name: "a malformed private key",
        set: [
          [
            "sshPrivateKey",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nTOTALLYNOTAKEY\n-----END OPENSSH PRIVATE KEY-----\n",
            { secret: true },
          ],
        ],
        expect: /privateKey.*is not a private key ssh can read/,
      },
      {
        name: "an app folder with neither pyproject.toml nor requirements files",
        set: [["app.path", bareApp, { path: true }]],
        expect:
          /ayna-deploy:app\.path: \S+ has neither pyproject\.toml nor a requirements file; set app\.path to the folder holding the app's pyproject\.toml \(or requirements\.txt\)/,
      },
    ];
    for (const c of cases) {
      it(`rejects ${c.name} at preview`, async () => {
        const file = stack.copyConfig(c.name.replace(/\W+/g, "-"));
        for (const [k, v, o] of c.set) await stack.setConfig(k, v, { ...o, configFile: file });
        const before = await logins(host);
        const r = await stack.run(["preview"], { configFile: file });
        const out = r.stdout + r.stderr;
        assert.notEqual(r.code, 0, out);
        assert.match(out, c.expect);
        assert.ok(!out.includes("TOTALLYNOTAKEY") && !out.includes("PRIVATE KEY-----\nb3"), "no key material");
        assert.equal((await logins(host)) - before, 1, "preview made no SSH login");
      });
    }

    it("fails on an unreachable host at up within a bounded time, naming the fix", async () => {
      const file = stack.copyConfig("unreachable");
      await stack.setConfig("hosts[0].port", "2", { path: true, configFile: file });
      const r = await stack.run(["up", "--yes", "--skip-preview"], { configFile: file, timeoutMs: 120_000 });
      assert.notEqual(r.code, 0);
      assert.match(
        r.stdout + r.stderr,
        /the new connection does not work: ssh to deploy@\S+:2: connection refused \(is sshd running, and is the port right\?\)/,
      );
      assert.ok(r.ms < 60_000, `took ${r.ms} ms`);
      // The working release is untouched.
      assert.match(await sh(host, "curl -s http://127.0.0.1:8150/health"), /"release": ?"v1"/);
    });
  });
});
