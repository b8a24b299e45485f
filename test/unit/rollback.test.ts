// npm run rollback's own process against a stand-in pulumi CLI (a script
// that logs its calls): what it asks the CLI, and what a Ctrl-C or a failed
// update leaves behind. The real CLI and hosts are in operator.e2e.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pulumiBinaryIn, repoRoot as repo } from "../../scripts/lib/toolchain";
import { chooseTarget, parseArgs } from "../../scripts/rollback";

// $1 is the subcommand; `up` succeeds at once (FAKE_UP=ok), fails at once
// (FAKE_UP=fail), or writes its pid and runs until a signal, which it logs and
// answers the way the CLI cancels an update: a moment later, exit 255.
const fakeCli = `#!/bin/bash
printf '%s\\n' "$*" >>"$FAKE_DIR/calls.log"
case "$1 $2" in
  "stack output") printf '{"hosts":[{"name":"web1","release":"v3","previousRelease":"v2"}]}\\n' ;;
  "config set") printf '  ayna-deploy:release:\\n    pin: %s\\n' "$5" >>"$FAKE_CONFIG" ;;
  up*)
    [ "$FAKE_UP" = ok ] && exit 0
    [ "$FAKE_UP" = fail ] && { echo "error: an update failed" >&2; exit 255; }
    trap 'echo INT >>"$FAKE_DIR/signals.log"; sleep 0.5; exit 255' INT
    trap 'echo TERM >>"$FAKE_DIR/signals.log"; sleep 0.5; exit 255' TERM
    echo $$ >"$FAKE_DIR/up.pid"
    while :; do sleep 0.05; done ;;
esac
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  dir: string;
  config: string;
  original: string;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) {
    // A stand-in update that outlived its rollback (a failing test) is stopped here.
    const pid = Number(fs.existsSync(path.join(d, "up.pid")) ? fs.readFileSync(path.join(d, "up.pid"), "utf8") : 0);
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone, as it should be
      }
    }
    fs.rmSync(d, { recursive: true, force: true });
  }
});

function setup(): { dir: string; config: string; original: string; env: NodeJS.ProcessEnv } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-rollback-"));
  dirs.push(dir);
  // Where rollback.ts looks for the CLI with AYNA_CACHE_DIR set as below.
  const bin = pulumiBinaryIn(path.join(dir, "cache"));
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  fs.writeFileSync(bin, fakeCli, { mode: 0o755 });
  const config = path.join(dir, "Pulumi.fake.yaml");
  const original = "config:\n  ayna-deploy:project: demoapp\n  ayna-deploy:release:\n    keep: 5\n";
  fs.writeFileSync(config, original);
  const env = { ...process.env, AYNA_CACHE_DIR: path.join(dir, "cache"), FAKE_DIR: dir, FAKE_CONFIG: config };
  return { dir, config, original, env };
}

/** Runs scripts/rollback.ts as npm run rollback does; `during` gets its pid once the update runs. */
function runRollback(extraEnv: NodeJS.ProcessEnv, during?: (pid: number, dir: string) => Promise<void>): Promise<Run> {
  const { dir, config, original, env } = setup();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["-r", "ts-node/register", "scripts/rollback.ts", "--stack", "fake", "--config-file", config],
      { cwd: repo, env: { ...env, ...extraEnv, TS_NODE_TRANSPILE_ONLY: "true" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, dir, config, original }));
    if (during) {
      const waitUp = async (): Promise<void> => {
        const deadline = Date.now() + 60_000;
        while (!fs.existsSync(path.join(dir, "up.pid"))) {
          if (Date.now() > deadline) throw new Error("the stand-in update never started");
          await new Promise((r) => setTimeout(r, 50));
        }
        await during(child.pid!, dir);
      };
      waitUp().catch(reject);
    }
  });
}

const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "");

describe("npm run rollback (scripts/rollback.ts) against a stand-in CLI", function () {
  this.timeout(90_000);

  it("parses pulumi's spellings of the flags and refuses a release name that is not vN", () => {
    assert.deepEqual(parseArgs(["-s", "prod", "--to=v2"], "/"), { stack: "prod", to: "v2" });
    assert.throws(() => parseArgs(["--stack", "prod", "--to", "2"], "/"), /--to 2: expected a release such as v2/);
    assert.throws(() => parseArgs(["--to", "v2"], "/"), /--stack is required/);
  });

  it("goes back to the release every host served before, and asks for --to when they disagree", () => {
    const h = (name: string, previousRelease: string) => ({ name, release: "v3", previousRelease });
    assert.equal(chooseTarget([h("web1", "v2"), h("web2", "v2")]), "v2");
    assert.throws(
      () => chooseTarget([h("web1", "v2"), h("web2", "v1")]),
      /the hosts do not agree on one previous release \(web1: v2, web2: v1\); name it with --to/,
    );
  });

  it("Ctrl-C twice during the update: the update gets one SIGINT and cancels, the config file is put back byte for byte, exit 130 naming the interruption", async () => {
    const run = await runRollback({}, async (pid, dir) => {
      // Both reach only the rollback's own process: the update runs in its own process group.
      process.kill(pid, "SIGINT");
      await new Promise((r) => setTimeout(r, 100));
      process.kill(pid, "SIGINT");
      assert.ok(fs.existsSync(path.join(dir, "up.pid")));
    });
    assert.equal(run.code, 130, run.stderr);
    assert.equal(read(path.join(run.dir, "signals.log")), "INT\n", "the update was told once");
    assert.equal(fs.readFileSync(run.config, "utf8"), run.original);
    assert.match(
      run.stderr,
      /rollback failed: rollback to v2 did not complete: interrupted; the stack config \(.*Pulumi\.fake\.yaml\) is as it was/,
    );
    const calls = read(path.join(run.dir, "calls.log")).split("\n");
    assert.match(calls[1]!, /^config set --path release\.pin v2 --stack fake --non-interactive --config-file /);
    assert.match(calls[2]!, /^up --yes --skip-preview --stack fake --message rollback to v2 --config-file /);
  });

  it("SIGTERM during the update is passed on once as well, with the same clean-up", async () => {
    const run = await runRollback({}, async (pid) => {
      process.kill(pid, "SIGTERM");
    });
    assert.equal(run.code, 130, run.stderr);
    assert.equal(read(path.join(run.dir, "signals.log")), "TERM\n");
    assert.equal(fs.readFileSync(run.config, "utf8"), run.original);
  });

  it("a failed update puts the config file back and exits 1 pointing at the update's output; no outputs are read after it", async () => {
    const run = await runRollback({ FAKE_UP: "fail" });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(fs.readFileSync(run.config, "utf8"), run.original);
    assert.match(
      run.stderr,
      /rollback to v2 did not complete: the update failed \(its output is above\); the stack config/,
    );
    const calls = read(path.join(run.dir, "calls.log")).trim().split("\n");
    assert.deepEqual(
      calls.map((c) => c.split(" ").slice(0, 2).join(" ")),
      ["stack output", "config set", "up --yes"],
    );
  });

  it("a rollback that succeeds runs the CLI three times (outputs, config set, up: no outputs read back) and names each host's release", async () => {
    const run = await runRollback({ FAKE_UP: "ok" });
    assert.equal(run.code, 0, run.stderr);
    const calls = read(path.join(run.dir, "calls.log")).trim().split("\n");
    assert.deepEqual(
      calls.map((c) => c.split(" ").slice(0, 2).join(" ")),
      ["stack output", "config set", "up --yes"],
    );
    assert.match(run.stdout, /^rolled back to v2 in [\d.]+s: web1: v2$/m);
    assert.match(fs.readFileSync(run.config, "utf8"), /pin: v2/);
  });
});
