// A Node.js language host for the Pulumi engine (`pulumi-language-nodejs`).
//
// The engine's own host is a Go module that the module proxy reachable from
// these machines does not serve, so the project ships this one. It speaks the
// LanguageRuntime gRPC protocol with the protobuf stubs that ship inside
// @pulumi/pulumi, and runs the program through the SDK's own `cmd/run` entry
// point, exactly as the upstream host does. scripts/toolchain.sh installs it
// beside the pulumi CLI it builds, where the CLI looks for it.
import type * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type * as langrpc from "@pulumi/pulumi/proto/language_grpc_pb";
import type * as langproto from "@pulumi/pulumi/proto/language_pb";
import { loadProtocol, Protocol } from "./protocol";
import { buildRunInvocation, runOutcome, RunSettings } from "./run";

const proto = protocolOrExit();

// The engine starts the host in the program's directory. The fallback to the
// host's own location serves a copy compiled inside this repository (dist/).
function protocolOrExit(): Protocol {
  try {
    return loadProtocol([process.cwd(), __dirname]);
  } catch (err) {
    // The engine shows the host's stderr when the host exits before its port line.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

const hostVersion = readOwnVersion();

// Installed, the version sits in a package.json next to this file; compiled
// into dist/, it is the repository's.
function readOwnVersion(): string {
  for (const pkg of [path.join(__dirname, "package.json"), path.resolve(__dirname, "..", "..", "..", "package.json")]) {
    try {
      const parsed = JSON.parse(fs.readFileSync(pkg, "utf8")) as { version?: unknown };
      if (typeof parsed.version === "string") return parsed.version;
    } catch {
      // Not there: try the next place.
    }
  }
  return "0.0.0";
}

function optionsOf(req: langproto.RunRequest): Record<string, unknown> {
  const opts = req.getInfo()?.getOptions()?.toJavaScript();
  return (opts ?? {}) as Record<string, unknown>;
}

function settingsFrom(req: langproto.RunRequest, engineAddress: string): RunSettings {
  const config: Record<string, string> = {};
  req.getConfigMap().forEach((value, key) => {
    config[key] = value;
  });
  return {
    engineAddress,
    monitorAddress: req.getMonitorAddress(),
    project: req.getProject(),
    stack: req.getStack(),
    organization: req.getOrganization(),
    pwd: req.getPwd(),
    rootDirectory: req.getInfo()?.getRootDirectory() ?? "",
    program: req.getProgram() || req.getInfo()?.getEntryPoint() || ".",
    args: req.getArgsList(),
    dryRun: req.getDryrun(),
    queryMode: req.getQuerymode(),
    parallel: req.getParallel(),
    config,
    configSecretKeys: req.getConfigsecretkeysList(),
    options: optionsOf(req),
  };
}

function unary<Req, Res>(fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) =>
        callback({
          code: proto.grpc.status.INTERNAL,
          details: err instanceof Error ? err.message : String(err),
        }),
    );
  };
}

/** Programs running now: stopped with the host when its engine is gone. */
const programs = new Set<ReturnType<typeof spawn>>();

/**
 * The engine (`engine`, this host's parent pid at start) killed outright
 * (SIGKILL) cannot stop its plugins and leaves this host to init, listening
 * forever; the upstream hosts health-check their engine for the same reason.
 * The pid is taken before the port line is printed: taken after it, an engine
 * killed as soon as it read the line would already have been replaced by init.
 */
function exitWithEngine(engine: number): void {
  setInterval(() => {
    if (process.ppid === engine) return;
    for (const child of programs) child.kill("SIGTERM");
    process.exit(1);
  }, 500).unref();
}

function runProgram(settings: RunSettings): Promise<langproto.RunResponse> {
  const runScript = require.resolve("@pulumi/pulumi/cmd/run", {
    paths: [settings.pwd || process.cwd()],
  });
  const inv = buildRunInvocation(settings, runScript, process.execPath, process.env);
  return new Promise((resolve) => {
    // The program's output goes straight to this host's stdout/stderr, which the
    // engine reads and shows to the operator.
    const child = spawn(inv.command, inv.args, {
      cwd: inv.cwd,
      env: inv.env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    programs.add(child);
    child.on("error", (err) => {
      const res = new proto.langproto.RunResponse();
      res.setError(`could not start Node.js: ${err.message}`);
      resolve(res);
    });
    child.on("exit", (code, signal) => {
      programs.delete(child);
      const outcome = runOutcome(code, signal);
      const res = new proto.langproto.RunResponse();
      if (outcome.error) res.setError(outcome.error);
      if (outcome.bail) res.setBail(true);
      resolve(res);
    });
  });
}

function main(argv: string[]): void {
  const engine = process.ppid;
  const positional = argv.filter((a) => !a.startsWith("-"));
  const engineAddress = positional[positional.length - 1] ?? "";

  const impl: Partial<langrpc.ILanguageRuntimeServer> = {
    handshake: unary(async () => new proto.langproto.LanguageHandshakeResponse()),
    getPluginInfo: unary(async () => {
      const info = new proto.pluginproto.PluginInfo();
      info.setVersion(hostVersion);
      return info;
    }),
    // No provider is preloaded: the engine starts each provider the first time
    // the program registers one of its resources.
    getRequiredPlugins: unary(async () => new proto.langproto.GetRequiredPluginsResponse()),
    getRequiredPackages: unary(async () => new proto.langproto.GetRequiredPackagesResponse()),
    run: unary((req: langproto.RunRequest) => runProgram(settingsFrom(req, engineAddress))),
    about: unary(async () => {
      const res = new proto.langproto.AboutResponse();
      res.setExecutable(process.execPath);
      res.setVersion(process.version);
      return res;
    }),
    runtimeOptionsPrompts: unary(async () => new proto.langproto.RuntimeOptionsResponse()),
    cancel: unary(async () => new proto.emptyproto.Empty()),
  };

  const server = new proto.grpc.Server({ "grpc.max_receive_message_length": 400 * 1024 * 1024 });
  // Methods left out answer UNIMPLEMENTED, which the engine treats as "not supported".
  server.addService(proto.langrpc.LanguageRuntimeService, impl as langrpc.ILanguageRuntimeServer);
  server.bindAsync("127.0.0.1:0", proto.grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stderr.write(`language host: could not listen: ${err.message}\n`);
      process.exit(1);
    }
    // The engine reads the port from the first line of stdout.
    process.stdout.write(`${port}\n`);
    exitWithEngine(engine);
  });
}

main(process.argv.slice(2));
