// The operator surface (standard v2.0 "Required Makefile Targets"): every
// make target run for real against a live stack, the way an operator types
// it, with the stack's config file given as CONFIG_FILE. One host, the sample
// app deployed once; the targets then act on it in turn.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { MakeResult, makeOk as makeOkIn, runMake } from "../support/make";
import { PulumiStack, repoRoot } from "../support/pulumi";
import { startHost, stopHost, TestHost } from "../support/testhost";
import { servedRelease, sh, touchCode } from "../support/sampleApp";

const project = "demoapp";
const units = ["web", "api", "celery", "beat"].map((r) => `${project}-${r}.service`);
const envFile = `/opt/ayna/${project}/shared/.env.staging`;
const apiToken = `plan-probe-token-${process.pid}`;

/** The deploy plan's lines for a host as the CLI printed them (indentation dropped), one list per printing. */
function plansIn(out: string, host: string): string[][] {
  const plans: string[][] = [];
  const lines = out.split("\n");
  lines.forEach((l, i) => {
    if (!l.trim().endsWith(`deploy plan for ${host}:`)) return;
    const plan: string[] = [];
    for (const next of lines.slice(i + 1)) {
      const m = /^\s+((?:release|code|python environment|migrations|env keys|unit files|services|gate)\b.*)$/.exec(
        next,
      );
      if (!m) break;
      plan.push(m[1]!.trimEnd());
    }
    // The progress display also repeats the heading alone on the resource's status line.
    if (plan.length > 0) plans.push(plan);
  });
  return plans;
}

