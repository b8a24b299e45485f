// No-op `pulumi up` of one or more checkouts of this program, side by side with
// the empty program (the engine's floor), each deployed to its own fresh test
// host. Rounds alternate between the programs so they share the machine's load.
// Also counts the SSH logins each no-op `up` made (there should be none).
//
//   npx ts-node --transpile-only scripts/bench-noop.ts [ROUNDS] [PROGRAM_DIR...]
//
// PROGRAM_DIR defaults to this checkout; pass an older one (a `git worktree`
// with node_modules and its plugins built) to compare before and after.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PulumiStack, repoRoot } from "../test/support/pulumi";
import { sshExec, startHost, stopAllHosts, TestHost } from "../test/support/testhost";

const rounds = Number(process.argv[2] ?? "5");
const programs = process.argv.slice(3).length > 0 ? process.argv.slice(3) : [repoRoot];
const project = "demoapp";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function logins(host: TestHost): Promise<number> {
  const r = await sshExec(
    { ...host, user: "root" },
    "journalctl --no-pager -o cat -u ssh.service | grep -c 'Accepted publickey for deploy ' || true",
  );
  return Number(r.stdout.trim());
}

async function main(): Promise<void> {
  const empty = await PulumiStack.create(`noopempty${process.pid}`, path.join(repoRoot, "test", "fixtures", "empty"));
  const targets: { dir: string; stack: PulumiStack; host: TestHost; ms: number[]; logins: number[] }[] = [];
  try {
    await empty.ok(["up", "--yes", "--skip-preview"]);
    for (const [i, dir] of programs.entries()) {
      const host = await startHost({ name: `noop-${process.pid}-${i}` });
      const stack = await PulumiStack.create(`noop${i}p${process.pid}`, path.resolve(dir));
      await stack.configureHost(project, host);
      await stack.configureSampleApp(project);
      await stack.ok(["up", "--yes", "--skip-preview"], { timeoutMs: 900_000 });
      targets.push({ dir, stack, host, ms: [], logins: [] });
    }
    const emptyMs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      emptyMs.push((await empty.ok(["up", "--yes", "--skip-preview"])).ms);
      for (const t of targets) {
        const before = await logins(t.host);
        t.ms.push((await t.stack.ok(["up", "--yes", "--skip-preview"])).ms);
        // The harness itself logs in as root, so only the program's logins (as deploy) count.
        t.logins.push((await logins(t.host)) - before);
      }
    }
    const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
    const s = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(" ");
    const lines = [
      `Measured ${new Date().toISOString()} on ${os.hostname()}: ${os.cpus().length} cores (${cpu}), ` +
        `${Math.round(os.totalmem() / 2 ** 30)} GiB, load average ${os.loadavg()[0]!.toFixed(1)} at the end. ` +
        `Medians of ${rounds} rounds, seconds.`,
      "",
      "| program | median | all rounds | SSH logins per no-op up |",
      "| --- | --- | --- | --- |",
      `| empty program (engine floor) | ${(median(emptyMs) / 1000).toFixed(2)} | ${s(emptyMs)} | - |`,
      ...targets.map((t) => `| ${t.dir} | ${(median(t.ms) / 1000).toFixed(2)} | ${s(t.ms)} | ${t.logins.join(" ")} |`),
      "",
      `Reproduce: \`npx ts-node --transpile-only scripts/bench-noop.ts ${rounds} ${programs.join(" ")}\``,
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    for (const t of targets) await t.stack.remove();
    await empty.remove();
    await stopAllHosts();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
