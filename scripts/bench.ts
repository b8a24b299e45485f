// npm run bench -- [--rounds N] [--hosts 4,8] [--only empty,noop,release,hand,rollback,hosts,docker] [--program DIR]
//
// The performance benchmark of issue 10, on this machine and its test hosts
// (systemd-nspawn, sharing the machine's cores), file state backend, stack
// defaults unless a row says otherwise:
//   empty     `pulumi up` of an empty program: the engine's floor, as a
//             TypeScript program (ts-node, the default template) and as plain
//             JavaScript (what this program runs, compiled ahead)
//   noop      `pulumi up` of this program with nothing changed, and the SSH
//             logins it made (read from the host's sshd journal)
//   release   a code-only release by `pulumi up`
//   hand      the same release steps by a careful ssh/bash script
//   rollback  `npm run rollback` to the previous release (same lockfile) and
//             `--to` an older one with another lockfile (nothing may be built)
//   hosts     a code-only release to 4 and 8 hosts in one batch
//   docker    the same code-only release and rollback in Docker mode
//             (runtime: docker, Caddy in front), on a host with its own engine
// Wall seconds and CPU-seconds of the whole machine (/proc/stat) per row,
// medians over the rounds, then the issue's ratios. --program runs another
// checkout of this program (a `git worktree` with node_modules) for a before/after.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildArchive } from "../local/archive";
import { argv } from "../builders/shell";
import { PulumiStack, repoRoot } from "../test/support/pulumi";
import { sh, touchCode } from "../test/support/sampleApp";
import { baseImageTarball, sshArgs, sshExec, startHost, stopAllHosts, TestHost } from "../test/support/testhost";

const project = "demoapp";
const sections = ["empty", "noop", "release", "hand", "rollback", "hosts", "docker"] as const;
type Section = (typeof sections)[number];

interface Options {
  rounds: number;
  hosts: number[];
  only: Set<Section>;
  program: string;
}

function parse(args: string[]): Options {
  const o: Options = { rounds: 5, hosts: [4, 8], only: new Set(sections), program: repoRoot };
  for (let i = 0; i < args.length; i++) {
    const v = args[i + 1] ?? "";
    switch (args[i]) {
      case "--rounds":
        o.rounds = Number(v);
        break;
      case "--hosts":
        o.hosts = v.split(",").filter(Boolean).map(Number);
        break;
      case "--only":
        o.only = new Set(v.split(",").filter(Boolean) as Section[]);
        for (const s of o.only) if (!sections.includes(s)) throw new Error(`--only ${s}: one of ${sections.join(",")}`);
        break;
      case "--program":
        o.program = path.resolve(v);
        break;
      default:
        throw new Error(`unknown argument ${args[i]}`);
    }
    i++;
  }
  if (!(o.rounds >= 1)) throw new Error("--rounds takes a number of at least 1");
  return o;
}

/** CPU-seconds the whole machine has spent (every process, kernel included), from /proc/stat. */
function machineCpu(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait.
  const [user, nice, system, , , irq, softirq, steal] = f;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
}

interface Sample {
  s: number;
  cpu: number;
}

