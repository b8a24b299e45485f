// Unit tests of the ayna provider's logic (AynaProvider, free of gRPC) against
// a fake executor that records every call, and of the wrapper every remote
// command runs in (builders/remote.ts), partly through a real local `sh`.
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";
import { ed25519KeyPair } from "../support/keys";
import { removeFile, statFile, writeFileAtomic } from "../../builders/files";
import { envPrelude, remoteInvocation, splitPid, stopCommand } from "../../builders/remote";
import { AynaProvider, typeOfUrn } from "../../plugins/provider/provider";
import { isSecret, reveal, unknownValue, wrapSecret } from "../../plugins/provider/secrets";
import { Connection, ExecOptions, ExecResult, Executor, lineReader } from "../../plugins/provider/ssh";
import { DiffKind, DiffResult } from "../../plugins/provider/util";

type Props = Record<string, unknown>;

// ------------------------------------------------------------------ fixtures

const loginKey = ed25519KeyPair().private;
const otherLoginKey = ed25519KeyPair().private;
const hostKeyA = ed25519KeyPair().public;
const hostKeyB = ed25519KeyPair().public;

/** The fingerprint as `ssh-keygen -l` prints it, computed here rather than by the provider. */
function keygenFingerprint(hostKeyLine: string): string {
  const blob = Buffer.from(hostKeyLine.split(" ")[1]!, "base64");
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}
const identityA = `ssh-ed25519 ${keygenFingerprint(hostKeyA)}`;
const identityB = `ssh-ed25519 ${keygenFingerprint(hostKeyB)}`;

const sha256hex = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

/** What `statFile` prints for a file with this content and "mode owner group". */
function statAnswer(content: string, modeOwnerGroup: string): ExecResult {
  return ok(`${sha256hex(content)}  /some/path\n${modeOwnerGroup}\n`);
}

/** The provider config as CheckConfig hands it back (the key secret-wrapped). */
const configA: Props = {
  address: "10.0.0.5",
  port: 22,
  user: "deploy",
  privateKey: wrapSecret(loginKey),
  hostKey: hostKeyA,
};

const urnOf = (type: string, name: string) =>
  `urn:pulumi:dev::ayna-deploy::ayna:components:Host$ayna:components:Service$${type}::${name}`;
const cmdUrn = urnOf("ayna:remote:Command", "web1-activate");
const fileUrn = urnOf("ayna:remote:File", "web1-unit");
const secretUrn = "urn:pulumi:dev::ayna-deploy::ayna:random:Secret::db-password";

// Secret values used across tests; none may ever reach a command line.
const stdinSecret = "hunter2-stdin-secret";
const envSecret = "env-secret-Zq81";
const envPlain = "env-plain-value-77";
const fileSecret = "password=file-secret-Kx92";

/** A command with every input set, for the update and diff cases. */
const everyCommandInput: Props = {
  create: "install",
  update: "upgrade",
  delete: "remove",
  stdin: wrapSecret(stdinSecret),
  environment: { MODE: "prod" },
  triggers: ["sha-1"],
  timeoutSeconds: 60,
  captureStdout: true,
};

// ------------------------------------------------------------------ fake executor

interface ExecCall {
  conn: Connection;
  command: string;
  stdin?: string | Buffer;
  env?: Record<string, string>;
  timeoutSeconds?: number;
  onStderrLine?: (line: string) => void;
}

const ok = (stdout = "", stderr = ""): ExecResult => ({ code: 0, stdout, stderr });

class FakeExecutor implements Executor {
  readonly calls: ExecCall[] = [];
  /** Connections logged into without running anything. */
  readonly probes: Connection[] = [];
  cancelAllCalls = 0;
  closeAllCalls = 0;
  probeAnswer: (c: Connection) => Promise<void> = async () => undefined;
  constructor(public answer: (call: ExecCall) => ExecResult = () => ok()) {}

  async probe(c: Connection): Promise<void> {
    this.probes.push(c);
    await this.probeAnswer(c);
  }

  async exec(conn: Connection, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const call: ExecCall = { conn, command, ...opts };
    this.calls.push(call);
    return this.answer(call);
  }

  async cancelAll(): Promise<void> {
    this.cancelAllCalls++;
  }

  closeAll(): void {
    this.closeAllCalls++;
  }
}

/** A provider configured as the engine does it, with config as CheckConfig hands it back (see its tests). */
function providerFor(config: Props = configA, answer?: (call: ExecCall) => ExecResult) {
  const fake = new FakeExecutor(answer);
  const p = new AynaProvider(fake, "1.2.3");
  p.configure(config);
  return { p, fake };
}

/** Check as the engine calls it before create/update; fails the test on any check failure. */
function checked(p: AynaProvider, urn: string, news: Props, olds: Props = {}): Props {
  const r = p.check(urn, olds, news);
  assert.deepEqual(r.failures, [], "inputs pass check");
  return r.inputs;
}

/** Paths of `undefined` values at any depth ("Unexpected struct type" when encoded for the engine). */
function undefinedPaths(v: unknown, at = "$"): string[] {
  if (v === undefined) return [at];
  if (Array.isArray(v)) {
    const out: string[] = [];
    for (let i = 0; i < v.length; i++) out.push(...undefinedPaths(v[i], `${at}[${i}]`));
    return out;
  }
  if (typeof v === "object" && v !== null && !Buffer.isBuffer(v)) {
    return Object.entries(v).flatMap(([k, x]) => undefinedPaths(x, `${at}.${k}`));
  }
  return [];
}

/** What the engine needs of every output: no undefined anywhere, so it encodes as a Struct. */
function assertEngineSafe(outs: Props): void {
  assert.deepEqual(undefinedPaths(outs), [], "no output is undefined at any depth");
  assert.doesNotThrow(() => structproto.Struct.fromJavaScript(outs as Record<string, structproto.JavaScriptValue>));
}

/** Neither the executor's command nor the SSH command line built from it holds any of `words`. */
function assertNotOnCommandLines(calls: ExecCall[], words: string[]): void {
  assert.ok(calls.length > 0, "something was executed");
  for (const [i, c] of calls.entries()) {
    const sshLine = remoteInvocation(c.command, c.timeoutSeconds ?? 600);
    for (const w of words) {
      assert.ok(!c.command.includes(w), `exec #${i}: command holds ${JSON.stringify(w)}`);
      assert.ok(!sshLine.includes(w), `exec #${i}: ssh command line holds ${JSON.stringify(w)}`);
    }
  }
}

