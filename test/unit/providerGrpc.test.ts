// Contract test of the built provider over the engine's gRPC protocol. It is
// started as the engine starts it (the launcher, which rebuilds a stale dist/;
// the port is the first line of its stdout) and driven with the protocol stubs
// the engine's messages are encoded with. Only loopback traffic: the SSH
// targets are loopback ports nothing listens on.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";
import { EngineService } from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engineproto from "@pulumi/pulumi/proto/engine_pb";
import { ResourceProviderClient } from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as provproto from "@pulumi/pulumi/proto/provider_pb";
import { AynaProvider } from "../../plugins/provider/provider";
import { engineLog, service } from "../../plugins/provider/server";
import { ed25519KeyPair } from "../support/keys";
import { outlivesKilledParent } from "../support/procs";

type Props = Record<string, unknown>;

const repoRoot = path.resolve(__dirname, "..", "..");
const launcher = path.join(repoRoot, "plugins", "bin", "pulumi-resource-ayna");

// The engine's own markers, spelled out here rather than taken from the provider.
const secretSigKey = "4dabf18193072939515e22adb298388d";
const secretSig = "1b47061264138c4ac30d75fd1eb44270";
const secret = (value: unknown) => ({ [secretSigKey]: secretSig, value });

const loginKey = ed25519KeyPair().private;
const otherLoginKey = ed25519KeyPair().private;
const hostKey = ed25519KeyPair().public;
const otherHostKey = ed25519KeyPair().public;

function identityOf(line: string): string {
  const blob = Buffer.from(line.split(" ")[1]!, "base64");
  return "ssh-ed25519 SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

const cmdUrn = "urn:pulumi:dev::ayna-deploy::ayna:components:Host$ayna:remote:Command::web1-bootstrap";
const secretUrn = "urn:pulumi:dev::ayna-deploy::ayna:random:Secret::db-password";

const struct = (p: Props) => structproto.Struct.fromJavaScript(p as Record<string, structproto.JavaScriptValue>);
const plain = (s: structproto.Struct | undefined) => (s?.toJavaScript() ?? {}) as Props;

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

type Unary<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: (err: grpc.ServiceError | null, res: Res) => void,
) => grpc.ClientUnaryCall;