async function measure(fn: () => Promise<unknown>): Promise<Sample> {
  const cpu0 = machineCpu();
  const t0 = process.hrtime.bigint();
  await fn();
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, cpu: machineCpu() - cpu0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const rows: { what: string; samples: Sample[]; extra?: string }[] = [];
const med = (what: string) => {
  const r = rows.find((x) => x.what === what);
  return r ? { s: median(r.samples.map((x) => x.s)), cpu: median(r.samples.map((x) => x.cpu)) } : undefined;
};
function record(what: string, sample: Sample, extra?: string): void {
  let r = rows.find((x) => x.what === what);
  if (!r) rows.push((r = { what, samples: [] }));
  r.samples.push(sample);
  if (extra !== undefined) r.extra = r.extra ? `${r.extra} ${extra}` : extra;
  process.stderr.write(
    `  ${what}: ${sample.s.toFixed(2)} s, ${sample.cpu.toFixed(1)} CPU-s${extra ? ` (${extra})` : ""}\n`,
  );
}

async function logins(host: TestHost): Promise<number> {
  const r = await sshExec(
    { ...host, user: "root" },
    "journalctl --no-pager -o cat -u ssh.service | grep -c 'Accepted publickey for deploy ' || true",
  );
  return Number(r.stdout.trim());
}

/** The release steps as a careful hand-written script would do them, over one ssh session. */
export function handScript(rel: string): string {
  const root = `/opt/ayna/${project}`;
  return [
    "set -eu",
    `R=${root}/releases/${rel}`,
    'sudo mkdir -p "$R"',
    'sudo tar -xzf - -C "$R"',
    `sudo ln -sfn "$(sudo readlink ${root}/releases/current/.venv)" "$R/.venv"`,
    `printf '{"release": "%s", "sha": "hand"}\\n' ${rel} | sudo tee "$R/.ayna-release.json" >/dev/null`,
    `sudo install -d -o ${project} -g ${project} "$R/staticfiles"`,
    `sudo chown -R root:${project} "$R" && sudo chown ${project} "$R/staticfiles" && sudo chmod -R g+rX,o-rwx "$R"`,
    `run() { sudo systemd-run --quiet --wait --pipe --collect --uid=${project} --gid=${project} -p EnvironmentFile=${root}/shared/.env.staging -p WorkingDirectory="$R" "$R/.venv/bin/python" manage.py "$@" >/dev/null; }`,
    // Migrations are skipped when none is pending, as a careful script would.
    "if run migrate --check --noinput 2>/dev/null; then :; else run migrate --noinput; fi",
    "run collectstatic --noinput",
    `sudo ln -sfn ${rel} ${root}/releases/.tmp && sudo mv -Tf ${root}/releases/.tmp ${root}/releases/current`,
    // A restart: the app is preloaded, so a reload (HUP) would keep the old code.
    `sudo systemctl restart ${project}-web ${project}-api`,
    `for p in 8150 8151; do for i in $(seq 600); do curl -fs http://127.0.0.1:$p/health | grep -q '"release": *"${rel}"' && break; [ $i -lt 600 ] || exit 1; sleep 0.1; done; done`,
    `sudo systemctl restart ${project}-celery ${project}-beat`,
  ].join("\n");
}

function handRelease(host: TestHost, app: string, rel: string): void {
  const archive = buildArchive(app);
  execFileSync("ssh", [...sshArgs(host), "--", argv("bash", "-c", handScript(rel))], {
    input: fs.readFileSync(archive.path),
    stdio: ["pipe", "ignore", "inherit"],
  });
}

/** `npm run rollback` as an operator types it, from the program's folder. */
function npmRollback(stack: PulumiStack, program: string, extra: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ["run", "--silent", "rollback", "--", "--stack", stack.name, "--config-file", stack.configFile];
    const child = spawn("npm", [...args, ...extra], {
      cwd: program,
      env: stack.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`npm run rollback exited ${code}\n${out}`)),
    );
  });
}

async function served(stack: PulumiStack): Promise<string> {
  const hosts = JSON.parse((await stack.ok(["stack", "output", "hosts", "--json"])).stdout) as { release: string }[];
  return hosts[0]!.release;
}

const up = (stack: PulumiStack) => stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 1_800_000 });

async function defaults(stack: PulumiStack): Promise<void> {
  // configureSampleApp shortens the watch window for the tests; the bench runs the default.
  await stack.ok(["config", "rm", "--path", "release.watchSeconds"]);
}

/** A stack of the program on a fresh test host with the sample app, deployed once. */
async function deployed(o: Options, name: string): Promise<{ host: TestHost; stack: PulumiStack; app: string }> {
  const host = await startHost({ name: `${name}-${process.pid}` });
  const stack = await PulumiStack.create(`${name}${process.pid}`, o.program);
  await stack.configureHost(project, host);
  const app = await stack.configureSampleApp(project);
  await defaults(stack);
  // The rollback rows go back to a release seven releases old.
  await stack.setConfig("release.keep", "20", { path: true });
  await up(stack);
  return { host, stack, app };
}

