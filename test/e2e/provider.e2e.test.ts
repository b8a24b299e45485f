// The provider's logic with its real SSH executor (AynaProvider + SshPool,
// in-process; the gRPC face has its own contract test) against one real
// Debian test host: what runs there, what the host's process list shows, and
// that timeouts and cancels stop the command on the host, not only here.
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";
import { ed25519KeyPair } from "../support/keys";
import { AynaProvider } from "../../plugins/provider/provider";
import { wrapSecret } from "../../plugins/provider/secrets";
import { SshPool } from "../../plugins/provider/ssh";
import { sshExec, startHost, stopHost, TestHost } from "../support/testhost";

type Props = Record<string, unknown>;

const cmdUrn = "urn:pulumi:e2e::ayna-deploy::ayna:components:Host$ayna:remote:Command::t1";
const fileUrn = "urn:pulumi:e2e::ayna-deploy::ayna:components:Host$ayna:remote:File::t1";
/** Unique per run, so values and markers cannot come from anything else on the host. */
const tag = randomBytes(4).toString("hex");

function fingerprintOf(hostKey: string): string {
  const blob = Buffer.from(hostKey.trim().split(/\s+/)[1]!, "base64");
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

const sha256hex = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected the call to fail");
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("provider e2e: AynaProvider with the real SSH pool against a Debian test host", function () {
  this.timeout(60_000);
  let host: TestHost;
  let config: Props;
  const pools: SshPool[] = [];
  let p: AynaProvider;

  /** A provider instance as the engine makes one: CheckConfig, then Configure. */
  async function provider(cfg: Props): Promise<AynaProvider> {
    const pool = new SshPool();
    pools.push(pool);
    const prov = new AynaProvider(pool, "e2e");
    const checked = await prov.checkConfig({}, cfg);
    assert.deepEqual(checked.failures, []);
    prov.configure(checked.inputs);
    return prov;
  }

  function checked(on: AynaProvider, urn: string, news: Props): Props {
    const r = on.check(urn, {}, news);
    assert.deepEqual(r.failures, []);
    return r.inputs;
  }

  async function sh(command: string): Promise<string> {
    const r = await sshExec(host, command);
    assert.equal(r.code, 0, `${command}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** Every process's full argument list on the host, one per line. */
  const processList = () => sh("ps -ww -eo args");
  const runs = async (line: string) => (await processList()).split("\n").includes(line);

  before(async function () {
    this.timeout(600_000); // a cold image cache builds the image first
    host = await startHost();
    config = {
      address: host.address,
      port: host.port,
      user: host.user,
      privateKey: host.privateKey,
      hostKey: host.hostKey,
      connectAttempts: 2,
    };
    p = await provider(config);
  });

  after(async function () {
    this.timeout(180_000);
    for (const pool of pools) pool.closeAll();
    if (host) await stopHost(host);
  });

  it("Command create, update and delete run with their environment (sent on stdin) and stdin", async () => {
    const odd = `it's "odd" $(whoami) \`id\` ${tag}\nsecond line\n\n`;
    const news: Props = {
      create: `printf 'create|%s|%s|' "$GREETING" "$ODD"; cat`,
      delete: `{ printf 'delete|%s|%s|' "$GREETING" "$ODD"; cat; } > /tmp/ayna-e2e-deleted-${tag}`,
      environment: { GREETING: "hello ✓", ODD: odd },
      stdin: "stdin-1\n",
      captureStdout: true,
    };
    const created = await p.create(cmdUrn, checked(p, cmdUrn, news));
    assert.equal(created.outs["stdout"], `create|hello ✓|${odd}|stdin-1\n`);

    const news2 = { ...news, update: `printf 'update|%s|' "$GREETING"; cat`, stdin: "stdin-2\n" };
    const inputs2 = checked(p, cmdUrn, news2);
    assert.deepEqual(p.diff(cmdUrn, created.outs, inputs2).detailedDiff, { update: "add", stdin: "update" });
    const updated = await p.update(cmdUrn, created.outs, inputs2);
    assert.equal(updated.outs["stdout"], "update|hello ✓|stdin-2\n");

    await p.delete(cmdUrn, updated.outs);
    assert.equal(await sh(`cat /tmp/ayna-e2e-deleted-${tag}`), `delete|hello ✓|${odd}|stdin-2\n`);
  });

  it("Command with logStderr: what a successful run wrote to stderr on the host is its engine message, the secret in stdin scrubbed", async () => {
    const secret = `s3cret-${tag}`;
    const news: Props = {
      create: `read -r s; echo "release=v7"; printf 'health ok: v7\\nwarning: slow start\\ngot %s\\n' "$s" >&2`,
      stdin: wrapSecret(`${secret}\n`),
      captureStdout: true,
      logStderr: true,
    };
    const created = await p.create(cmdUrn, checked(p, cmdUrn, news));
    assert.equal(created.outs["stdout"], "release=v7\n");
    assert.deepEqual(created.messages, [
      { severity: "warning", text: "health ok: v7\nwarning: slow start\ngot [secret]" },
    ]);
    await p.delete(cmdUrn, created.outs);
  });

  it("Command with logStderr: each stderr line on the host reaches progress while the command still runs (1 s before it ends), secret scrubbed", async () => {
    const secret = `s3cret-${tag}`;
    const news: Props = {
      create: `read -r s; printf 'candidate ok: %s\\n' "$s" >&2; sleep 1; echo 'health ok: v8' >&2`,
      stdin: wrapSecret(`${secret}\n`),
      logStderr: true,
    };
    const seen: { text: string; at: number }[] = [];
    const created = await p.create(cmdUrn, checked(p, cmdUrn, news), (text) => seen.push({ text, at: Date.now() }));
    const ended = Date.now();
    assert.deepEqual(
      seen.map((s) => s.text),
      ["candidate ok: [secret]", "health ok: v8"],
    );
    assert.ok(ended - seen[0]!.at >= 800, `the first line came ${ended - seen[0]!.at} ms before the command ended`);
    await p.delete(cmdUrn, created.outs);
  });

  it("Command with redact: a value that reaches the host only base64-encoded is scrubbed from a failure's output", async () => {
    const token = `tok-${tag}-${randomBytes(6).toString("hex")}`;
    const news: Props = {
      create: `echo "$ENV_B64" | base64 -d; echo "the app said: token is $(echo "$ENV_B64" | base64 -d | cut -d= -f2)" >&2; exit 3`,
      environment: { ENV_B64: wrapSecret(Buffer.from(`TOKEN=${token}\n`).toString("base64")) },
      redact: wrapSecret([token]),
    };
    const e = await rejection(p.create(cmdUrn, checked(p, cmdUrn, news)));
    assert.match(e.message, /exited with 3:\nTOKEN=\[secret\]\n+the app said: token is \[secret\]$/);
    assert.ok(!e.message.includes(token), e.message);
  });

  it("while a command runs, the host's process list holds no secret and no environment value", async () => {
    const secretEnv = `env-secret-${tag}`;
    const plainEnv = `env-plain-${tag}`;
    const stdinSecret = `stdin-secret-${tag}`;
    const command = `cat >/dev/null; sleep 4; : ps-marker-${tag}`;
    const running = p.create(
      cmdUrn,
      checked(p, cmdUrn, {
        create: command,
        environment: { TOKEN: wrapSecret(secretEnv), PLAIN: plainEnv },
        stdin: wrapSecret(stdinSecret),
      }),
    );
    const outcome = running.then(
      () => undefined,
      (e: Error) => e,
    );
    let ps = "";
    await waitFor("the command to run", async () => (ps = await processList()).split("\n").includes("sleep 4"), 15_000);
    // What runs is the wrapper's `timeout` around the command text, and nothing else of ours.
    assert.ok(ps.split("\n").includes(`timeout -k 10 600 sh -c ${command}`), ps);
    for (const v of [secretEnv, plainEnv, stdinSecret]) {
      assert.ok(!ps.includes(v), `the process list shows ${v}`);
      assert.ok(!ps.includes(Buffer.from(v).toString("base64")), `the process list shows ${v} in base64`);
    }
    assert.equal(await outcome, undefined, "the command then finished");
  });

  it("a command with timeoutSeconds 3 that sleeps 60 fails after about 3 s, and its sleep is gone from the host", async () => {
    const started = Date.now();
    const e = await rejection(p.create(cmdUrn, checked(p, cmdUrn, { create: "sleep 60", timeoutSeconds: 3 })));
    const took = Date.now() - started;
    assert.match(e.message, /^command on deploy@[\d.]+:22 did not finish within 3s and was stopped/);
    assert.ok(took >= 2900 && took < 10_000, `took ${took} ms`);
    await waitFor("the sleep to be gone", async () => !(await runs("sleep 60")), 3000);
  });

  it("cancel() while a command sleeps (61 s) stops it on the host", async () => {
    const running = p.create(cmdUrn, checked(p, cmdUrn, { create: "sleep 61" }));
    const outcome = running.then(
      () => undefined,
      (e: Error) => e,
    );
    await waitFor("the sleep to run", () => runs("sleep 61"), 15_000);
    const started = Date.now();
    await p.cancel();
    const e = await outcome;
    assert.ok(e instanceof Error, "the create fails");
    assert.match(e.message, /^command on deploy@[\d.]+:22 cancelled \(stopped on the host\)$/);
    await waitFor("the sleep to be gone", async () => !(await runs("sleep 61")), 5000);
    assert.ok(Date.now() - started < 6000);
  });

  it("a pinned host key that does not match fails before running anything, naming both fingerprints", async () => {
    const wrongKey = ed25519KeyPair().public;
    const impostor = await provider({ ...config, hostKey: wrongKey });
    const marker = `/tmp/ayna-e2e-mismatch-${tag}`;
    const e = await rejection(impostor.create(cmdUrn, checked(impostor, cmdUrn, { create: `touch ${marker}` })));
    assert.ok(
      e.message.startsWith(
        `host key mismatch for deploy@${host.address}:${host.port}: ` +
          `pinned ssh-ed25519 ${fingerprintOf(wrongKey)}, offered ${fingerprintOf(host.hostKey)}.`,
      ),
      e.message,
    );
    assert.equal((await sshExec(host, `test -e ${marker}`)).code, 1, "the command did not run");
  });

  it("a new pinned host key that does not match is refused by CheckConfig's login, on hostKey", async () => {
    const wrongKey = ed25519KeyPair().public;
    const r = await p.checkConfig(config, { ...config, hostKey: wrongKey });
    assert.equal(r.failures.length, 1, JSON.stringify(r.failures));
    assert.equal(r.failures[0]!.property, "hostKey");
    assert.match(r.failures[0]!.reason, /^the new connection does not work: host key mismatch .* pinned .* offered /);
  });

  it("File: create, refresh that finds drift, update that repairs it, delete", async () => {
    const path = `/opt/ayna-e2e-${tag}/app.ini`;
    const inputs = checked(p, fileUrn, {
      path,
      content: "a=1\n",
      mode: "0640",
      owner: "root",
      group: "deploy",
      sudo: true,
    });
    const created = await p.create(fileUrn, inputs);
    const onHost = `sudo stat -c '%a %U %G' ${path} && sudo cat ${path} && sudo ls -A /opt/ayna-e2e-${tag}`;
    assert.equal(await sh(onHost), "640 root deploy\na=1\napp.ini\n", "content, mode, owner; no temp file");

    const fresh = await p.read(created.id, fileUrn, created.outs);
    assert.deepEqual(fresh, { id: path, props: created.outs });
    assert.equal(p.diff(fileUrn, fresh.props, inputs).changes, false);

    await sh(`echo tampered | sudo tee ${path} >/dev/null && sudo chmod 0666 ${path}`);
    const drifted = await p.read(created.id, fileUrn, created.outs);
    assert.equal(drifted.props["sha256"], sha256hex("tampered\n"));
    assert.equal(drifted.props["mode"], "0666");
    assert.deepEqual(p.diff(fileUrn, drifted.props, inputs).detailedDiff, { content: "update", mode: "update" });

    const repaired = await p.update(fileUrn, drifted.props, inputs);
    assert.equal(await sh(onHost), "640 root deploy\na=1\napp.ini\n");
    // The same state as created, with the repair counted as a second write.
    assert.deepEqual(repaired.outs, { ...created.outs, writes: 2 });

    await p.delete(fileUrn, repaired.outs);
    assert.equal((await sshExec(host, `sudo test -e ${path}`)).code, 1, "the file is gone");
    assert.deepEqual(await p.read(created.id, fileUrn, repaired.outs), { id: "", props: {} });
  });
});