/** The part of a diff the engine acts on. */
function diffShape(d: DiffResult) {
  const sorted = (xs: string[]) => [...xs].sort();
  return {
    changes: d.changes,
    replaces: sorted(d.replaces),
    deleteBeforeReplace: d.deleteBeforeReplace,
    diffs: sorted(d.diffs),
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected the call to fail");
}

// ------------------------------------------------------------------ provider

describe("ayna provider (AynaProvider against a fake executor)", () => {
  it("reads the resource type from a nested or top-level URN", () => {
    assert.equal(typeOfUrn(cmdUrn), "ayna:remote:Command");
    assert.equal(typeOfUrn(secretUrn), "ayna:random:Secret");
  });

  describe("checkConfig", () => {
    const p = new AynaProvider(new FakeExecutor(), "1.2.3");
    const failed = async (news: Props) => (await p.checkConfig({}, news)).failures.map((f) => f.property);

    it("accepts a complete connection with a pinned host key, and the keys the engine adds", async () => {
      assert.deepEqual(await failed({ ...configA, version: "0.1.0", pluginDownloadURL: "", connectAttempts: 2 }), []);
    });

    it("accepts an empty config: a provider that only makes random secrets", async () => {
      assert.deepEqual(await failed({}), []);
    });

    it("rejects unknown keys, naming each", async () => {
      const r = await p.checkConfig({}, { ...configA, hostname: "x", connection: {} });
      assert.deepEqual(
        r.failures.map((f) => f.property),
        ["hostname", "connection"],
      );
      assert.match(r.failures[0]!.reason, /unknown setting; the ayna provider takes address, port, user/);
    });

    // A no-op `up` checks the provider's config on every run: the key in state
    // passed this check when it was set, and parsing it again would load ssh2.
    it("an unchanged config loads no SSH library and connects nowhere; a changed key is parsed", function () {
      this.timeout(30_000);
      const script = [
        'const { AynaProvider } = require("./plugins/provider/provider");',
        "const cfg = JSON.parse(process.env.CFG);",
        "const exec = { run() { throw new Error('ran') }, probe() { throw new Error('probed') }, cancelAll() {}, closeAll() {} };",
        'const p = new AynaProvider(exec, "0");',
        "p.checkConfig(cfg, cfg).then((r) => {",
        "  const loaded = () => Object.keys(require.cache).some((k) => k.includes('/node_modules/ssh2/'));",
        "  const before = loaded();",
        "  return p.checkConfig(cfg, { ...cfg, privateKey: 'not a key' }).then((r2) =>",
        "    console.log(JSON.stringify({ failures: r.failures, ssh2: before, changed: r2.failures.map((f) => f.property), after: loaded() })));",
        "});",
      ].join("\n");
      const r = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], {
        cwd: path.resolve(__dirname, "..", ".."),
        env: { ...process.env, CFG: JSON.stringify(configA) },
        encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { failures: [], ssh2: false, changed: ["privateKey"], after: true });
    });

    it("rejects a malformed private key without echoing it", async () => {
      const body = "c2VjcmV0LWtleS1tYXRlcmlhbC1aWlpa";
      const bad = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----\n`;
      const r = await p.checkConfig({}, { ...configA, privateKey: wrapSecret(bad) });
      assert.deepEqual(
        r.failures.map((f) => f.property),
        ["privateKey"],
      );
      assert.match(r.failures[0]!.reason, /not a private key ssh can read/);
      assert.ok(!JSON.stringify(r.failures).includes(body), "the key is not echoed in any failure");
    });

    for (const [what, hostKey] of [
      ["an unknown key type", "ssh-foo AAAAC3NzaC1lZDI1NTE5AAAA"],
      ["a blob that is not base64", "ssh-ed25519 not*base64"],
      ["a blob of another type than named", `ssh-rsa ${hostKeyA.split(" ")[1]}`],
      ["a known_hosts line with the host name", `10.0.0.5 ${hostKeyA}`],
    ]) {
      it(`rejects a malformed host key: ${what}`, async () => {
        const r = await p.checkConfig({}, { ...configA, hostKey });
        assert.deepEqual(
          r.failures.map((f) => f.property),
          ["hostKey"],
        );
        assert.match(r.failures[0]!.reason, /must look like "ssh-ed25519 AAAA\.\.\."/);
      });
    }

    it("requires a pinned host key unless insecureIgnoreHostKey is set (typed or as a string)", async () => {
      const { hostKey: _, ...unpinned } = configA;
      const r = await p.checkConfig({}, unpinned);
      assert.deepEqual(
        r.failures.map((f) => f.property),
        ["hostKey"],
      );
      assert.match(r.failures[0]!.reason, /required: pin the host's public key/);
      assert.deepEqual(await failed({ ...unpinned, insecureIgnoreHostKey: true }), []);
      assert.deepEqual(await failed({ ...unpinned, insecureIgnoreHostKey: "true" }), []);
      assert.deepEqual(await failed({ ...unpinned, insecureIgnoreHostKey: false }), ["hostKey"]);
    });

    it("keeps privateKey secret-wrapped: wraps a plain one and leaves a wrapped one as it is", async () => {
      const fromPlain = (await p.checkConfig({}, { ...configA, privateKey: loginKey })).inputs["privateKey"];
      assert.ok(isSecret(fromPlain));
      assert.equal(reveal(fromPlain), loginKey);
      const fromWrapped = (await p.checkConfig({}, configA)).inputs["privateKey"];
      assert.deepEqual(fromWrapped, wrapSecret(loginKey));
    });

    it("names what a partial connection lacks: the key and the host key", async () => {
      assert.deepEqual(await failed({ address: "10.0.0.5" }), ["privateKey", "hostKey"]);
    });

    it("rejects a bad port, user, connectTimeoutSeconds and connectAttempts", async () => {
      const props = await failed({
        ...configA,
        port: 70000,
        user: "Bad User",
        connectTimeoutSeconds: 0,
        connectAttempts: 1.5,
      });
      assert.deepEqual(props.sort(), ["connectAttempts", "connectTimeoutSeconds", "port", "user"]);
    });

    it("takes numbers given as strings (the older engine encoding)", async () => {
      assert.deepEqual(await failed({ ...configA, port: "2222", connectAttempts: "1" }), []);
    });

    it("does not validate values still unknown during preview, and still wraps the key", async () => {
      const r = await p.checkConfig({}, { address: unknownValue, privateKey: loginKey });
      assert.deepEqual(r.failures, []);
      assert.ok(isSecret(r.inputs["privateKey"]));
    });

    describe("a changed connection on an existing provider is proven by a login (probe)", () => {
      const moved: Props = { ...configA, address: "10.0.0.9", user: "ops", privateKey: wrapSecret(otherLoginKey) };

      it("logs in once with the new settings and executes nothing", async () => {
        const fake = new FakeExecutor();
        const r = await new AynaProvider(fake, "1.2.3").checkConfig(configA, moved);
        assert.deepEqual(r.failures, []);
        assert.equal(fake.probes.length, 1);
        const c = fake.probes[0]!;
        assert.deepEqual([c.host, c.user, c.privateKey, c.hostKey], ["10.0.0.9", "ops", otherLoginKey, hostKeyA]);
        assert.equal(fake.calls.length, 0);
      });

      for (const [what, olds, news] of [
        ["a first config (no connection before)", {}, configA],
        ["an unchanged config", configA, { ...configA }],
        ["a new config that is invalid", configA, { ...moved, port: 0 }],
        ["a new config still unknown (preview)", configA, { ...moved, address: unknownValue }],
      ] as [string, Props, Props][]) {
        it(`does not log in for ${what}`, async () => {
          const fake = new FakeExecutor();
          await new AynaProvider(fake, "1.2.3").checkConfig(olds, news);
          assert.equal(fake.probes.length, 0);
        });
      }

      it("skips the login when the executor cannot probe", async () => {
        const fake = new FakeExecutor();
        const bare: Executor = { exec: fake.exec.bind(fake), cancelAll: fake.cancelAll.bind(fake), closeAll: () => {} };
        assert.deepEqual((await new AynaProvider(bare, "1.2.3").checkConfig(configA, moved)).failures, []);
      });

      for (const [property, message] of [
        ["hostKey", "host key mismatch for ops@10.0.0.9:22: pinned ssh-ed25519 SHA256:a, offered SHA256:b."],
        ["privateKey", "ssh to ops@10.0.0.9:22: the host refused the key (check the user ...)"],
        ["address", "ssh to ops@10.0.0.9:22: connection refused (is sshd running, and is the port right?)"],
      ]) {
        it(`a failed login fails the check on ${property}, with the reason: ${message.slice(0, 40)}...`, async () => {
          const fake = new FakeExecutor();
          fake.probeAnswer = () => Promise.reject(new Error(message));
          const r = await new AynaProvider(fake, "1.2.3").checkConfig(configA, moved);
          assert.deepEqual(r.failures, [{ property, reason: `the new connection does not work: ${message}` }]);
        });
      }
    });
  });

  describe("diffConfig", () => {
    const p = new AynaProvider(new FakeExecutor(), "1.2.3");

    it("a new address, port, user and key is an in-place update of the provider, never a replacement", () => {
      const news = {
        ...configA,
        address: "10.0.0.9",
        port: 2222,
        user: "ops",
        privateKey: wrapSecret(otherLoginKey),
      };
      const d = p.diffConfig(configA, news);
      assert.deepEqual(diffShape(d), {
        changes: true,
        replaces: [],
        deleteBeforeReplace: false,
        diffs: ["address", "port", "privateKey", "user"],
      });
      assert.deepEqual(d.detailedDiff, { address: "update", port: "update", user: "update", privateKey: "update" });
    });

    it("reports added and removed settings as add and delete", () => {
      const d = p.diffConfig({ ...configA, connectAttempts: 2 }, { ...configA, connectTimeoutSeconds: 5 });
      assert.deepEqual(d.detailedDiff, { connectTimeoutSeconds: "add", connectAttempts: "delete" });
      assert.deepEqual(d.replaces, []);
    });

    it("a new pinned host key is an update of the provider too (its resources are the ones replaced)", () => {
      const d = p.diffConfig(configA, { ...configA, hostKey: hostKeyB });
      assert.deepEqual(d.detailedDiff, { hostKey: "update" });
      assert.deepEqual(d.replaces, []);
    });

    it("sees no change when only the secretness of the key differs", () => {
      assert.equal(p.diffConfig(configA, { ...configA, privateKey: loginKey }).changes, false);
    });
  });

  describe("check", () => {
    it("puts the host's identity (the pinned key's fingerprint) into commands and files, over any given one", () => {
      const { p } = providerFor();
      assert.equal(checked(p, cmdUrn, { create: "true", hostIdentity: "forged" })["hostIdentity"], identityA);
      assert.equal(checked(p, fileUrn, { path: "/etc/x", content: "" })["hostIdentity"], identityA);
    });

    it("gives an unpinned host the identity 'unpinned'", () => {
      const { hostKey: _, ...unpinned } = configA;
      const { p } = providerFor({ ...unpinned, insecureIgnoreHostKey: true });
      assert.equal(checked(p, cmdUrn, { create: "true" })["hostIdentity"], "unpinned");
    });

    it("leaves random secrets' inputs as they are", () => {
      const { p } = providerFor();
      assert.deepEqual(p.check(secretUrn, {}, { length: 32 }), { inputs: { length: 32 }, failures: [] });
    });

    it("fails a command or file under a provider without connection, with a clear message", async () => {
      const fake = new FakeExecutor();
      const p = new AynaProvider(fake, "1.2.3");
      p.configure({ version: "0.1.0" });
      for (const [urn, news] of [
        [cmdUrn, { create: "true" }],
        [fileUrn, { path: "/etc/x", content: "" }],
      ] as const) {
        const r = p.check(urn, {}, news);
        assert.deepEqual(
          r.failures.map((f) => f.property),
          ["provider"],
        );
        assert.match(r.failures[0]!.reason, /needs an ayna provider with a connection: create one per host/);
      }
      const e = await rejection(p.create(cmdUrn, { create: "true" }));
      assert.match(e.message, /ayna:remote:Command needs an ayna provider with a connection \(address, user/);
      assert.equal(fake.calls.length, 0);
      // Such a provider still makes random secrets.
      assert.ok(isSecret((await p.create(secretUrn, {})).outs["value"]));
    });

    it("does not fail check while the provider's connection is unknown (preview), and create says so", async () => {
      const fake = new FakeExecutor();
      const p = new AynaProvider(fake, "1.2.3");
      p.configure({ ...configA, address: unknownValue });
      assert.deepEqual(p.check(cmdUrn, {}, { create: "true" }).failures, []);
      const e = await rejection(p.create(cmdUrn, { create: "true" }));
      assert.match(e.message, /the provider's connection is not known yet/);
      assert.equal(fake.calls.length, 0);
    });

    const commandFailures: [string, Props, string[]][] = [
      ["no create text", { update: "x" }, ["create"]],
      [
        "a secret in a command line",
        { create: wrapSecret("a"), update: wrapSecret("b"), delete: wrapSecret("c") },
        ["create", "update", "delete"],
      ],
      [
        "an environment name that is not a variable name",
        { create: "x", environment: { "A-B": "1" } },
        ["environment.A-B"],
      ],
      ["an environment value that is not a string", { create: "x", environment: { PORT: 8080 } }, ["environment.PORT"]],
      ["stdin that is not a string", { create: "x", stdin: 42 }, ["stdin"]],
      ["both stdin and stdinFile", { create: "x", stdin: "a", stdinFile: __filename }, ["stdinFile"]],
      ["a timeout that is not a positive whole number", { create: "x", timeoutSeconds: 1.5 }, ["timeoutSeconds"]],
    ];
    for (const [what, news, properties] of commandFailures) {
      it(`fails a command with ${what}`, () => {
        const { p } = providerFor();
        assert.deepEqual(
          p.check(cmdUrn, {}, news).failures.map((f) => f.property),
          properties,
        );
      });
    }

    const fileFailures: [string, Props, string[]][] = [
      ["a relative path", { path: "etc/x", content: "" }, ["path"]],
      ["no content", { path: "/etc/x" }, ["content"]],
      ["a mode that is not octal", { path: "/etc/x", content: "", mode: "0999" }, ["mode"]],
    ];
    for (const [what, news, properties] of fileFailures) {
      it(`fails a file with ${what}`, () => {
        const { p } = providerFor();
        assert.deepEqual(
          p.check(fileUrn, {}, news).failures.map((f) => f.property),
          properties,
        );
      });
    }

    for (const [what, news, property] of [
      ["a length under 16", { length: 8 }, "length"],
      ["a length over 4096", { length: 5000 }, "length"],
      ["an unknown alphabet", { alphabet: "hex" }, "alphabet"],
    ] as const) {
      it(`fails a random secret with ${what}`, () => {
        const { p } = providerFor();
        assert.deepEqual(
          p.check(secretUrn, {}, news).failures.map((f) => f.property),
          [property],
        );
      });
    }

    it("throws on a resource type it does not know, for every operation", async () => {
      const { p } = providerFor();
      const urn = "urn:pulumi:dev::ayna-deploy::ayna:remote:Thing::x";
      const msg = /ayna provider: unknown resource type ayna:remote:Thing/;
      assert.throws(() => p.check(urn, {}, {}), msg);
      assert.throws(() => p.diff(urn, {}, {}), msg);
      assert.match((await rejection(p.create(urn, {}))).message, msg);
      assert.match((await rejection(p.update(urn, {}, {}))).message, msg);
      assert.match((await rejection(p.delete(urn, {}))).message, msg);
    });
  });

  describe("connection and identity changes", () => {
    const configMoved: Props = {
      ...configA,
      address: "10.0.0.9",
      port: 2222,
      user: "ops",
      privateKey: wrapSecret(otherLoginKey),
      connectAttempts: 1,
    };

    it("a new address, user, port and key: provider updated, resources keep their identity, diff sees nothing, nothing runs", async () => {
      const old = providerFor(configA);
      const cmdNews: Props = { create: "install", environment: { A: "1" }, captureStdout: true };
      const fileNews: Props = { path: "/etc/x", content: "x\n" };
      const cmdOuts = (await old.p.create(cmdUrn, checked(old.p, cmdUrn, cmdNews))).outs;
      const fileOuts = (await old.p.create(fileUrn, checked(old.p, fileUrn, fileNews))).outs;

      // The engine's sequence for a changed provider: CheckConfig, DiffConfig, Configure, then each resource.
      const fake = new FakeExecutor();
      const moved = new AynaProvider(fake, "1.2.3");
      const cc = await moved.checkConfig(configA, configMoved);
      assert.deepEqual(cc.failures, []);
      const d = moved.diffConfig(configA, cc.inputs);
      assert.deepEqual([d.changes, d.replaces], [true, []], "an update of the provider, not a replacement");
      moved.configure(cc.inputs);
      const cmdChecked = checked(moved, cmdUrn, cmdNews, cmdOuts);
      const fileChecked = checked(moved, fileUrn, fileNews, fileOuts);
      assert.equal(cmdChecked["hostIdentity"], identityA);
      assert.equal(moved.diff(cmdUrn, cmdOuts, cmdChecked).changes, false);
      assert.equal(moved.diff(fileUrn, fileOuts, fileChecked).changes, false);
      assert.equal(fake.probes.length, 1, "one login proves the new connection");
      assert.equal(fake.calls.length, 0, "the new connection executed nothing");
    });

    it("a resource made over the old connection is deleted over the new one", async () => {
      const old = providerFor(configA);
      const outs = (await old.p.create(cmdUrn, checked(old.p, cmdUrn, { create: "install", delete: "remove" }))).outs;
      const moved = providerFor(configMoved);
      await moved.p.delete(cmdUrn, outs);
      assert.equal(moved.fake.calls.length, 1);
      const c = moved.fake.calls[0]!.conn;
      assert.deepEqual([c.host, c.port, c.user, c.privateKey], ["10.0.0.9", 2222, "ops", otherLoginKey]);
    });

    it("a new pinned host key: check gives a new identity and diff replaces commands and files, deleting first", async () => {
      const old = providerFor(configA);
      const cmdNews: Props = { create: "install" };
      const fileNews: Props = { path: "/etc/x", content: "x\n" };
      const cmdOuts = (await old.p.create(cmdUrn, checked(old.p, cmdUrn, cmdNews))).outs;
      const fileOuts = (await old.p.create(fileUrn, checked(old.p, fileUrn, fileNews))).outs;

      const rebuilt = providerFor({ ...configA, hostKey: hostKeyB });
      const cmdChecked = checked(rebuilt.p, cmdUrn, cmdNews, cmdOuts);
      assert.equal(cmdChecked["hostIdentity"], identityB);
      for (const d of [
        rebuilt.p.diff(cmdUrn, cmdOuts, cmdChecked),
        rebuilt.p.diff(fileUrn, fileOuts, checked(rebuilt.p, fileUrn, fileNews, fileOuts)),
      ]) {
        assert.deepEqual(diffShape(d), {
          changes: true,
          replaces: ["hostIdentity"],
          deleteBeforeReplace: true,
          diffs: ["hostIdentity"],
        });
        assert.deepEqual(d.detailedDiff, { hostIdentity: "update-replace" });
      }
      assert.equal(rebuilt.fake.calls.length, 0, "diffing runs nothing");
    });
  });

  describe("ayna:remote:Command", () => {
    const env = { TOKEN: wrapSecret(envSecret), PLAIN: envPlain };
    const news: Props = {
      create: "deploy --now",
      delete: "undeploy",
      stdin: wrapSecret(stdinSecret),
      environment: env,
      timeoutSeconds: 90,
    };

    it("create runs the create text once, with stdin, environment and timeout, over the provider's connection", async () => {
      const { p, fake } = providerFor();
      const inputs = checked(p, cmdUrn, news);
      const r = await p.create(cmdUrn, inputs);
      assert.equal(fake.calls.length, 1);
      const call = fake.calls[0]!;
      assert.equal(call.command, "deploy --now");
      assert.equal(call.stdin, stdinSecret);
      assert.deepEqual(call.env, { TOKEN: envSecret, PLAIN: envPlain });
      assert.equal(call.timeoutSeconds, 90);
      const c = call.conn;
      assert.deepEqual(
        [c.host, c.port, c.user, c.privateKey, c.hostKey, c.insecureIgnoreHostKey],
        ["10.0.0.5", 22, "deploy", loginKey, hostKeyA, false],
        "the provider's connection, the key revealed",
      );
      assert.match(r.id, /^cmd-[a-z0-9]+-[a-z0-9]+$/);
      assert.deepEqual(r.outs, inputs, "outputs are the inputs, secrets still wrapped, and no stdout");
      assertEngineSafe(r.outs);
    });

    it("create runs with a 600 s timeout when none is given", async () => {
      const { p, fake } = providerFor();
      await p.create(cmdUrn, checked(p, cmdUrn, { create: "true" }));
      assert.equal(fake.calls[0]!.timeoutSeconds, 600);
    });

    it("captureStdout keeps stdout in the outputs with secrets scrubbed", async () => {
      const { p } = providerFor(configA, () => ok(`token is ${envSecret}\nstdin was ${stdinSecret}\ndone\n`));
      const r = await p.create(cmdUrn, checked(p, cmdUrn, { ...news, captureStdout: true }));
      assert.equal(r.outs["stdout"], "token is [secret]\nstdin was [secret]\ndone\n");
    });

    it("logStderr: a successful create and update hand their stderr, secrets scrubbed and blank lines dropped, to the engine as one info message", async () => {
      const stderr = `candidate ok: web of v2 is healthy\n\nstdin was ${stdinSecret}\nhealth ok: token ${envSecret}\n`;
      const { p } = providerFor(configA, () => ok("release=v2\n", stderr));
      const inputs = checked(p, cmdUrn, { ...news, logStderr: true });
      const text = "candidate ok: web of v2 is healthy\nstdin was [secret]\nhealth ok: token [secret]";
      const c = await p.create(cmdUrn, inputs);
      assert.deepEqual(c.messages, [{ severity: "info", text }]);
      const u = await p.update(cmdUrn, c.outs, checked(p, cmdUrn, { ...news, logStderr: true, triggers: ["sha-2"] }));
      assert.deepEqual(u.messages, [{ severity: "info", text }]);
      assertEngineSafe(c.outs);
    });

    it("logStderr: each stderr line reaches progress while the command still runs, secrets scrubbed, blank lines left out; without logStderr none does", async () => {
      const lines = ["waiting for the deploy lock: owner=ci", "", `token ${envSecret}`, "candidate ok: web   "];
      for (const logStderr of [true, false]) {
        const shown: string[] = [];
        const seenWhileRunning: string[][] = [];
        const { p } = providerFor(configA, (call) => {
          for (const l of lines) call.onStderrLine?.(l);
          seenWhileRunning.push([...shown]);
          return ok("", lines.join("\n"));
        });
        const inputs = checked(p, cmdUrn, { ...news, logStderr });
        const c = await p.create(cmdUrn, inputs, (t) => shown.push(t));
        await p.update(cmdUrn, c.outs, checked(p, cmdUrn, { ...news, logStderr, triggers: ["sha-2"] }), (t) =>
          shown.push(t),
        );
        const want = logStderr ? ["waiting for the deploy lock: owner=ci", "token [secret]", "candidate ok: web"] : [];
        assert.deepEqual(seenWhileRunning, [want, [...want, ...want]], `logStderr ${logStderr}`);
      }
    });

    it("without logStderr, or with a stderr of blank lines only, a successful run sends the engine nothing", async () => {
      for (const [logStderr, stderr] of [
        [undefined, "health ok\n"],
        [false, "health ok\n"],
        [true, "\n  \n"],
      ] as [boolean | undefined, string][]) {
        const { p } = providerFor(configA, () => ok("", stderr));
        const r = await p.create(
          cmdUrn,
          checked(p, cmdUrn, { ...news, ...(logStderr === undefined ? {} : { logStderr }) }),
        );
        assert.equal(r.messages, undefined, `logStderr ${logStderr}, stderr ${JSON.stringify(stderr)}`);
      }
    });

    it("logStderr: a line starting 'warning:' makes the message a warning; only the last 200 lines are shown, saying how many were left out", async () => {
      const lines = Array.from({ length: 230 }, (_, i) => `step ${i + 1}`);
      lines[220] =
        "warning: demoapp-web-handover.service did not start; restarting demoapp-web.service without a handover";
      const { p } = providerFor(configA, () => ok("", lines.join("\n") + "\n"));
      const r = await p.create(cmdUrn, checked(p, cmdUrn, { ...news, logStderr: true }));
      assert.deepEqual(r.messages, [
        { severity: "warning", text: ["(30 earlier lines not shown)", ...lines.slice(30)].join("\n") },
      ]);
    });

    it("redact: its secret values are scrubbed from stdout, the stderr message and a failure's output", async () => {
      const token = "env-token-7f3a9";
      const printed = `token=${token}\n`;
      const inputs = { ...news, captureStdout: true, logStderr: true, redact: wrapSecret([token]) };
      const { p } = providerFor(configA, () => ok(printed, printed));
      const r = await p.create(cmdUrn, checked(p, cmdUrn, inputs));
      assert.equal(r.outs["stdout"], "token=[secret]\n");
      assert.deepEqual(r.messages, [{ severity: "info", text: "token=[secret]" }]);
      const failing = providerFor(configA, () => ({ code: 3, stdout: printed, stderr: printed })).p;
      const e = await rejection(failing.create(cmdUrn, checked(failing, cmdUrn, inputs)));
      assert.ok(e.message.includes("token=[secret]") && !e.message.includes(token), e.message);
    });

    it("redact must be a secret list of strings; unknown in a preview, it is not checked", () => {
      const { p } = providerFor();
      const failures = (redact: unknown) => p.check(cmdUrn, {}, { create: "true", redact }).failures;
      assert.deepEqual(failures(["plain-value"]), [{ property: "redact", reason: "must be secret (pulumi.secret)" }]);
      assert.deepEqual(failures(wrapSecret("one")), [{ property: "redact", reason: "must be a list of strings" }]);
      assert.deepEqual(failures(wrapSecret([1])), [{ property: "redact", reason: "must be a list of strings" }]);
      assert.deepEqual(failures(wrapSecret(["x"])), []);
      assert.deepEqual(failures([]), []);
      assert.deepEqual(failures(unknownValue), []);
    });

    it("logStderr must be a boolean", () => {
      const { p } = providerFor();
      assert.deepEqual(p.check(cmdUrn, {}, { create: "true", logStderr: "yes" }).failures, [
        { property: "logStderr", reason: "must be true or false" },
      ]);
    });

    it("stdinFile streams the local file's bytes on stdin", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-provider-test-"));
      try {
        const file = path.join(dir, "release.tar");
        const bytes = Buffer.from([0, 1, 2, 255, 10, 13]);
        fs.writeFileSync(file, bytes);
        const { p, fake } = providerFor();
        await p.create(cmdUrn, checked(p, cmdUrn, { create: "tar -x", stdinFile: file, triggers: ["sha-1"] }));
        assert.ok(Buffer.isBuffer(fake.calls[0]!.stdin));
        assert.deepEqual(fake.calls[0]!.stdin, bytes);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("a stdinFile that cannot be read fails at check (preview), before anything runs", async () => {
      const { p, fake } = providerFor();
      const r = p.check(cmdUrn, {}, { create: "tar -x", stdinFile: "/nonexistent/x" });
      assert.deepEqual(
        r.failures.map((f) => [f.property, /^cannot read it: ENOENT/.test(f.reason)]),
        [["stdinFile", true]],
      );
      assert.equal(fake.calls.length, 0);
    });

    it("a stdinFile counts by its content: another path to the same bytes runs nothing, new bytes re-run", () => {
      const { p } = providerFor();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-stdin-"));
      try {
        const [a, b] = [path.join(dir, "a"), path.join(dir, "b")];
        fs.writeFileSync(a, "archive-1");
        fs.writeFileSync(b, "archive-1");
        const first = checked(p, cmdUrn, { create: "tar -x", stdinFile: a });
        const samePathElsewhere = checked(p, cmdUrn, { create: "tar -x", stdinFile: b });
        const d = p.diff(cmdUrn, first, samePathElsewhere);
        assert.deepEqual(d.detailedDiff, { stdinFile: "update" }, "stored only");
        fs.writeFileSync(b, "archive-2");
        const changedBytes = checked(p, cmdUrn, { create: "tar -x", stdinFile: b });
        assert.equal(p.diff(cmdUrn, first, changedBytes).detailedDiff["stdinFileSha256"], "update");
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("secrets and environment values reach only stdin, never a command line, through every operation", async () => {
      const { p, fake } = providerFor();
      const outs = (await p.create(cmdUrn, checked(p, cmdUrn, news))).outs;
      const news2 = { ...news, create: "deploy --again", stdin: wrapSecret(stdinSecret + "2") };
      const outs2 = (await p.update(cmdUrn, outs, checked(p, cmdUrn, news2))).outs;
      await p.delete(cmdUrn, outs2);
      const fileNews = { path: "/etc/app.env", content: wrapSecret(fileSecret), mode: "0600" };
      const fileOuts = (await p.create(fileUrn, checked(p, fileUrn, fileNews))).outs;
      await p.update(fileUrn, fileOuts, checked(p, fileUrn, { ...fileNews, mode: "0640" }));
      await p.delete(fileUrn, fileOuts);
      assert.equal(fake.calls.length, 6);
      const words = [stdinSecret, envSecret, envPlain, fileSecret, loginKey.split("\n")[1]!];
      assertNotOnCommandLines(fake.calls, words);
      // They do reach the host: in the stdin the wrapper reads (environment prelude, then the command's input).
      const wire = envPrelude(fake.calls[0]!.env) + String(fake.calls[0]!.stdin);
      assert.ok(wire.includes(`TOKEN=${Buffer.from(envSecret).toString("base64")}\n`));
      assert.ok(wire.endsWith(`\n\n${stdinSecret}`));
    });

    it("a command that exits non-zero fails with the last 100 lines of its output, secrets scrubbed", async () => {
      const stdout = Array.from({ length: 150 }, (_, i) => `line-${i + 1}`).join("\n") + "\n";
      const { p } = providerFor(configA, () => ({ code: 3, stdout, stderr: `fatal: bad token ${envSecret}\n` }));
      const e = await rejection(p.create(cmdUrn, checked(p, cmdUrn, news)));
      const lines = e.message.split("\n");
      assert.equal(lines[0], "remote command on deploy@10.0.0.5:22 exited with 3:");
      assert.equal(lines.length, 101);
      // stdout's last 98 lines, the blank line the join of stdout and stderr leaves, stderr.
      assert.equal(lines[1], "line-53");
      assert.equal(lines[98], "line-150");
      assert.equal(lines[100], "fatal: bad token [secret]");
      assert.ok(!e.message.includes(envSecret));
    });

    it("exit 124 is reported as a timeout: stopped after timeoutSeconds, secrets scrubbed", async () => {
      const { p } = providerFor(configA, () => ({ code: 124, stdout: `waiting ${stdinSecret}\n`, stderr: "" }));
      const e = await rejection(p.create(cmdUrn, checked(p, cmdUrn, { ...news, timeoutSeconds: 7 })));
      assert.equal(
        e.message,
        "command on deploy@10.0.0.5:22 did not finish within 7s and was stopped:\nwaiting [secret]",
      );
    });

    it("read hands the state back unchanged and runs nothing", async () => {
      const { p, fake } = providerFor();
      const outs = (await p.create(cmdUrn, checked(p, cmdUrn, news))).outs;
      assert.deepEqual(await p.read("cmd-1", cmdUrn, outs), { id: "cmd-1", props: outs });
      assert.equal(fake.calls.length, 1);
    });

    describe("update", () => {
      const base: Props = { ...everyCommandInput };

      // Each run prints its number, so an output tells which run made it.
      async function created() {
        let runs = 0;
        const { p, fake } = providerFor(configA, () => ok(`run ${++runs}\n`));
        const outs = (await p.create(cmdUrn, checked(p, cmdUrn, base))).outs;
        fake.calls.length = 0;
        return { p, fake, outs };
      }

      for (const [what, change] of [
        ["the update text", { update: "upgrade --force" }],
        ["the create text", { create: "install --v2" }],
        ["the triggers", { triggers: ["sha-2"] }],
        ["stdin", { stdin: wrapSecret("new-stdin-secret") }],
        ["stdinFile (as stdin gives way to it)", { stdin: undefined, stdinFile: "/dev/null" }],
      ] as [string, Props][]) {
        it(`a change of ${what} runs the update text again with the new inputs`, async () => {
          const { p, fake, outs } = await created();
          const news = checked(p, cmdUrn, { ...base, ...change });
          const r = await p.update(cmdUrn, outs, news);
          assert.equal(fake.calls.length, 1);
          assert.equal(fake.calls[0]!.command, (reveal(news) as Props)["update"]);
          assert.equal(r.outs["stdout"], "run 2\n");
          assertEngineSafe(r.outs);
        });
      }

      it("without an update text, a change runs the (new) create text", async () => {
        const { update: _, ...noUpdate } = base;
        const { p, fake } = providerFor();
        const outs = (await p.create(cmdUrn, checked(p, cmdUrn, noUpdate))).outs;
        await p.update(cmdUrn, outs, checked(p, cmdUrn, { ...noUpdate, create: "install --v2" }));
        assert.deepEqual(
          fake.calls.map((c) => c.command),
          ["install", "install --v2"],
        );
      });

      it("a new environment only is stored: nothing runs, the outputs hold it and keep the last stdout", async () => {
        const { p, fake, outs } = await created();
        const news = checked(p, cmdUrn, { ...base, environment: { MODE: "staging" } });
        assert.deepEqual(p.diff(cmdUrn, outs, news).detailedDiff, { environment: "update" });
        const r = await p.update(cmdUrn, outs, news);
        assert.equal(fake.calls.length, 0);
        assert.deepEqual(r.outs["environment"], { MODE: "staging" });
        assert.equal(r.outs["stdout"], "run 1\n");
        assertEngineSafe(r.outs);
      });

      it("turning logStderr on or off is stored: nothing runs and no message is sent", async () => {
        const { p, fake, outs } = await created();
        const on = await p.update(cmdUrn, outs, checked(p, cmdUrn, { ...base, logStderr: true }));
        const off = await p.update(cmdUrn, on.outs, checked(p, cmdUrn, { ...base, logStderr: false }));
        assert.equal(fake.calls.length, 0);
        assert.deepEqual([on.messages, off.messages], [undefined, undefined]);
        assert.deepEqual([on.outs["logStderr"], off.outs["logStderr"]], [true, false]);
      });

      it("a new redact list only is stored: nothing runs", async () => {
        const { p, fake, outs } = await created();
        const news = checked(p, cmdUrn, { ...base, redact: wrapSecret(["another-secret"]) });
        assert.deepEqual(p.diff(cmdUrn, outs, news).detailedDiff, { redact: "add" });
        const r = await p.update(cmdUrn, outs, news);
        assert.equal(fake.calls.length, 0);
        assertEngineSafe(r.outs);
      });

      it("a new timeoutSeconds only is stored: nothing runs, and the next run (delete) uses it", async () => {
        const { p, fake, outs } = await created();
        const r = await p.update(cmdUrn, outs, checked(p, cmdUrn, { ...base, timeoutSeconds: 5 }));
        assert.equal(fake.calls.length, 0);
        assert.equal(r.outs["timeoutSeconds"], 5);
        await p.delete(cmdUrn, r.outs);
        assert.equal(fake.calls[0]!.timeoutSeconds, 5);
      });

      it("a new delete text only is stored: nothing runs, and delete then runs the new text", async () => {
        const { p, fake, outs } = await created();
        const r = await p.update(cmdUrn, outs, checked(p, cmdUrn, { ...base, delete: "remove --purge" }));
        assert.equal(fake.calls.length, 0);
        await p.delete(cmdUrn, r.outs);
        assert.equal(fake.calls[0]!.command, "remove --purge");
      });

      it("turning captureStdout off is stored: nothing runs and stdout leaves the outputs", async () => {
        const { p, fake, outs } = await created();
        const r = await p.update(cmdUrn, outs, checked(p, cmdUrn, { ...base, captureStdout: false }));
        assert.equal(fake.calls.length, 0);
        assert.ok(!("stdout" in r.outs));
        assertEngineSafe(r.outs);
      });

      it("turning captureStdout on is stored: nothing runs, and there is no stdout (not an undefined one) until the next run", async () => {
        const { captureStdout: _, ...quiet } = base;
        const { p, fake } = providerFor(configA, () => ok("run\n"));
        const outs = (await p.create(cmdUrn, checked(p, cmdUrn, quiet))).outs;
        assert.ok(!("stdout" in outs));
        const r = await p.update(cmdUrn, outs, checked(p, cmdUrn, { ...quiet, captureStdout: true }));
        assert.equal(fake.calls.length, 1, "only the create ran");
        assert.ok(!("stdout" in r.outs));
        assertEngineSafe(r.outs);
      });

      it("a re-run that fails fails the update with the command's output", async () => {
        const { p, fake, outs } = await created();
        fake.answer = () => ({ code: 2, stdout: "", stderr: "upgrade failed\n" });
        const e = await rejection(p.update(cmdUrn, outs, checked(p, cmdUrn, { ...base, triggers: ["sha-2"] })));
        assert.equal(e.message, "remote command on deploy@10.0.0.5:22 exited with 2:\nupgrade failed");
      });
    });

    it("delete runs the delete text with the stored stdin, environment and timeout", async () => {
      const { p, fake } = providerFor();
      const outs = (await p.create(cmdUrn, checked(p, cmdUrn, news))).outs;
      await p.delete(cmdUrn, outs);
      assert.equal(fake.calls.length, 2);
      const call = fake.calls[1]!;
      assert.deepEqual(
        [call.command, call.stdin, call.env, call.timeoutSeconds],
        ["undeploy", stdinSecret, { TOKEN: envSecret, PLAIN: envPlain }, 90],
      );
    });

    it("delete without a delete text runs nothing", async () => {
      const { p, fake } = providerFor();
      const outs = (await p.create(cmdUrn, checked(p, cmdUrn, { create: "install" }))).outs;
      await p.delete(cmdUrn, outs);
      assert.equal(fake.calls.length, 1, "only the create ran");
    });

    it("a delete text that fails fails the delete", async () => {
      const { p } = providerFor(configA, () => ({ code: 1, stdout: "", stderr: "busy\n" }));
      const e = await rejection(p.delete(cmdUrn, { create: "install", delete: "remove", hostIdentity: identityA }));
      assert.match(e.message, /exited with 1:\nbusy$/);
    });

    describe("diff", () => {
      const olds: Props = {
        ...everyCommandInput,
        hostIdentity: identityA,
        stdout: "an output, not an input",
      };
      const { stdout: _, ...inputs } = olds;
      const cases: [string, Props, Record<string, DiffKind>][] = [
        ["the same inputs", {}, {}],
        ["the same stdin, no longer secret", { stdin: stdinSecret }, {}],
        ["the create text", { create: "install --v2" }, { create: "update" }],
        ["the update text removed", { update: undefined }, { update: "delete" }],
        ["the delete text", { delete: "remove --purge" }, { delete: "update" }],
        ["stdin", { stdin: wrapSecret("other") }, { stdin: "update" }],
        [
          "stdin replaced by stdinFile",
          { stdin: undefined, stdinFile: "/tmp/a" },
          { stdin: "delete", stdinFile: "add" },
        ],
        ["an environment value", { environment: { MODE: "staging" } }, { environment: "update" }],
        ["an environment variable added", { environment: { MODE: "prod", X: "1" } }, { environment: "update" }],
        ["the triggers", { triggers: ["sha-2"] }, { triggers: "update" }],
        ["timeoutSeconds", { timeoutSeconds: 120 }, { timeoutSeconds: "update" }],
        ["captureStdout removed", { captureStdout: undefined }, { captureStdout: "delete" }],
        ["the create text unknown during preview", { create: unknownValue }, { create: "update" }],
        ["the host identity", { hostIdentity: identityB }, { hostIdentity: "update-replace" }],
        [
          "the create text, the environment and the host identity together",
          { create: "x", environment: {}, hostIdentity: identityB },
          { create: "update", environment: "update", hostIdentity: "update-replace" },
        ],
      ];
      for (const [what, change, detailed] of cases) {
        const replaces = "hostIdentity" in detailed ? ["hostIdentity"] : [];
        it(`${what}: ${JSON.stringify(detailed)}, replaces ${JSON.stringify(replaces)}`, () => {
          const { p } = providerFor();
          const d = p.diff(cmdUrn, olds, { ...inputs, ...change });
          assert.deepEqual(d.detailedDiff, detailed);
          assert.deepEqual(diffShape(d), {
            changes: Object.keys(detailed).length > 0,
            replaces,
            deleteBeforeReplace: replaces.length > 0,
            diffs: Object.keys(detailed).sort(),
          });
        });
      }
    });
  });

  describe("ayna:remote:File", () => {
    const news: Props = { path: "/etc/ayna/app.ini", content: "a=1\n", mode: "640", owner: "root", group: "app" };

    it("create writes the file atomically, content on stdin only, and returns its hash and normal mode", async () => {
      const { p, fake } = providerFor();
      const inputs = checked(p, fileUrn, news);
      const r = await p.create(fileUrn, inputs);
      assert.equal(r.id, "/etc/ayna/app.ini");
      assert.equal(fake.calls.length, 1);
      const call = fake.calls[0]!;
      assert.equal(
        call.command,
        writeFileAtomic({ path: "/etc/ayna/app.ini", mode: "0640", owner: "root", group: "app" }, { sudo: false }),
      );
      assert.equal(call.stdin, "a=1\n");
      assert.equal(call.env, undefined);
      assert.equal(call.timeoutSeconds, 120);
      assert.deepEqual(r.outs, { ...inputs, mode: "0640", sha256: sha256hex("a=1\n"), writes: 1 });
      assertEngineSafe(r.outs);
    });

    it("create with sudo writes through sudo -n", async () => {
      const { p, fake } = providerFor();
      await p.create(fileUrn, checked(p, fileUrn, { path: "/etc/x", content: "", sudo: true }));
      assert.equal(fake.calls[0]!.command, writeFileAtomic({ path: "/etc/x", mode: "0644" }, { sudo: true }));
      assert.match(fake.calls[0]!.command, /^sudo -n sh -c /);
    });

    it("secret content travels on stdin only and stays wrapped in the outputs", async () => {
      const { p, fake } = providerFor();
      const r = await p.create(fileUrn, checked(p, fileUrn, { path: "/etc/app.env", content: wrapSecret(fileSecret) }));
      assert.equal(fake.calls[0]!.stdin, fileSecret);
      assertNotOnCommandLines(fake.calls, [fileSecret]);
      assert.deepEqual(r.outs["content"], wrapSecret(fileSecret));
    });

    it("a write that fails names the path and exit status, with secrets scrubbed", async () => {
      const { p } = providerFor(configA, () => ({
        code: 1,
        stdout: "",
        stderr: `cat: write error near ${fileSecret}\n`,
      }));
      const e = await rejection(
        p.create(fileUrn, checked(p, fileUrn, { path: "/etc/app.env", content: wrapSecret(fileSecret) })),
      );
      assert.equal(
        e.message,
        "could not write /etc/app.env on deploy@10.0.0.5:22 (exit 1): cat: write error near [secret]",
      );
    });

    it("read of an unchanged file gives back the same state, which diffs as no change", async () => {
      const { p, fake } = providerFor(configA, () => statAnswer("a=1\n", "640 root app"));
      const inputs = checked(p, fileUrn, news);
      const outs = (await p.create(fileUrn, inputs)).outs;
      const r = await p.read("/etc/ayna/app.ini", fileUrn, outs);
      assert.equal(fake.calls[1]!.command, statFile("/etc/ayna/app.ini", { sudo: false }));
      assert.deepEqual(r, { id: "/etc/ayna/app.ini", props: outs });
      assert.equal(p.diff(fileUrn, r.props, inputs).changes, false);
    });

    it("read finds drifted content, mode and owner; diff asks for an update; update writes it again", async () => {
      const { p, fake } = providerFor(configA, () => statAnswer("tampered\n", "666 mallory app"));
      const inputs = checked(p, fileUrn, news);
      const outs = (await p.create(fileUrn, inputs)).outs;
      const r = await p.read("/etc/ayna/app.ini", fileUrn, outs);
      assert.deepEqual(r.props, { ...outs, sha256: sha256hex("tampered\n"), mode: "0666", owner: "mallory" });
      assertEngineSafe(r.props);
      const d = p.diff(fileUrn, r.props, inputs);
      assert.deepEqual(d.detailedDiff, { owner: "update", content: "update", mode: "update" });
      assert.deepEqual(d.replaces, []);
      fake.answer = () => ok();
      const u = await p.update(fileUrn, r.props, inputs);
      assert.equal(fake.calls.length, 3);
      assert.equal(fake.calls[2]!.command, fake.calls[0]!.command);
      assert.equal(fake.calls[2]!.stdin, "a=1\n");
      assert.deepEqual(u.outs, { ...outs, writes: (outs["writes"] as number) + 1 }, "written again, counted");
    });

    it("read reports owner and group only when the file names them", async () => {
      const { p } = providerFor(configA, () => statAnswer("", "644 root root"));
      const outs = (await p.create(fileUrn, checked(p, fileUrn, { path: "/etc/x", content: "" }))).outs;
      const r = await p.read("/etc/x", fileUrn, outs);
      assert.ok(!("owner" in r.props) && !("group" in r.props));
    });

    it("read of a file gone from the host returns an empty id, so the engine drops it", async () => {
      const { p } = providerFor(configA, (c) => (c.command.includes("sha256sum") ? ok("absent\n") : ok()));
      const outs = (await p.create(fileUrn, checked(p, fileUrn, news))).outs;
      assert.deepEqual(await p.read("/etc/ayna/app.ini", fileUrn, outs), { id: "", props: {} });
    });

    it("read that cannot stat the file fails with the path", async () => {
      const { p } = providerFor(configA, () => ({ code: 1, stdout: "", stderr: "sudo: a password is required\n" }));
      const e = await rejection(p.read("/etc/x", fileUrn, { path: "/etc/x", content: "", sudo: true }));
      assert.equal(e.message, "could not read /etc/x on deploy@10.0.0.5:22: sudo: a password is required");
    });

    it("update writes the new content and mode", async () => {
      const { p, fake } = providerFor();
      const outs = (await p.create(fileUrn, checked(p, fileUrn, news))).outs;
      const news2 = checked(p, fileUrn, { ...news, content: "a=2\n", mode: "0600" });
      assert.deepEqual(p.diff(fileUrn, outs, news2).detailedDiff, { content: "update", mode: "update" });
      const r = await p.update(fileUrn, outs, news2);
      assert.equal(fake.calls[1]!.stdin, "a=2\n");
      assert.deepEqual(r.outs, { ...news2, mode: "0600", sha256: sha256hex("a=2\n"), writes: 2 });
    });

    it("delete removes the file (through sudo when the file says so)", async () => {
      const { p, fake } = providerFor();
      await p.delete(fileUrn, { path: "/etc/x", content: "", sudo: true, hostIdentity: identityA });
      assert.equal(fake.calls.length, 1);
      assert.equal(fake.calls[0]!.command, removeFile("/etc/x", { sudo: true }));
      assert.equal(fake.calls[0]!.timeoutSeconds, 60);
    });

    it("delete with the hash it wrote removes only that content, so a file taken over since is left", async () => {
      const { p, fake } = providerFor();
      const sha = sha256hex("a=1\n");
      await p.delete(fileUrn, { path: "/etc/x", content: "a=1\n", sudo: true, sha256: sha, hostIdentity: identityA });
      assert.equal(fake.calls[0]!.command, removeFile("/etc/x", { sudo: true, ifSha256: sha }));
    });

    it("a delete that fails names the path", async () => {
      const { p } = providerFor(configA, () => ({ code: 1, stdout: "", stderr: "rm: Read-only file system\n" }));
      const e = await rejection(p.delete(fileUrn, { path: "/etc/x", content: "" }));
      assert.equal(e.message, "could not remove /etc/x on deploy@10.0.0.5:22: rm: Read-only file system");
    });

    describe("diff", () => {
      const inputs: Props = { ...news, sudo: true, hostIdentity: identityA };
      const olds: Props = { ...inputs, mode: "0640", sha256: sha256hex("a=1\n") };
      const cases: [string, Props, Props, Record<string, DiffKind>][] = [
        ["the same inputs", {}, {}, {}],
        ["the same mode written another way", {}, { mode: "0640" }, {}],
        ["the same content, now secret", {}, { content: wrapSecret("a=1\n") }, {}],
        ["new content", {}, { content: "a=2\n" }, { content: "update" }],
        ["content drift found by refresh", { sha256: sha256hex("tampered") }, {}, { content: "update" }],
        ["content unknown during preview", {}, { content: unknownValue }, { content: "update" }],
        ["a new mode", {}, { mode: "0600" }, { mode: "update" }],
        ["a new owner", {}, { owner: "app" }, { owner: "update" }],
        ["the group removed", {}, { group: undefined }, { group: "delete" }],
        ["sudo removed", {}, { sudo: undefined }, { sudo: "delete" }],
        ["a new path", {}, { path: "/etc/ayna/other.ini" }, { path: "update-replace" }],
        ["the host identity", {}, { hostIdentity: identityB }, { hostIdentity: "update-replace" }],
        [
          "a new path on a new host, with new content",
          {},
          { path: "/etc/y", hostIdentity: identityB, content: "b" },
          { path: "update-replace", hostIdentity: "update-replace", content: "update" },
        ],
      ];
      for (const [what, stateChange, change, detailed] of cases) {
        const replaces = ["hostIdentity", "path"].filter((k) => k in detailed);
        // A new path is written before the old goes; a new machine's old state goes first.
        const dbr = "hostIdentity" in detailed;
        it(`${what}: ${JSON.stringify(detailed)}, replaces ${JSON.stringify(replaces)}, deleteBeforeReplace ${dbr}`, () => {
          const { p } = providerFor();
          const d = p.diff(fileUrn, { ...olds, ...stateChange }, { ...inputs, ...change });
          assert.deepEqual(d.detailedDiff, detailed);
          assert.deepEqual(diffShape(d), {
            changes: Object.keys(detailed).length > 0,
            replaces,
            deleteBeforeReplace: dbr,
            diffs: Object.keys(detailed).sort(),
          });
        });
      }
    });
  });

  describe("ayna:random:Secret", () => {
    it("create makes 50 letters and digits by default, returned only secret-wrapped", async () => {
      const { p, fake } = providerFor();
      const r = await p.create(secretUrn, {});
      assert.match(r.id, /^secret-[a-z0-9]{12}$/);
      assert.ok(isSecret(r.outs["value"]));
      assert.match(reveal(r.outs["value"]) as string, /^[A-Za-z0-9]{50}$/);
      assert.equal(fake.calls.length, 0);
    });

    it("create honours length and the urlsafe alphabet, and two values differ", async () => {
      const { p } = providerFor();
      const a = reveal((await p.create(secretUrn, { length: 4096, alphabet: "urlsafe" })).outs["value"]) as string;
      const b = reveal((await p.create(secretUrn, { length: 4096, alphabet: "urlsafe" })).outs["value"]) as string;
      assert.match(a, /^[A-Za-z0-9_-]{4096}$/);
      assert.match(a, /[-_]/, "4096 draws from 64 characters include - or _");
      assert.notEqual(a, b);
    });

    it("update keeps the value it made", async () => {
      const { p } = providerFor();
      const outs = (await p.create(secretUrn, { length: 32 })).outs;
      const r = await p.update(secretUrn, outs, { length: 32, note: "x" });
      assert.deepEqual(r.outs, { length: 32, note: "x", value: outs["value"] });
    });

    it("read hands the state back and delete runs nothing", async () => {
      const { p, fake } = providerFor();
      const outs = (await p.create(secretUrn, {})).outs;
      assert.deepEqual(await p.read("secret-x", secretUrn, outs), { id: "secret-x", props: outs });
      await p.delete(secretUrn, outs);
      assert.equal(fake.calls.length, 0);
    });

    const olds: Props = { length: 32, alphabet: "alnum", keepers: { release: "1" }, value: wrapSecret("v") };
    for (const [what, news, detailed] of [
      ["the same inputs (the value is an output)", { length: 32, alphabet: "alnum", keepers: { release: "1" } }, {}],
      ["a new length", { length: 40, alphabet: "alnum", keepers: { release: "1" } }, { length: "update-replace" }],
      ["the alphabet removed", { length: 32, keepers: { release: "1" } }, { alphabet: "delete-replace" }],
      ["new keepers", { length: 32, alphabet: "alnum", keepers: { release: "2" } }, { keepers: "update-replace" }],
    ] as [string, Props, Record<string, DiffKind>][]) {
      it(`diff, ${what}: ${JSON.stringify(detailed)}`, () => {
        const { p } = providerFor();
        const d = p.diff(secretUrn, olds, news);
        assert.deepEqual(d.detailedDiff, detailed);
        assert.deepEqual(diffShape(d), {
          changes: Object.keys(detailed).length > 0,
          replaces: Object.keys(detailed).sort(),
          deleteBeforeReplace: false,
          diffs: Object.keys(detailed).sort(),
        });
      });
    }
  });

  it("no output of create, read or update holds undefined at any depth, whatever the inputs carry", async () => {
    // The SDK declares outputs as `undefined` inputs; nested undefineds come from programs.
    const { p } = providerFor(configA, (c) =>
      c.command.includes("sha256sum") ? statAnswer("x", "644 deploy deploy") : ok("out\n"),
    );
    const cmd = checked(p, cmdUrn, {
      create: "install",
      update: undefined,
      stdout: undefined,
      triggers: ["a", undefined, { b: undefined }],
      environment: { A: "1" },
      captureStdout: true,
    });
    const cmdOuts = (await p.create(cmdUrn, cmd)).outs;
    const stored = (await p.update(cmdUrn, { ...cmdOuts, stdout: undefined }, { ...cmd, timeoutSeconds: 9 })).outs;
    const rerun = (await p.update(cmdUrn, cmdOuts, { ...cmd, create: "install --v2" })).outs;
    const cmdRead = (await p.read("cmd-1", cmdUrn, { ...cmdOuts, extra: undefined })).props;
    const file = checked(p, fileUrn, { path: "/etc/x", content: "x", owner: undefined, sha256: undefined });
    const fileOuts = (await p.create(fileUrn, file)).outs;
    const fileRead = (await p.read("/etc/x", fileUrn, fileOuts)).props;
    const fileUpdated = (await p.update(fileUrn, fileOuts, { ...file, content: "y" })).outs;
    const secretOuts = (await p.create(secretUrn, { value: undefined, keepers: { a: "1", b: undefined } })).outs;
    const secretUpdated = (await p.update(secretUrn, secretOuts, { keepers: { a: undefined } })).outs;
    for (const outs of [cmdOuts, stored, rerun, cmdRead, fileOuts, fileRead, fileUpdated, secretOuts, secretUpdated]) {
      assertEngineSafe(outs);
    }
  });

  describe("ayna:deploy:Plan", () => {
    const planUrn = "urn:pulumi:dev::ayna-deploy::ayna:components:Release$ayna:deploy:Plan::web1-plan";
    const manifest = (over: Props = {}): Props => ({
      project: "demoapp",
      host: "web1",
      sha: "content-aaaa",
      files: { "manage.py": "h1", "core/views.py": "h2" },
      environment: "env-1",
      env: wrapSecret({ FEATURE_FLAG: "off", DJANGO_SECRET_KEY: envSecret }),
      units: { "demoapp-web.service": "u1" },
      services: [{ role: "web", reload: "handover" }],
      ...over,
    });

    it("check of a change returns the plan as the resource's message, naming keys and never values; on any provider, with no host", async () => {
      const p = new AynaProvider(new FakeExecutor(), "0.0.0-test");
      const olds = { ...manifest(), release: "v3" };
      const news = manifest({
        sha: "content-bbbb",
        files: { "manage.py": "h1", "core/views.py": "h3" },
        env: wrapSecret({ FEATURE_FLAG: "on", DJANGO_SECRET_KEY: envSecret }),
        release: unknownValue,
      });
      const r = p.check(planUrn, olds, news);
      assert.deepEqual(r.failures, []);
      assert.deepEqual(r.messages, [
        [
          "deploy plan for web1:",
          "  release: v3 (content-aaaa) -> a new release (content-bbbb)",
          "  code: 1 changed, 0 added, 0 removed: core/views.py",
          "  python environment: unchanged",
          "  migrations: none new",
          "  env keys: changed FEATURE_FLAG",
          "  unit files: unchanged",
          "  services: web hands over to new processes (no dropped requests)",
          "  gate: candidates and the health check before the switch; rolled back automatically on failure",
        ].join("\n"),
      ]);
      assert.ok(!JSON.stringify(r.messages).includes(envSecret));
      assert.equal(r.inputs["hostIdentity"], undefined, "a plan belongs to no machine");
    });

    it("check with nothing changed sends no message; a malformed manifest fails on its keys", () => {
      const { p } = providerFor();
      const m = { ...manifest(), release: "v3" };
      assert.deepEqual(p.check(planUrn, m, m).messages, []);
      const bad = p.check(planUrn, {}, { project: "demoapp", host: "web1", sha: "s", environment: "e" });
      assert.deepEqual(
        bad.failures.map((f) => f.property),
        ["files", "units", "env", "services"],
      );
    });

    it("create and update keep the lines as outputs and the env values secret-wrapped; nothing runs on a host", async () => {
      const { p, fake } = providerFor();
      const created = await p.create(planUrn, { ...manifest(), release: "v1" });
      assert.match(created.id, /^plan-[0-9a-f]{12}$/);
      assert.equal((created.outs["lines"] as string[])[0], "release: none -> v1 (content-aaaa)");
      assert.ok(isSecret(created.outs["env"]));
      const news = { ...manifest({ env: wrapSecret({ FEATURE_FLAG: "off" }) }), release: "v1" };
      const updated = await p.update(planUrn, created.outs, news);
      assert.deepEqual((updated.outs["lines"] as string[]).slice(0, 1), [
        "release: v1 (content-aaaa) stays; this update changes its configuration",
      ]);
      assert.ok((updated.outs["lines"] as string[]).includes("env keys: removed DJANGO_SECRET_KEY"));
      assert.ok(isSecret(updated.outs["env"]));
      assert.equal(fake.calls.length, 0);
      assert.equal(p.diff(planUrn, created.outs, news).changes, true);
      assert.equal(p.diff(planUrn, updated.outs, news).changes, false);
      await p.delete(planUrn, updated.outs);
      assert.equal(fake.calls.length, 0);
    });
  });

  it("cancel() asks the executor to stop every running command, and runs nothing else", async () => {
    const { p, fake } = providerFor();
    await p.cancel();
    assert.equal(fake.cancelAllCalls, 1);
    assert.equal(fake.calls.length, 0);
    assert.equal(fake.closeAllCalls, 0);
  });
});

// ------------------------------------------------------------------ builders/remote.ts

describe("remote command wrapper (builders/remote.ts)", () => {
  const wrapper =
    "printf '\\''ayna-pid:%s\\n'\\'' \"$$\" >&2; " +
    'while IFS= read -r l && [ -n "$l" ]; do v=$(printf %s "${l#*=}" | base64 -d && echo x) || exit 125; ' +
    'export "${l%%=*}=${v%x}"; done; ' +
    'exec timeout -k 10 "$1" sh -c "$2"';

  it("remoteInvocation: the exact SSH command line, the command as one quoted argument", () => {
    assert.equal(remoteInvocation("echo hi", 600), `exec sh -c '${wrapper}' ayna-run 600 'echo hi'`);
    assert.equal(remoteInvocation("true", 1), `exec sh -c '${wrapper}' ayna-run 1 true`);
    assert.equal(remoteInvocation("echo 'a b'", 5), `exec sh -c '${wrapper}' ayna-run 5 'echo '\\''a b'\\'''`);
  });

  it("remoteInvocation rejects a timeout that is not a positive whole number", () => {
    for (const t of [0, -1, 1.5, NaN, Infinity]) {
      assert.throws(() => remoteInvocation("true", t), /invalid timeout .*: a positive whole number of seconds/);
    }
  });

  it("envPrelude: one NAME=base64 line per variable, sorted, then an empty line", () => {
    assert.equal(envPrelude({ B: "x", A: "héllo\n", E: "" }), "A=aMOpbGxvCg==\nB=eA==\nE=\n\n");
    assert.equal(envPrelude({}), "\n");
    assert.equal(envPrelude(undefined), "\n");
  });

  it("envPrelude rejects names that are not variable names", () => {
    for (const name of ["1A", "A-B", "A B", "", "A=B", "A\nB"]) {
      assert.throws(() => envPrelude({ [name]: "v" }), /invalid environment variable name/);
    }
  });

  it("splitPid takes the PID line off stderr, and only a whole, plausible one", () => {
    assert.deepEqual(splitPid("ayna-pid:4242\nwarning\nmore\n"), { pid: 4242, rest: "warning\nmore\n" });
    assert.deepEqual(splitPid("ayna-pid:4242\n"), { pid: 4242, rest: "" });
    assert.deepEqual(splitPid("plain error\n"), { rest: "plain error\n" });
    assert.deepEqual(splitPid("ayna-pid:42"), { rest: "" }, "a PID line not complete yet");
    assert.deepEqual(splitPid("ayna-pid:1\nx"), { pid: undefined, rest: "x" });
    assert.deepEqual(splitPid("ayna-pid:abc\nx"), { pid: undefined, rest: "x" });
  });

  it("stopCommand is `kill -TERM <pid>`, for a plausible PID only", () => {
    assert.equal(stopCommand(4242), "kill -TERM 4242");
    for (const pid of [1, 0, -5, 1.5, NaN]) assert.throws(() => stopCommand(pid), /invalid pid/);
  });

  describe("through a real local sh", function () {
    this.timeout(20_000);
    // A unique argument so this run's sleeps can be told from any other process.
    const marker = `${process.pid}`;

    function sleepers(arg: string): number[] {
      const found: number[] = [];
      for (const d of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(d)) continue;
        try {
          if (fs.readFileSync(`/proc/${d}/cmdline`, "latin1") === `sleep\0${arg}\0`) found.push(Number(d));
        } catch {
          // The process ended while we looked.
        }
      }
      return found;
    }

    async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    it("the command sees hostile environment values and stdin exactly as sent", () => {
      const env = {
        QUOTES: `it's "double" and 'single' \\ back\\slash`,
        SUBST: "$(touch /tmp/ayna-pwned) `id` ${HOME} ; rm -rf /nonexistent",
        NEWLINES: "one\ntwo\n\nthree",
        TRAILING: "ends with newlines\n\n",
        UNICODE: "ünïcødé ✓ 日本語 🚀",
        EMPTY: "",
        DASH: "-n",
        X: "x",
      };
      const names = Object.keys(env).sort();
      const command = `printf '%s\\0' ${names.map((n) => `"$${n}"`).join(" ")}; printf '|'; cat`;
      const stdin = "first line\nno trailing newline ✓";
      const r = spawnSync("sh", ["-c", remoteInvocation(command, 30)], { input: envPrelude(env) + stdin });
      assert.equal(r.status, 0, r.stderr.toString());
      const expected = names.map((n) => env[n as keyof typeof env] + "\0").join("") + "|" + stdin;
      assert.equal(r.stdout.toString("utf8"), expected);
      assert.match(r.stderr.toString(), /^ayna-pid:\d+\n$/);
      assert.ok(!fs.existsSync("/tmp/ayna-pwned"), "no value was evaluated");
    });

    it("a malformed environment line stops the wrapper with 125 before the command runs", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-wrapper-"));
      try {
        const ran = path.join(dir, "ran");
        const r = spawnSync("sh", ["-c", remoteInvocation(`touch ${ran}`, 30)], { input: "A=!!not-base64!!\n\n" });
        assert.equal(r.status, 125);
        assert.ok(!fs.existsSync(ran));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("timeout stops a sleeping command after timeoutSeconds with status 124, and the sleep is gone", async () => {
      const arg = `30.${marker}1`;
      const started = Date.now();
      const r = spawnSync("sh", ["-c", remoteInvocation(`sleep ${arg}`, 1)], { input: "\n", timeout: 15_000 });
      const took = Date.now() - started;
      assert.equal(r.status, 124);
      assert.ok(took >= 900 && took < 5000, `took ${took} ms`);
      await until("the sleep to be gone", () => sleepers(arg).length === 0, 2000);
    });

    it("stopCommand with the PID the wrapper reported stops the running command and its sleep", async () => {
      const arg = `30.${marker}2`;
      const child = spawn("sh", ["-c", remoteInvocation(`sleep ${arg}`, 60)], { stdio: ["pipe", "ignore", "pipe"] });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on("exit", (code, signal) => resolve({ code, signal })),
      );
      try {
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.stdin.end("\n");
        await until("the PID line", () => splitPid(stderr).pid !== undefined);
        await until("the sleep to start", () => sleepers(arg).length === 1);
        const pid = splitPid(stderr).pid!;
        const stop = spawnSync("sh", ["-c", stopCommand(pid)]);
        assert.equal(stop.status, 0, stop.stderr.toString());
        const started = Date.now();
        const how = await exited;
        assert.ok(Date.now() - started < 3000, "stopped promptly");
        assert.ok(how.code !== 0, `ended by the stop (${JSON.stringify(how)})`);
        await until("the sleep to be gone", () => sleepers(arg).length === 0, 2000);
      } finally {
        child.kill("SIGKILL");
      }
    });
  });
});