describe("ayna provider over gRPC (the built plugin, started as the engine starts it)", function () {
  this.timeout(30_000);
  let child: ChildProcess | undefined;
  let client: ResourceProviderClient;
  let stderr = "";
  let sshPort: number;
  let engine: grpc.Server | undefined;
  let engineAddress = "";
  /** What the provider sent to the engine's Log, in order. */
  const logged: { urn: string; message: string; severity: number; ephemeral: boolean }[] = [];

  /** One call with a deadline, so nothing here can hang. */
  function rpc<Req, Res>(method: Unary<Req, Res>, req: Req, ms = 20_000): Promise<Res> {
    return new Promise((resolve, reject) =>
      method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + ms }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  }

  async function rpcError<Req, Res>(method: Unary<Req, Res>, req: Req): Promise<grpc.ServiceError> {
    try {
      await rpc(method, req);
    } catch (e) {
      return e as grpc.ServiceError;
    }
    assert.fail("expected the call to fail");
  }

  function checkRequest(urn: string, news: Props, olds: Props = {}): provproto.CheckRequest {
    return new provproto.CheckRequest().setUrn(urn).setOlds(struct(olds)).setNews(struct(news));
  }

  function diffRequest(urn: string, olds: Props, news: Props): provproto.DiffRequest {
    return new provproto.DiffRequest().setId("id-1").setUrn(urn).setOlds(struct(olds)).setNews(struct(news));
  }

  function detailed(resp: provproto.DiffResponse): Record<string, provproto.PropertyDiff.Kind> {
    const out: Record<string, provproto.PropertyDiff.Kind> = {};
    resp.getDetaileddiffMap().forEach((v, k) => (out[k] = v.getKind()));
    return out;
  }

  /** The provider config as a program sets it: this machine's loopback, a port nothing listens on. */
  function goodConfig(): Props {
    return { address: "127.0.0.1", port: sshPort, user: "deploy", privateKey: loginKey, hostKey, connectAttempts: 1 };
  }

  before(async function () {
    // A stale dist/ is compiled first, as it would be under the engine.
    this.timeout(240_000);
    sshPort = await closedPort();
    // The engine's Log service, as the provider reaches it at the address it is started with.
    engine = new grpc.Server();
    engine.addService(EngineService, {
      log: (call: { request: engineproto.LogRequest }, cb: (e: null, r: emptyproto.Empty) => void) => {
        const r = call.request;
        logged.push({
          urn: r.getUrn(),
          message: r.getMessage(),
          severity: r.getSeverity(),
          ephemeral: r.getEphemeral(),
        });
        cb(null, new emptyproto.Empty());
      },
    });
    const enginePort = await new Promise<number>((resolve, reject) =>
      engine!.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) =>
        e ? reject(e) : resolve(port),
      ),
    );
    engineAddress = `127.0.0.1:${enginePort}`;
    child = spawn(launcher, [engineAddress], { cwd: os.tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const firstLine = await new Promise<string>((resolve, reject) => {
      let out = "";
      child!.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
      });
      child!.on("exit", (code, signal) =>
        reject(new Error(`the provider exited (${code ?? signal}) before printing its port:\n${stderr}`)),
      );
    });
    assert.match(firstLine, /^\d+$/, `the first stdout line is the port: ${JSON.stringify(firstLine)}`);
    client = new ResourceProviderClient(`127.0.0.1:${firstLine}`, grpc.credentials.createInsecure());
  });

  after(() => {
    client?.close();
    child?.kill("SIGTERM");
    engine?.forceShutdown();
  });

  it("Check of a deploy plan sends the plan to the engine's Log as info on the resource's URN, before it answers; no env value", async () => {
    const planUrn = "urn:pulumi:dev::ayna-deploy::ayna:components:Release$ayna:deploy:Plan::web1-plan";
    const manifest = {
      project: "demoapp",
      host: "web1",
      sha: "content-aaaa",
      files: { "core/views.py": "h1" },
      environment: "env-1",
      env: secret({ FEATURE_FLAG: "off-value" }),
      units: { "demoapp-web.service": "u1" },
      services: [{ role: "web", reload: "handover" }],
    };
    const news = { ...manifest, files: { "core/views.py": "h2" }, env: secret({ FEATURE_FLAG: "on-value" }) };
    const before = logged.length;
    const resp = await rpc(client.check, checkRequest(planUrn, news, { ...manifest, release: "v3" }));
    assert.deepEqual(resp.getFailuresList(), []);
    const sent = logged.slice(before);
    assert.equal(sent.length, 1, `one message: ${JSON.stringify(sent)}`);
    assert.equal(sent[0]!.urn, planUrn);
    assert.equal(sent[0]!.severity, engineproto.LogSeverity.INFO);
    assert.match(sent[0]!.message, /^deploy plan for web1:\n {2}release: v3 \(content-aaaa\) -> a new release/);
    assert.match(sent[0]!.message, /\n {2}env keys: changed FEATURE_FLAG\n/);
    assert.ok(!/off-value|on-value/.test(sent[0]!.message));
    // Nothing changed: nothing sent.
    await rpc(client.check, checkRequest(planUrn, news, { ...news, release: "v4" }));
    assert.equal(logged.length, before + 1);
  });

  it("the provider's engine Log client sends info and warning with the engine's severities, and a running command's line as ephemeral", async () => {
    const urn = "urn:pulumi:dev::ayna-deploy::ayna:components:Release$ayna:remote:Command::web1-deploy";
    const before = logged.length;
    const log = engineLog(engineAddress);
    await log(urn, "health ok: v2");
    await log(urn, "warning: slow start", "warning");
    await log(urn, "candidate ok: web", "info", true);
    assert.deepEqual(logged.slice(before), [
      { urn, message: "health ok: v2", severity: engineproto.LogSeverity.INFO, ephemeral: false },
      { urn, message: "warning: slow start", severity: engineproto.LogSeverity.WARNING, ephemeral: false },
      { urn, message: "candidate ok: web", severity: engineproto.LogSeverity.INFO, ephemeral: true },
    ]);
  });

  it("GetPluginInfo answers the project's version", async () => {
    const info = await rpc(client.getPluginInfo, new emptyproto.Empty());
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
    assert.equal(info.getVersion(), pkg.version);
  });

  it("CheckConfig accepts a complete config and hands the private key back secret-wrapped", async () => {
    const resp = await rpc(
      client.checkConfig,
      checkRequest("urn:pulumi:dev::p::pulumi:providers:ayna::web1-ssh", goodConfig()),
    );
    assert.deepEqual(resp.getFailuresList(), []);
    const inputs = plain(resp.getInputs());
    assert.deepEqual(inputs["privateKey"], secret(loginKey));
    assert.equal(inputs["address"], "127.0.0.1");
  });

  it("CheckConfig names an unknown key and a malformed host key, and never echoes the private key", async () => {
    const news = { ...goodConfig(), hostKey: "ssh-ed25519 not-a-key", hostname: "web1" };
    const resp = await rpc(
      client.checkConfig,
      checkRequest("urn:pulumi:dev::p::pulumi:providers:ayna::web1-ssh", news),
    );
    const failures = resp.getFailuresList().map((f) => [f.getProperty(), f.getReason()]);
    assert.deepEqual(
      failures.map(([p]) => p),
      ["hostname", "hostKey"],
    );
    assert.ok(!JSON.stringify(failures).includes(loginKey.split("\n")[1]!));
  });

  it("CheckConfig of a changed connection logs in with it: an unreachable new port fails on address, quickly", async () => {
    const started = Date.now();
    const olds = { ...goodConfig(), privateKey: secret(loginKey) };
    const news = { ...olds, port: await closedPort() };
    const resp = await rpc(
      client.checkConfig,
      checkRequest("urn:pulumi:dev::p::pulumi:providers:ayna::web1-ssh", news, olds),
    );
    const failures = resp.getFailuresList().map((f) => ({ property: f.getProperty(), reason: f.getReason() }));
    assert.equal(failures.length, 1, JSON.stringify(failures));
    assert.equal(failures[0]!.property, "address");
    assert.match(
      failures[0]!.reason,
      /^the new connection does not work: ssh to deploy@127\.0\.0\.1:\d+: connection refused/,
    );
    assert.ok(Date.now() - started < 10_000);
  });

  it("DiffConfig of a connection-only change is DIFF_SOME with no replacement, and a detailed diff", async () => {
    const olds = { ...goodConfig(), privateKey: secret(loginKey) };
    const news = { ...olds, address: "127.0.0.2", user: "ops", privateKey: secret(otherLoginKey) };
    const resp = await rpc(
      client.diffConfig,
      diffRequest("urn:pulumi:dev::p::pulumi:providers:ayna::web1-ssh", olds, news),
    );
    assert.equal(resp.getChanges(), provproto.DiffResponse.DiffChanges.DIFF_SOME);
    assert.deepEqual(resp.getReplacesList(), []);
    assert.equal(resp.getDeletebeforereplace(), false);
    assert.equal(resp.getHasdetaileddiff(), true);
    const U = provproto.PropertyDiff.Kind.UPDATE;
    assert.deepEqual(detailed(resp), { address: U, user: U, privateKey: U });
    assert.deepEqual([...resp.getDiffsList()].sort(), ["address", "privateKey", "user"]);
  });

  describe("configured with an `args` Struct (the current engine), the private key secret-wrapped", () => {
    before(async () => {
      const req = new provproto.ConfigureRequest()
        .setArgs(struct({ ...goodConfig(), privateKey: secret(loginKey), version: "0.1.0" }))
        .setAcceptsecrets(true)
        .setAcceptresources(true);
      const resp = await rpc(client.configure, req);
      // Secrets are kept wrapped both ways; nothing is created or updated during preview.
      assert.equal(resp.getAcceptsecrets(), true);
      assert.equal(resp.getSupportspreview(), false);
    });

    it("Check of a Command injects the host's identity and keeps the inputs", async () => {
      const news = { create: "systemctl restart app", stdin: secret("s3cret-value") };
      const resp = await rpc(client.check, checkRequest(cmdUrn, news));
      assert.deepEqual(resp.getFailuresList(), []);
      assert.deepEqual(plain(resp.getInputs()), { ...news, hostIdentity: identityOf(hostKey) });
    });

    it("Check of a Command with a secret command line fails, naming the property", async () => {
      const resp = await rpc(client.check, checkRequest(cmdUrn, { create: secret("echo s3cret") }));
      assert.deepEqual(
        resp.getFailuresList().map((f) => f.getProperty()),
        ["create"],
      );
    });

    it("Diff of a Command on a rebuilt host: replaced, deleted first, with each property's kind", async () => {
      const olds = { create: "install", environment: { A: "1" }, hostIdentity: identityOf(hostKey) };
      const news = { create: "install --v2", environment: { A: "1" }, hostIdentity: identityOf(otherHostKey) };
      const resp = await rpc(client.diff, diffRequest(cmdUrn, olds, news));
      assert.equal(resp.getChanges(), provproto.DiffResponse.DiffChanges.DIFF_SOME);
      assert.deepEqual(resp.getReplacesList(), ["hostIdentity"]);
      assert.equal(resp.getDeletebeforereplace(), true);
      assert.equal(resp.getHasdetaileddiff(), true);
      assert.deepEqual(detailed(resp), {
        create: provproto.PropertyDiff.Kind.UPDATE,
        hostIdentity: provproto.PropertyDiff.Kind.UPDATE_REPLACE,
      });
    });

    it("Diff of a Command whose environment alone changed is an in-place update; unchanged is DIFF_NONE", async () => {
      const olds = { create: "install", environment: { A: "1" }, hostIdentity: identityOf(hostKey) };
      const env = await rpc(client.diff, diffRequest(cmdUrn, olds, { ...olds, environment: { A: "2" } }));
      assert.equal(env.getChanges(), provproto.DiffResponse.DiffChanges.DIFF_SOME);
      assert.deepEqual(env.getReplacesList(), []);
      assert.deepEqual(detailed(env), { environment: provproto.PropertyDiff.Kind.UPDATE });
      const none = await rpc(client.diff, diffRequest(cmdUrn, olds, { ...olds }));
      assert.equal(none.getChanges(), provproto.DiffResponse.DiffChanges.DIFF_NONE);
      assert.deepEqual(detailed(none), {});
    });

    it("Create, Update and Delete of a RandomSecret: the value comes back secret-wrapped and Update keeps it", async () => {
      const created = await rpc(
        client.create,
        new provproto.CreateRequest().setUrn(secretUrn).setProperties(struct({ length: 32 })),
      );
      assert.match(created.getId(), /^secret-/);
      const outs = plain(created.getProperties());
      const value = outs["value"] as Props;
      assert.equal(value[secretSigKey], secretSig);
      assert.match(value["value"] as string, /^[A-Za-z0-9]{32}$/);

      const updated = await rpc(
        client.update,
        new provproto.UpdateRequest()
          .setId(created.getId())
          .setUrn(secretUrn)
          .setOlds(struct(outs))
          .setNews(struct({ length: 32, note: "x" })),
      );
      assert.deepEqual(plain(updated.getProperties()), { length: 32, note: "x", value });

      const deleted = await rpc(
        client.delete,
        new provproto.DeleteRequest().setId(created.getId()).setUrn(secretUrn).setProperties(struct(outs)),
      );
      assert.ok(deleted instanceof emptyproto.Empty);
    });

    it("Create of a Command against a loopback port nothing listens on fails fast with 'connection refused'", async () => {
      const checked = await rpc(client.check, checkRequest(cmdUrn, { create: "touch /tmp/never" }));
      const started = Date.now();
      const err = await rpcError(
        client.create,
        new provproto.CreateRequest().setUrn(cmdUrn).setProperties(checked.getInputs()),
      );
      assert.equal(err.code, grpc.status.UNKNOWN);
      assert.equal(
        err.details,
        `ssh to deploy@127.0.0.1:${sshPort}: connection refused (is sshd running, and is the port right?)`,
      );
      assert.ok(Date.now() - started < 10_000, "no retries, no hang");
    });

    it("Cancel answers while nothing runs", async () => {
      assert.ok((await rpc(client.cancel, new emptyproto.Empty())) instanceof emptyproto.Empty);
    });
  });

  describe("configured with the older `variables` map (every value a string)", () => {
    before(async () => {
      const req = new provproto.ConfigureRequest();
      const vars = req.getVariablesMap();
      vars.set("ayna:config:address", "127.0.0.1");
      vars.set("ayna:config:port", String(sshPort));
      vars.set("ayna:config:user", "ops");
      vars.set("ayna:config:privateKey", loginKey);
      vars.set("ayna:config:hostKey", otherHostKey);
      vars.set("ayna:config:connectAttempts", "1");
      await rpc(client.configure, req);
    });

    it("Check of a Command injects the identity of the host key given as a variable", async () => {
      const resp = await rpc(client.check, checkRequest(cmdUrn, { create: "true" }));
      assert.equal(plain(resp.getInputs())["hostIdentity"], identityOf(otherHostKey));
    });

    it("Create of a Command reaches the address, port (from a string) and user given as variables", async () => {
      const checked = await rpc(client.check, checkRequest(cmdUrn, { create: "true" }));
      const err = await rpcError(
        client.create,
        new provproto.CreateRequest().setUrn(cmdUrn).setProperties(checked.getInputs()),
      );
      assert.match(err.details, new RegExp(`^ssh to ops@127\\.0\\.0\\.1:${sshPort}: connection refused`));
    });
  });
});