describe("operator surface: make targets on a live stack", function () {
  this.timeout(900_000);
  let host: TestHost;
  let stack: PulumiStack;
  let app: string;

  const make = (target: string, vars: string[] = [], opts: { input?: string; stack?: boolean } = {}) =>
    runMake(stack, target, vars, opts);
  const makeOk = (target: string, vars: string[] = [], opts: { input?: string } = {}): Promise<MakeResult> =>
    makeOkIn(stack, target, vars, opts);

  function assertUnits(status: string, state: RegExp): void {
    for (const unit of units)
      assert.match(status, new RegExp(`${unit.replace(".", "\\.")}\\s+${state.source}`), status);
  }

  before(async () => {
    host = await startHost();
    stack = await PulumiStack.create(`ops${process.pid}`);
    await stack.configureHost(project, host);
    app = await stack.configureSampleApp(project);
    // Generous: under CI load (two e2e files side by side) a cold start takes several seconds.
    await stack.setConfig("release.healthTimeoutSeconds", "30", { path: true });
    await stack.setConfig("env.FEATURE_FLAG", "off", { path: true });
    await stack.setConfig("secretEnv.API_TOKEN", apiToken, { path: true, secret: true });
    touchCode(app, "v1");
    const r = await stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    process.stderr.write(`      cold deploy of v1: ${(r.ms / 1000).toFixed(1)} s\n`);
  });

  after(async () => {
    await stack?.remove();
    if (host) await stopHost(host);
  });

  it("a target without STACK stops at once and names the fix", async () => {
    const r = await make("status", [], { stack: false });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /make status: STACK is required: make status STACK=staging \(or STACK=production\)/);
    assert.equal(r.stdout, "");
  });

  it("status: the serving release v1 with its SHA, every unit active, health, lock and audit", async () => {
    const { stdout } = await makeOk("status");
    assert.match(stdout, /^web1 {2}deploy@/m);
    assert.match(stdout, /release {3}v1 {2}sha content-[0-9a-f]{12}/);
    assertUnits(stdout, /active \(running\)/);
    assert.match(stdout, /web {2}http:\/\/127\.0\.0\.1:8150\/health {2}200 {2}release v1/);
    assert.match(stdout, /api {2}http:\/\/127\.0\.0\.1:8151\/health {2}200 {2}release v1/);
    assert.match(stdout, /lock {6}free/);
    assert.match(stdout, /from=none {2}to=v1 {2}.*result=ok/);
  });

  it("stop: every unit inactive; start: all active again", async () => {
    await makeOk("stop");
    assertUnits((await makeOk("status", ["HOST=web1"])).stdout, /inactive \(dead\)/);
    assert.match(await sh(host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8150/health || true"), /000/);
    // start prints each unit's state once systemctl has returned.
    assertUnits((await makeOk("start")).stdout, /active \(running\)/);
    assert.equal(await servedRelease(host), "v1");
  });

  it("restart: new processes for every unit, healthy again", async () => {
    const pids = async () =>
      (await sh(host, `systemctl show -P MainPID ${units.join(" ")}`))
        .split("\n")
        .filter((l) => l.trim() !== "") // one value per unit, with a blank line between
        .map(Number);
    const before = await pids();
    const r = await makeOk("restart");
    assertUnits(r.stdout, /active \(running\)/);
    const after = await pids();
    after.forEach((pid, i) => assert.ok(pid > 0 && pid !== before[i], `${units[i]}: ${before[i]} -> ${pid}`));
    assert.equal(await servedRelease(host), "v1");
  });

  it("logs (FOLLOW=0): journal lines of each unit, then exits", async () => {
    const { stdout } = await makeOk("logs", ["FOLLOW=0", "LINES=300"]);
    for (const unit of units) assert.match(stdout, new RegExp(` ${unit.replace(".", "\\.")}\\[\\d+\\]: `), unit);
  });

  it("migrate: as the service user with the env file, nothing left to apply", async () => {
    const r = await makeOk("migrate");
    assert.match(r.stdout, /No migrations to apply/);
  });

  it("shell: piped Python runs in the app's shell", async () => {
    const r = await makeOk("shell", [], { input: "import os\nprint(1+1, os.getuid() != 0)\n" });
    assert.match(r.stdout, /^2 True$/m);
  });

  it("validate: passes on the live host; a world-readable env file fails its checks, by name; a refreshed preview shows the drift and up --refresh repairs it", async () => {
    const good = await makeOk("validate");
    assert.doesNotMatch(good.stdout, /✗/);
    assert.match(
      good.stdout,
      /✓ env file shared\/\.env\.staging is 0600, owned by demoapp: regular file, demoapp:demoapp 0600/,
    );
    assert.match(good.stdout, /✓ demoapp-web\.service systemd-analyze security exposure <= 5\.0: \d\.\d/);
    assert.match(good.stdout, /✓ every port of the project is bound on 127\.0\.0\.1 inside 8150-8159/);
    assert.match(good.stdout, /validate ops\d+: \d+ passed, 0 failed on 1 host\(s\)/);
    await sh(host, `sudo chmod 0644 ${envFile}`);
    try {
      const bad = await make("validate");
      assert.notEqual(bad.code, 0, bad.out);
      assert.match(
        bad.stdout,
        /✗ env file shared\/\.env\.staging is 0600, owned by demoapp: regular file, demoapp:demoapp 0644/,
      );
      // The drift check (what the last release installed) names the same change.
      const failed = bad.stdout.split("\n").filter((l) => l.includes("✗"));
      assert.equal(failed.length, 2, `only the env file's checks fail:\n${bad.stdout}`);
      assert.match(
        failed[1]!,
        /✗ env file and units are the ones the last release installed: .*\.env\.staging is not mode 0600/,
      );
      assert.match(bad.stdout, /2 failed on 1 host\(s\)/);
      const preview = await stack.ok(["preview", "--refresh", "--diff"]);
      assert.ok(
        preview.stdout.includes("::web1-deploy]"),
        `the refreshed preview names the release:\n${preview.stdout}`,
      );
      await stack.ok(["up", "--refresh", "--yes", "--skip-preview"], { timeoutMs: 600_000 });
      assert.equal((await sh(host, `sudo stat -c '%a %U' ${envFile}`)).trim(), "600 demoapp");
      const repaired = await makeOk("validate");
      assert.match(repaired.stdout, /validate ops\d+: \d+ passed, 0 failed on 1 host\(s\)/);
      assert.equal(await servedRelease(host), "v1");
    } finally {
      await sh(host, `sudo chmod 0600 ${envFile}`);
    }
  });

  it("validate: a unit edited by hand and a service stopped by hand fail by name; up --refresh repairs both; validate passes", async () => {
    const unit = `/etc/systemd/system/${project}-celery.service`;
    await sh(
      host,
      `sudo sh -c 'echo "# edited by hand" >> ${unit} && systemctl daemon-reload && systemctl stop ${project}-beat.service'`,
    );
    const bad = await make("validate");
    assert.notEqual(bad.code, 0, bad.out);
    const failed = bad.stdout.split("\n").filter((l) => l.includes("✗"));
    assert.ok(
      failed.some((l) =>
        /✗ env file and units are the ones the last release installed: .*demoapp-celery\.service was changed or removed/.test(
          l,
        ),
      ),
      bad.stdout,
    );
    assert.ok(
      failed.some((l) => /✗ demoapp-beat\.service active: inactive/.test(l)),
      bad.stdout,
    );
    assert.equal(failed.length, 2, `only those checks fail:\n${bad.stdout}`);
    await stack.ok(["up", "--refresh", "--yes", "--skip-preview"], { timeoutMs: 600_000 });
    assert.equal((await sh(host, `grep -c 'edited by hand' ${unit} || true`)).trim(), "0", "the unit is ours again");
    const good = await makeOk("validate");
    assert.match(good.stdout, /✓ env file and units are the ones the last release installed: as installed/);
    assert.match(good.stdout, /validate ops\d+: \d+ passed, 0 failed on 1 host\(s\)/);
  });

  it("help: every target of the standard (and preview, backup, restore), and the variables", async () => {
    const r = await makeOk("help", [], {});
    for (const t of [
      "deploy",
      "rollback",
      "migrate",
      "shell",
      "logs",
      "start",
      "stop",
      "restart",
      "status",
      "validate",
      "backup",
      "restore",
      "preview",
    ])
      assert.match(r.stdout, new RegExp(`^  make ${t}\\b`, "m"), `${t} in:\n${r.stdout}`);
    assert.match(r.stdout, /STACK=/);
  });

  it("deploy: production without YES=1 and without a terminal is refused before anything runs", async () => {
    const prod = stack.copyConfig("production");
    await stack.setConfig("stage", "production", { configFile: prod });
    const r = await make("deploy", [`STACK=${stack.name}`, `CONFIG_FILE=${prod}`], { stack: false });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /refusing to deploy to production without a confirmation.*YES=1/);
    assert.doesNotMatch(r.out, /Previewing/);
  });

  it("deploy YES=1 after new code, one new migration and one changed env key: the plan line by line at preview and at up, no secret; v2 released", async () => {
    touchCode(app, "v2");
    fs.writeFileSync(
      path.join(app, "core", "migrations", "0002_plan_probe.py"),
      [
        "from django.db import migrations",
        "",
        "",
        "class Migration(migrations.Migration):",
        '    dependencies = [("core", "0001_initial")]',
        "    operations = []",
        "",
      ].join("\n"),
    );
    await stack.setConfig("env.FEATURE_FLAG", "on", { path: true });
    const r = await makeOk("deploy", ["YES=1"]);
    process.stderr.write(
      r.out
        .split("\n")
        .filter((l) => /deploy plan|^\s+(release|code|python|migrations|env keys|unit files|services|gate)/.test(l))
        .map((l) => `      | ${l}\n`)
        .join(""),
    );
    assert.match(r.stdout, /Previewing update[\s\S]*Updating/);
    assert.match(r.stdout, /release\s*: "v1" => "v2"/);
    // Once in the preview, once in the update (the two go to different streams of make).
    const plans = plansIn(r.out, "web1");
    assert.equal(plans.length, 2, `the plan is printed at preview and at up:\n${r.out}`);
    const rest = [
      "python environment: unchanged",
      "migrations to run: core.0002_plan_probe",
      "env keys: changed FEATURE_FLAG",
      "unit files: unchanged",
      "services: web hands over to new processes (no dropped requests); api hands over to new processes (no dropped requests); celery restarts; beat restarts",
      "gate: candidates and the health check before the switch; rolled back automatically on failure",
    ];
    const code = "code: 1 changed, 1 added, 0 removed: core/build_tag.py, core/migrations/0002_plan_probe.py";
    // The app copy is outside git: its SHA is `content-` and the archive's hash.
    const release = /^release: v1 \((content-[0-9a-f]{12})\) -> (a new release|v2) \((content-[0-9a-f]{12})\)$/;
    const [atPreview, atUp] = [release.exec(plans[0]![0]!), release.exec(plans[1]![0]!)];
    assert.ok(atPreview && atUp, `release lines: ${plans[0]![0]} / ${plans[1]![0]}`);
    assert.equal(atPreview[2], "a new release");
    assert.equal(atUp[2], "v2");
    assert.notEqual(atPreview[1], atPreview[3]);
    assert.deepEqual([atUp[1], atUp[3]], [atPreview[1], atPreview[3]]);
    assert.deepEqual(plans[0]!.slice(1), [code, ...rest]);
    assert.deepEqual(plans[1]!.slice(1), [code, ...rest]);
    assert.ok(!r.out.includes(apiToken), "the secret env value appears in make deploy's output");
    // Kept as a stack output, the plan of the update that last changed the host.
    const outputs = JSON.parse((await stack.ok(["stack", "output", "--json", "--show-secrets"])).stdout) as {
      hosts: { name: string; plan: string[] }[];
    };
    assert.deepEqual(outputs.hosts[0]!.plan, plans[1]);
    assert.ok(!JSON.stringify(outputs).includes(apiToken));
    assert.equal(await servedRelease(host), "v2");
    const applied = await makeOk("shell", [], {
      input:
        "from django.db.migrations.recorder import MigrationRecorder as R\n" +
        "print(sorted(m.name for m in R.Migration.objects.filter(app='core')))\n",
    });
    assert.match(applied.stdout, /\['0001_initial', '0002_plan_probe'\]/);
  });

  it("rollback: back to v1", async () => {
    const r = await makeOk("rollback");
    assert.match(r.stdout, /rolled back to v1 in [\d.]+s: web1: v1/);
    assert.equal(await servedRelease(host), "v1");
    // Every pulumi call it made used CONFIG_FILE: no stack file appeared beside Pulumi.yaml.
    assert.ok(!fs.existsSync(path.join(repoRoot, `Pulumi.${stack.name}.yaml`)), "stray stack file in the repo");
  });

  it("a refused rollback (TO=v99) leaves the stack config byte for byte as it was", async () => {
    const before = fs.readFileSync(stack.configFile);
    const r = await make("rollback", ["TO=v99"]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /release v99 does not exist on \S+ \(pruned or never deployed\); available: v1 v2/);
    assert.match(r.stderr, /rollback to v99 did not complete: .*the stack config \(.*\) is as it was/);
    assert.ok(fs.readFileSync(stack.configFile).equals(before), "config file unchanged");
    assert.equal(await servedRelease(host), "v1");
  });
});