async function singleHost(o: Options): Promise<void> {
  const stacks: PulumiStack[] = [];
  try {
    const empty = await PulumiStack.create(`empty${process.pid}`, path.join(repoRoot, "test", "fixtures", "empty"));
    stacks.push(empty);
    await empty.ok(["up", "--yes", "--skip-preview"]);
    const emptyJs = await PulumiStack.create(
      `emptyjs${process.pid}`,
      path.join(repoRoot, "test", "fixtures", "empty-js"),
    );
    stacks.push(emptyJs);
    await emptyJs.ok(["up", "--yes", "--skip-preview"]);
    // The program's rows on one host; the hand script's on a host of its own,
    // deployed the same way, so neither finds the other's releases.
    const { host, stack, app } = await deployed(o, "bench");
    stacks.push(stack);
    const hand = o.only.has("hand") ? await deployed(o, "hand") : undefined;
    if (hand) stacks.push(hand.stack);
    for (let i = 0; i < o.rounds; i++) {
      if (o.only.has("empty")) {
        record("empty program, `pulumi up` (engine floor)", await measure(() => up(empty)));
        record("empty JavaScript program (no ts-node), `pulumi up`", await measure(() => up(emptyJs)));
      }
      if (o.only.has("noop")) {
        const before = await logins(host);
        const m = await measure(() => up(stack));
        record("no-op `pulumi up`", m, `${(await logins(host)) - before}`);
      }
      if (o.only.has("release")) {
        touchCode(app, `bench-${i}`);
        record("code-only release, `pulumi up`", await measure(() => up(stack)));
      }
      if (hand) {
        touchCode(hand.app, `hand-${i}`);
        record(
          "same steps, hand ssh/bash script",
          await measure(async () => handRelease(hand.host, hand.app, `h${i + 1}`)),
        );
      }
    }
    if (o.only.has("rollback")) {
      // An older release A on another lockfile, then B and C on today's.
      const lock = fs.readFileSync(path.join(app, "uv.lock"), "utf8");
      fs.writeFileSync(path.join(app, "uv.lock"), `# bench: another lockfile\n${lock}`);
      touchCode(app, "rollback-a");
      await up(stack);
      const a = await served(stack);
      fs.writeFileSync(path.join(app, "uv.lock"), lock);
      for (let i = 0; i < Math.min(o.rounds, 3); i++) {
        await stack.run(["config", "rm", "--path", "release.pin"]);
        touchCode(app, `rollback-b${i}`);
        await up(stack);
        const b = await served(stack);
        touchCode(app, `rollback-c${i}`);
        await up(stack);
        record("`npm run rollback` to the previous release", await measure(() => npmRollback(stack, o.program, [])));
        if ((await served(stack)) !== b) throw new Error(`rollback did not reach ${b}`);
        const envs = await sh(host, `sudo ls -l --time-style=+%s /opt/ayna/${project}/venvs`);
        const m = await measure(() => npmRollback(stack, o.program, ["--to", a]));
        if ((await served(stack)) !== a) throw new Error(`rollback --to ${a} did not reach it`);
        const built = (await sh(host, `sudo ls -l --time-style=+%s /opt/ayna/${project}/venvs`)) !== envs;
        record("`npm run rollback --to` an older release, other lockfile", m, built ? "built" : "none-built");
      }
    }
  } finally {
    for (const s of stacks) await s.remove();
    await stopAllHosts();
  }
}

async function manyHosts(o: Options, n: number): Promise<void> {
  const hosts = await Promise.all(
    Array.from({ length: n }, (_, i) => startHost({ name: `bench-${process.pid}-${i}` })),
  );
  const stack = await PulumiStack.create(`bench${n}h${process.pid}`, o.program);
  try {
    await stack.configureHost(project, hosts[0]!);
    const app = await stack.configureSampleApp(project);
    await defaults(stack);
    for (const [i, h] of hosts.entries()) {
      if (i === 0) continue;
      await stack.setConfig(`hosts[${i}].name`, `web${i + 1}`, { path: true });
      await stack.setConfig(`hosts[${i}].address`, h.address, { path: true });
      await stack.setConfig(`hosts[${i}].user`, h.user, { path: true });
      await stack.setConfig(`hosts[${i}].hostKey`, h.hostKey, { path: true });
    }
    await stack.setConfig("release.batchSize", String(n), { path: true });
    await up(stack);
    for (let i = 0; i < Math.min(o.rounds, 2); i++) {
      touchCode(app, `hosts-${i}`);
      record(`code-only release to ${n} hosts, one batch`, await measure(() => up(stack)));
    }
  } finally {
    await stack.remove();
    await stopAllHosts();
  }
}

