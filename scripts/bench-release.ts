// Benchmark, one run on one fresh test host, side by side:
//   1. `pulumi up` of an empty program (the engine's floor on this backend),
//   2. a no-op `pulumi up` of the real program (nothing changed),
//   3. a code-only release by this program (`pulumi up` after a code change),
//   4. the same release steps by a plain ssh/bash script (upload, unpack,
//      migrate, collectstatic, switch, reload, wait for the new release).
// Usage: npx ts-node --transpile-only scripts/bench-release.ts [rounds]
// Prints a Markdown table with medians, the machine and the command.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildArchive } from "../local/archive";
import { argv } from "../builders/shell";
import { PulumiStack, repoRoot } from "../test/support/pulumi";
import { sshArgs, startHost, stopAllHosts, TestHost } from "../test/support/testhost";

const rounds = Number(process.argv[2] ?? "5");
const project = "demoapp";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function touch(app: string, tag: string): void {
  fs.writeFileSync(path.join(app, "core", "build_tag.py"), `BUILD_TAG = ${JSON.stringify(tag)}\n`);
}

/** The release steps as a careful hand-written script would do them, over one ssh session. */
function handScript(rel: string): string {
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
    "run migrate --noinput",
    "run collectstatic --noinput",
    `sudo ln -sfn ${rel} ${root}/releases/.tmp && sudo mv -Tf ${root}/releases/.tmp ${root}/releases/current`,
    `sudo systemctl reload ${project}-web ${project}-api`,
    `sudo systemctl restart ${project}-celery ${project}-beat`,
    `for p in 8150 8151; do until curl -fs http://127.0.0.1:$p/health | grep -q '"release": *"${rel}"'; do sleep 0.1; done; done`,
  ].join("\n");
}

async function timeHand(host: TestHost, app: string, rel: string): Promise<number> {
  const archive = buildArchive(app);
  const started = process.hrtime.bigint();
  execFileSync("ssh", [...sshArgs(host), "--", argv("bash", "-c", handScript(rel))], {
    input: fs.readFileSync(archive.path),
    stdio: ["pipe", "ignore", "inherit"],
  });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
  const host = await startHost({ name: `bench-${process.pid}` });
  const stack = await PulumiStack.create(`bench${process.pid}`);
  const empty = await PulumiStack.create(`empty${process.pid}`, path.join(repoRoot, "test", "fixtures", "empty"));
  try {
    await stack.configureHost(project, host);
    const app = await stack.configureSampleApp(project);
    touch(app, "initial");
    await stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
    await empty.ok(["up", "--yes", "--skip-preview"]);

    const emptyUp: number[] = [];
    const noop: number[] = [];
    const release: number[] = [];
    const hand: number[] = [];
    for (let i = 0; i < rounds; i++) {
      emptyUp.push((await empty.ok(["up", "--yes", "--skip-preview"])).ms);
      noop.push((await stack.ok(["up", "--yes", "--skip-preview"])).ms);
      touch(app, `bench-${i}`);
      release.push((await stack.ok(["up", "--yes", "--skip-preview"])).ms);
      hand.push(await timeHand(host, app, `h${i + 1}`));
    }
    const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
    const m = (xs: number[]) => (median(xs) / 1000).toFixed(2);
    const target = median(emptyUp) + 1.5 * median(hand);
    const lines = [
      `Measured ${new Date().toISOString()} on ${os.hostname()}: ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
        `one Debian 13 test host (systemd-nspawn), file state backend. Medians of ${rounds} rounds, seconds.`,
      "",
      "| what | median | all rounds |",
      "| --- | --- | --- |",
      `| empty program, \`pulumi up\` (engine floor) | ${m(emptyUp)} | ${emptyUp.map((x) => (x / 1000).toFixed(2)).join(" ")} |`,
      `| real program, no-op \`pulumi up\` | ${m(noop)} | ${noop.map((x) => (x / 1000).toFixed(2)).join(" ")} |`,
      `| code-only release, \`pulumi up\` | ${m(release)} | ${release.map((x) => (x / 1000).toFixed(2)).join(" ")} |`,
      `| same steps, hand ssh/bash script | ${m(hand)} | ${hand.map((x) => (x / 1000).toFixed(2)).join(" ")} |`,
      "",
      `Target (issue): release <= empty up + 1.5 x hand script = ${(target / 1000).toFixed(2)} s; measured ${m(release)} s ` +
        `(${median(release) <= target ? "met" : "not met"}).`,
      "",
      "Reproduce: `npx ts-node --transpile-only scripts/bench-release.ts " +
        rounds +
        "` (needs scripts/toolchain.sh and root).",
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    await stack.remove();
    await empty.remove();
    await stopAllHosts();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