describe("ayna provider: stderr lines as they arrive (lineReader)", () => {
  it("hands on each complete line at once, keeps a character split across chunks whole, and the rest at the end", () => {
    const got: string[] = [];
    const r = lineReader((l) => got.push(l));
    const bytes = Buffer.from("candidate ok: wéb\nhealth", "utf8");
    const split = bytes.indexOf(0xc3) + 1; // inside the two bytes of "é"
    r.push(bytes.subarray(0, split));
    assert.deepEqual(got, []);
    r.push(bytes.subarray(split));
    assert.deepEqual(got, ["candidate ok: wéb"]);
    r.push(Buffer.from(" ok\n\nlast"));
    assert.deepEqual(got, ["candidate ok: wéb", "health ok", ""]);
    r.end();
    assert.deepEqual(got, ["candidate ok: wéb", "health ok", "", "last"]);
  });

  it("leaves out a line longer than 4096 characters (a secret across a cut could not be masked), and goes on with the next", () => {
    const got: string[] = [];
    const r = lineReader((l) => got.push(l));
    r.push(Buffer.from("x".repeat(5000)));
    r.push(Buffer.from("y".repeat(3000) + "\nnext\n" + "v".repeat(4097) + "\nthen\n" + "z".repeat(4097)));
    r.end();
    assert.deepEqual(got, ["next", "then"]);
    const r2 = lineReader((l) => got.push(l));
    r2.push(Buffer.from("w".repeat(4096)));
    r2.end();
    assert.deepEqual(
      got.map((l) => l.length),
      [4, 4, 4096],
    );
  });
});