describe("ayna provider's lifetime", () => {
  it("exits within 5 s when the engine that started it is killed outright (SIGKILL), instead of living on under init", async function () {
    // The launcher execs node, so the provider is the shell's child as it is the CLI's.
    this.timeout(240_000);
    const { gone, ms } = await outlivesKilledParent(launcher, ["127.0.0.1:1"], { cwd: os.tmpdir(), withinMs: 5_000 });
    assert.ok(gone, `the provider was still running ${ms} ms after its engine died`);
  });
});

describe("ayna provider's gRPC service in-process: messages of a create or update", () => {
  /** Calls one of the service's unary handlers as grpc-js does. */
  function unary<Res>(handler: unknown, request: unknown): Promise<Res> {
    type Handler = (call: { request: unknown }, cb: (e: unknown, r: Res) => void) => void;
    return new Promise((resolve, reject) => (handler as Handler)({ request }, (e, r) => (e ? reject(e) : resolve(r))));
  }

  it("Create and Update send each message to the engine's Log on the resource's URN, with its severity, before they answer", async () => {
    const urn = "urn:pulumi:dev::ayna-deploy::ayna:components:Release$ayna:remote:Command::web1-deploy";
    const sent: string[] = [];
    const stub = {
      create: async () => ({ id: "cmd-1", outs: { a: 1 }, messages: [{ severity: "info", text: "health ok: v2" }] }),
      update: async () => ({ outs: { a: 2 }, messages: [{ severity: "warning", text: "warning: slow start" }] }),
    };
    // The handlers call only create and update of the provider here.
    const svc = service(stub as unknown as AynaProvider, async (u, m, severity) => {
      sent.push(`${severity} ${u} ${m}`);
    });
    const created = await unary<provproto.CreateResponse>(
      svc["create"],
      new provproto.CreateRequest().setUrn(urn).setProperties(structproto.Struct.fromJavaScript({})),
    );
    assert.deepEqual([created.getId(), sent], ["cmd-1", [`info ${urn} health ok: v2`]]);
    const updated = await unary<provproto.UpdateResponse>(
      svc["update"],
      new provproto.UpdateRequest()
        .setUrn(urn)
        .setOlds(structproto.Struct.fromJavaScript({}))
        .setNews(structproto.Struct.fromJavaScript({})),
    );
    assert.deepEqual(updated.getProperties()?.toJavaScript(), { a: 2 });
    assert.deepEqual(sent, [`info ${urn} health ok: v2`, `warning ${urn} warning: slow start`]);
  });

  it("Create and Update send a running command's lines to the engine's Log as ephemeral info, in order, all before the final message and the answer; then the last line once more, so the resource's row ends on it", async () => {
    const urn = "urn:pulumi:dev::ayna-deploy::ayna:components:Release$ayna:remote:Command::web1-deploy";
    const sent: string[] = [];
    const running = (show: ((t: string) => void) | undefined, tag: string) => {
      for (const line of ["waiting for the deploy lock", "candidate ok: web", "health ok"]) show?.(`${tag} ${line}`);
    };
    const stub = {
      create: async (_u: string, _p: unknown, show?: (t: string) => void) => {
        running(show, "c");
        return { id: "cmd-1", outs: {}, messages: [{ severity: "info", text: "c done" }] };
      },
      update: async (_u: string, _o: unknown, _n: unknown, show?: (t: string) => void) => {
        running(show, "u");
        return { outs: {}, messages: [{ severity: "info", text: "u done" }] };
      },
    };
    // A slow engine: each message takes 20 ms to be taken.
    const svc = service(stub as unknown as AynaProvider, async (_u, m, severity, ephemeral) => {
      await new Promise((r) => setTimeout(r, 20));
      sent.push(`${severity}${ephemeral ? " ephemeral" : ""} ${m}`);
    });
    await unary<provproto.CreateResponse>(
      svc["create"],
      new provproto.CreateRequest().setUrn(urn).setProperties(structproto.Struct.fromJavaScript({})),
    );
    const lines = (tag: string) => [
      `info ephemeral ${tag} waiting for the deploy lock`,
      `info ephemeral ${tag} candidate ok: web`,
      `info ephemeral ${tag} health ok`,
      `info ${tag} done`,
      `info ephemeral ${tag} health ok`,
    ];
    assert.deepEqual(sent, lines("c"));
    await unary<provproto.UpdateResponse>(
      svc["update"],
      new provproto.UpdateRequest()
        .setUrn(urn)
        .setOlds(structproto.Struct.fromJavaScript({}))
        .setNews(structproto.Struct.fromJavaScript({})),
    );
    assert.deepEqual(sent, [...lines("c"), ...lines("u")]);
  });
});