/** Docker mode's release and rollback, on a host of its own with the same defaults (issue 13's side-by-side times). */
async function dockerMode(o: Options): Promise<void> {
  const [host, tarball] = await Promise.all([
    startHost({ name: `bench-dock-${process.pid}`, docker: true }),
    baseImageTarball(),
  ]);
  const stack = await PulumiStack.create(`benchdock${process.pid}`, o.program);
  try {
    await stack.configureHost(project, host);
    const app = await stack.configureSampleApp(project);
    await defaults(stack);
    await stack.setConfig("secretEnv.DATABASE_URL", `sqlite:////var/lib/${project}/db.sqlite3`, {
      path: true,
      secret: true,
    });
    await stack.setConfig("runtime", "docker");
    await stack.setConfig("docker.baseImage", "ayna/debian-python:trixie", { path: true });
    await stack.setConfig("docker.baseImageFile", tarball, { path: true });
    await stack.setConfig("proxy.enabled", "true", { path: true });
    await stack.setConfig("proxy.domains[0]", "bench.test", { path: true });
    // Django answers only the names it is told of: Caddy passes the client's Host on.
    await stack.setConfig("env.ALLOWED_HOSTS", "127.0.0.1,localhost,bench.test", { path: true });
    await stack.setConfig("proxy.tls", "internal", { path: true });
    await up(stack);
    for (let i = 0; i < o.rounds; i++) {
      touchCode(app, `dock-${i}`);
      record("Docker mode: code-only release, `pulumi up`", await measure(() => up(stack)));
      const before = await served(stack);
      touchCode(app, `dock-${i}b`);
      await up(stack);
      record(
        "Docker mode: `npm run rollback` to the previous release",
        await measure(() => npmRollback(stack, o.program, [])),
      );
      if ((await served(stack)) !== before) throw new Error(`docker rollback did not reach ${before}`);
      await stack.run(["config", "rm", "--path", "release.pin"]);
    }
  } finally {
    await stack.remove();
    await stopAllHosts();
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const started = new Date().toISOString();
  await singleHost(o);
  if (o.only.has("hosts")) for (const n of o.hosts) await manyHosts(o, n);
  if (o.only.has("docker")) await dockerMode(o);

  const cpuModel = /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  const f = (x: number) => x.toFixed(2);
  const lines = [
    `Measured ${started} on ${os.hostname()}: ${os.cpus().length} cores (${cpuModel}), ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB; program ${o.program}; test hosts are systemd-nspawn ` +
      `containers on the same cores; file state backend; stack defaults (watchSeconds 15, healthTimeoutSeconds 60).`,
    "",
    "| what | median s | median CPU-s | all rounds (s) | notes |",
    "| --- | --- | --- | --- | --- |",
    ...rows.map((r) => {
      const ss = r.samples.map((x) => x.s);
      const cs = r.samples.map((x) => x.cpu);
      return `| ${r.what} | ${f(median(ss))} | ${median(cs).toFixed(1)} | ${ss.map(f).join(" ")} | ${r.extra ?? ""} |`;
    }),
    "",
  ];
  const empty = med("empty program, `pulumi up` (engine floor)");
  const noop = med("no-op `pulumi up`");
  const rel = med("code-only release, `pulumi up`");
  const hand = med("same steps, hand ssh/bash script");
  const rb = med("`npm run rollback` to the previous release");
  const rbOld = med("`npm run rollback --to` an older release, other lockfile");
  const ratio = (what: string, got: number, limit: number, unit = "") =>
    `- ${what}: ${f(got)}${unit} (target <= ${f(limit)}${unit}): ${got <= limit ? "met" : "NOT met"}`;
  if (empty && noop) lines.push(ratio("no-op up / empty up", noop.s / empty.s, 1.3));
  const emptyJs = med("empty JavaScript program (no ts-node), `pulumi up`");
  if (emptyJs && noop) lines.push(ratio("no-op up / empty JavaScript up", noop.s / emptyJs.s, 1.3));
  if (rel && hand) lines.push(ratio("code-only release / hand script, wall", rel.s / hand.s, 1.0));
  if (rel && hand) lines.push(ratio("code-only release / hand script, CPU-s", rel.cpu / hand.cpu, 0.6));
  if (empty && rb) lines.push(ratio("rollback to previous", rb.s, empty.s + 2, " s"));
  if (empty && rbOld) lines.push(ratio("rollback to older, other lockfile", rbOld.s, empty.s + 2, " s"));
  for (const n of o.hosts) {
    const m = med(`code-only release to ${n} hosts, one batch`);
    if (m) lines.push(ratio(`${n} hosts: wall - CPU-s/2`, m.s - m.cpu / 2, 4, " s"));
  }
  lines.push(
    "",
    `Reproduce: \`npm run bench -- ${process.argv.slice(2).join(" ")}\` (as root, after scripts/toolchain.sh).`,
  );
  process.stdout.write(lines.join("\n") + "\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