describe("ayna provider: SSH connections that fail before the handshake (SshPool against a local TCP server)", () => {
  // A child process runs the pool, so an error event nobody handles shows as that process dying.
  function attempt(mode: "silent" | "hangup"): { message: string; connections: number } {
    const script = [
      'const net = require("node:net");',
      'const { SshPool } = require("./plugins/provider/ssh");',
      'const { ed25519KeyPair } = require("./test/support/keys");',
      "let connections = 0;",
      "const held = [];",
      "const server = net.createServer((sock) => {",
      "  connections++;",
      "  sock.on('error', () => {});",
      "  if (process.env.MODE === 'hangup') sock.destroy(); else held.push(sock);",
      "});",
      "server.listen(0, '127.0.0.1', async () => {",
      "  const c = { host: '127.0.0.1', port: server.address().port, user: 'deploy', privateKey: ed25519KeyPair().private,",
      "    insecureIgnoreHostKey: true, connectTimeoutSeconds: 1, connectAttempts: 2 };",
      "  const pool = new SshPool();",
      "  let message = 'connected';",
      "  try { await pool.exec(c, 'true'); } catch (e) { message = e.message; }",
      "  // ssh2's late events (the socket's close after a timeout) arrive after the rejection.",
      "  await new Promise((r) => setTimeout(r, 1500));",
      "  for (const s of held) s.destroy();",
      "  server.close();",
      "  console.log(JSON.stringify({ message, connections }));",
      "});",
    ].join("\n");
    const r = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], {
      cwd: path.resolve(__dirname, "..", ".."),
      env: { ...process.env, MODE: mode },
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `the process running the pool died:\n${r.stderr}`);
    return JSON.parse(r.stdout) as { message: string; connections: number };
  }

  it("a host that accepts TCP but never speaks: each try times out, is retried, and the process stays up", function () {
    this.timeout(60_000);
    const out = attempt("silent");
    assert.equal(out.connections, 2);
    assert.match(out.message, /^ssh to deploy@127\.0\.0\.1:\d+: no answer within 1s \(check the address and port/);
  });

  it("a host that hangs up before its banner (a busy sshd's MaxStartups): retried, then a message naming the cause", function () {
    this.timeout(60_000);
    const out = attempt("hangup");
    assert.equal(out.connections, 2);
    assert.match(
      out.message,
      /^ssh to deploy@127\.0\.0\.1:\d+: the host closed the connection before the SSH handshake \(is this port sshd's/,
    );
  });
});

describe("ayna provider: host identity rules", () => {
  const cmd = { create: "echo hi", hostIdentity: identityA };
  const file = { path: "/etc/x", content: "a\n", mode: "0644", hostIdentity: identityA };
  const written = { ...file, sha256: sha256hex("a\n") };

  it("learning the key of an unpinned host replaces nothing and runs nothing", async () => {
    const { p, fake } = providerFor(configA);
    const d = p.diff(cmdUrn, { ...cmd, hostIdentity: "unpinned" }, cmd);
    assert.deepEqual([d.replaces, d.detailedDiff], [[], { hostIdentity: "update" }]);
    const f = p.diff(fileUrn, { ...written, hostIdentity: "unpinned" }, file);
    assert.deepEqual([f.replaces, f.detailedDiff], [[], { hostIdentity: "update" }]);
    await p.update(cmdUrn, { ...cmd, hostIdentity: "unpinned" }, cmd);
    const outs = (await p.update(fileUrn, { ...written, hostIdentity: "unpinned" }, file)).outs;
    assert.equal(fake.calls.length, 0, "nothing ran on the host");
    assert.equal(outs["sha256"], sha256hex("a\n"));
  });

  it("a resource from before identities were kept (none stored) is not replaced", () => {
    const { p } = providerFor(configA);
    const { hostIdentity: _drop, ...old } = cmd;
    void _drop;
    const d = p.diff(cmdUrn, old, cmd);
    assert.deepEqual([d.replaces, d.detailedDiff, d.deleteBeforeReplace], [[], { hostIdentity: "add" }, false]);
  });

  it("another pinned key is another machine: replaced, old state dropped first", () => {
    const { p } = providerFor(configA);
    const d = p.diff(cmdUrn, cmd, { ...cmd, hostIdentity: identityB });
    assert.deepEqual([d.replaces, d.deleteBeforeReplace], [["hostIdentity"], true]);
  });

  it("never runs the delete of a rebuilt machine's resource on the new machine", async () => {
    const { p, fake } = providerFor({ ...configA, hostKey: hostKeyB });
    await p.delete(cmdUrn, { ...cmd, delete: "systemctl disable --now x" });
    await p.delete(fileUrn, written);
    assert.equal(fake.calls.length, 0);
  });

  it("runs the delete of a resource on its own machine", async () => {
    const { p, fake } = providerFor(configA);
    await p.delete(cmdUrn, { ...cmd, delete: "systemctl disable --now x" });
    assert.equal(fake.calls.length, 1);
  });

  it("refuses a partial connection (a port alone) instead of treating it as none", async () => {
    const { p } = providerFor({});
    const r = await p.checkConfig({}, { port: 2222 });
    assert.equal(r.failures[0]?.property, "address");
    assert.match(r.failures[0]!.reason, /needs address, user and privateKey \(only port given\)/);
  });
});

describe("ayna provider: drift found by refresh", () => {
  const cmd = { create: "systemctl restart x", check: "systemctl is-active --quiet x", hostIdentity: identityA };

  it("a command whose check fails at refresh is marked drifted, and the next up runs it again", async () => {
    const { p, fake } = providerFor(configA, (c) =>
      c.command === cmd.check ? { code: 3, stdout: "", stderr: "" } : ok(),
    );
    const read = await p.read("id1", cmdUrn, cmd);
    assert.equal(read.props["drifted"], true);
    assert.deepEqual(
      fake.calls.map((c) => c.command),
      [cmd.check],
    );
    const d = p.diff(cmdUrn, read.props, cmd);
    assert.deepEqual([d.changes, d.detailedDiff], [true, { drifted: "delete" }]);
    const outs = (await p.update(cmdUrn, read.props, cmd)).outs;
    assert.equal(fake.calls.at(-1)!.command, cmd.create, "the command ran again");
    assert.equal(outs["drifted"], undefined, "no longer drifted");
  });

  it("a command whose check passes at refresh shows no change", async () => {
    const { p } = providerFor(configA, () => ok());
    const read = await p.read("id1", cmdUrn, { ...cmd, drifted: true });
    assert.equal(read.props["drifted"], undefined);
    assert.equal(p.diff(cmdUrn, read.props, cmd).changes, false);
  });

  it("a command without a check runs nothing at refresh", async () => {
    const { p, fake } = providerFor(configA);
    const { check: _c, ...noCheck } = cmd;
    void _c;
    await p.read("id1", cmdUrn, noCheck);
    assert.equal(fake.calls.length, 0);
  });

  it("a file written again after drift counts one more write, so what it feeds sees the repair", async () => {
    const { p } = providerFor(configA, () => ok());
    const file = { path: "/etc/x", content: "a\n", mode: "0644", hostIdentity: identityA };
    const created = (await p.create(fileUrn, file)).outs;
    assert.equal(created["writes"], 1);
    const drifted = { ...created, sha256: sha256hex("edited by hand") };
    const repaired = (await p.update(fileUrn, drifted, file)).outs;
    assert.equal(repaired["writes"], 2);
    assert.equal(repaired["sha256"], created["sha256"]);
  });
});
