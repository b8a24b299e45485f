// The provider's gRPC face: the engine's ResourceProvider protocol, bound to
// AynaProvider. Written against the protocol stubs inside @pulumi/pulumi
// because the SDK's own provider server answers CheckConfig and DiffConfig
// with "not implemented" and ignores Configure's values, and a provider per
// host needs all three; it also sends detailed diffs, which the SDK's does not.
import * as grpc from "@grpc/grpc-js";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";
import type * as enginerpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import type * as engineproto from "@pulumi/pulumi/proto/engine_pb";
import * as plugproto from "@pulumi/pulumi/proto/plugin_pb";
import * as provrpc from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as provproto from "@pulumi/pulumi/proto/provider_pb";
import { AynaProvider, CheckResult } from "./provider";
import type { EngineMessage, Progress } from "./command";
import { DiffKind, DiffResult } from "./util";

type Props = Record<string, unknown>;
type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

const kinds: Record<DiffKind, provproto.PropertyDiff.Kind> = {
  add: provproto.PropertyDiff.Kind.ADD,
  "add-replace": provproto.PropertyDiff.Kind.ADD_REPLACE,
  delete: provproto.PropertyDiff.Kind.DELETE,
  "delete-replace": provproto.PropertyDiff.Kind.DELETE_REPLACE,
  update: provproto.PropertyDiff.Kind.UPDATE,
  "update-replace": provproto.PropertyDiff.Kind.UPDATE_REPLACE,
};

function props(s: structproto.Struct | undefined): Props {
  return (s?.toJavaScript() ?? {}) as Props;
}

function struct(p: Props): structproto.Struct {
  return structproto.Struct.fromJavaScript(p as Record<string, structproto.JavaScriptValue>);
}

function fail(e: unknown): grpc.ServiceError {
  const message = e instanceof Error ? e.message : String(e);
  return Object.assign(new Error(message), {
    code: grpc.status.UNKNOWN,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

/** Runs a handler and reports its error to the engine as the call's error. */
function handle<Req, Res>(fn: (req: Req) => Promise<Res> | Res) {
  return (call: { request: Req }, callback: Callback<Res>) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (e: unknown) => callback(fail(e)),
      );
  };
}

export function checkResponse(r: CheckResult): provproto.CheckResponse {
  const resp = new provproto.CheckResponse();
  resp.setInputs(struct(r.inputs));
  resp.setFailuresList(
    r.failures.map((f) => {
      const failure = new provproto.CheckFailure();
      failure.setProperty(f.property);
      failure.setReason(f.reason);
      return failure;
    }),
  );
  return resp;
}

export function diffResponse(d: DiffResult): provproto.DiffResponse {
  const resp = new provproto.DiffResponse();
  resp.setChanges(
    d.changes ? provproto.DiffResponse.DiffChanges.DIFF_SOME : provproto.DiffResponse.DiffChanges.DIFF_NONE,
  );
  resp.setReplacesList(d.replaces);
  resp.setDeletebeforereplace(d.deleteBeforeReplace);
  resp.setDiffsList(d.diffs);
  resp.setHasdetaileddiff(true);
  const detailed = resp.getDetaileddiffMap();
  for (const [k, kind] of Object.entries(d.detailedDiff)) {
    const pd = new provproto.PropertyDiff();
    pd.setKind(kinds[kind]);
    pd.setInputdiff(true);
    detailed.set(k, pd);
  }
  return resp;
}

/** Configure hands over values as a Struct (current engines) or as `ayna:config:key` strings (older ones). */
export function configOf(req: provproto.ConfigureRequest): Props {
  if (req.hasArgs()) return props(req.getArgs());
  const out: Props = {};
  req.getVariablesMap().forEach((v, k) => {
    out[k.slice(k.lastIndexOf(":") + 1)] = v;
  });
  return out;
}

/**
 * Shows a message on a resource in the engine's output (the deploy plan).
 * An ephemeral one is only the resource's current status: the summary at the
 * end leaves it out.
 */
export type EngineLog = (
  urn: string,
  message: string,
  severity?: "info" | "warning",
  ephemeral?: boolean,
) => Promise<void>;

/**
 * The engine's Log call at `address` (the engine passes it to every provider
 * it starts). A message that cannot be delivered is written to stderr, which
 * the engine shows too: a plan is never lost silently, nor fatal.
 */
export function engineLog(address: string): EngineLog {
  // The engine's stubs are loaded with the first message: most runs send none.
  let client: enginerpc.EngineClient | undefined;
  let proto: typeof engineproto | undefined;
  return (urn, message, severity = "info", ephemeral = false) =>
    new Promise((resolve) => {
      /* eslint-disable @typescript-eslint/no-require-imports -- lazy loads, see above */
      proto ??= require("@pulumi/pulumi/proto/engine_pb") as typeof engineproto;
      client ??= new (require("@pulumi/pulumi/proto/engine_grpc_pb") as typeof enginerpc).EngineClient(
        address,
        grpc.credentials.createInsecure(),
      );
      /* eslint-enable @typescript-eslint/no-require-imports */
      const req = new proto.LogRequest();
      req.setSeverity(severity === "warning" ? proto.LogSeverity.WARNING : proto.LogSeverity.INFO);
      req.setUrn(urn);
      req.setMessage(message);
      req.setEphemeral(ephemeral);
      client.log(req, (err) => {
        if (err) {
          process.stderr.write(
            `${message}\n(pulumi-resource-ayna: the engine did not take this message: ${err.message})\n`,
          );
        }
        resolve();
      });
    });
}

/**
 * A running command's lines as the resource's status, sent one after another
 * in order; `sent` resolves once every line so far has reached the engine.
 */
export function progressTo(
  log: EngineLog | undefined,
  urn: string,
): { show?: Progress; sent(): Promise<void>; last(): string | undefined } {
  if (!log) return { sent: () => Promise.resolve(), last: () => undefined };
  let chain = Promise.resolve();
  let last: string | undefined;
  return {
    show: (text) => {
      last = text;
      chain = chain.then(() => log(urn, text, "info", true));
    },
    sent: () => chain,
    last: () => last,
  };
}

/**
 * A command's final messages (its account, kept in the Diagnostics), then its
 * last streamed line once more as status: the display shows a resource's
 * latest message on its row, which would otherwise be the account's first line.
 */
async function report(
  log: EngineLog | undefined,
  urn: string,
  messages: EngineMessage[],
  progress: ReturnType<typeof progressTo>,
): Promise<void> {
  for (const m of messages) await log?.(urn, m.text, m.severity);
  const last = progress.last();
  if (messages.length > 0 && last !== undefined) await log?.(urn, last, "info", true);
}

/** The ResourceProvider service implementation for grpc-js. */
export function service(p: AynaProvider, log?: EngineLog): grpc.UntypedServiceImplementation {
  return {
    getPluginInfo: handle(() => {
      const info = new plugproto.PluginInfo();
      info.setVersion(p.version);
      return info;
    }),
    getSchema: handle(() => {
      const resp = new provproto.GetSchemaResponse();
      resp.setSchema("{}");
      return resp;
    }),
    checkConfig: handle(async (req: provproto.CheckRequest) =>
      checkResponse(await p.checkConfig(props(req.getOlds()), props(req.getNews()))),
    ),
    diffConfig: handle((req: provproto.DiffRequest) =>
      diffResponse(p.diffConfig(props(req.getOlds()), props(req.getNews()))),
    ),
    configure: handle((req: provproto.ConfigureRequest) => {
      p.configure(configOf(req));
      const resp = new provproto.ConfigureResponse();
      resp.setAcceptsecrets(true);
      resp.setAcceptresources(false);
      // Nothing runs during preview: create and update are only called for real.
      resp.setSupportspreview(false);
      return resp;
    }),
    check: handle(async (req: provproto.CheckRequest) => {
      const r = p.check(req.getUrn(), props(req.getOlds()), props(req.getNews()));
      for (const m of r.messages ?? []) await log?.(req.getUrn(), m);
      return checkResponse(r);
    }),
    diff: handle((req: provproto.DiffRequest) =>
      diffResponse(p.diff(req.getUrn(), props(req.getOlds()), props(req.getNews()))),
    ),
    create: handle(async (req: provproto.CreateRequest) => {
      const progress = progressTo(log, req.getUrn());
      const r = await p.create(req.getUrn(), props(req.getProperties()), progress.show).finally(progress.sent);
      await report(log, req.getUrn(), r.messages ?? [], progress);
      const resp = new provproto.CreateResponse();
      resp.setId(r.id);
      resp.setProperties(struct(r.outs));
      return resp;
    }),
    read: handle(async (req: provproto.ReadRequest) => {
      const r = await p.read(req.getId(), req.getUrn(), props(req.getProperties()));
      const resp = new provproto.ReadResponse();
      resp.setId(r.id);
      resp.setProperties(struct(r.props));
      if (req.hasInputs()) resp.setInputs(req.getInputs());
      return resp;
    }),
    update: handle(async (req: provproto.UpdateRequest) => {
      const progress = progressTo(log, req.getUrn());
      const r = await p
        .update(req.getUrn(), props(req.getOlds()), props(req.getNews()), progress.show)
        .finally(progress.sent);
      await report(log, req.getUrn(), r.messages ?? [], progress);
      const resp = new provproto.UpdateResponse();
      resp.setProperties(struct(r.outs));
      return resp;
    }),
    delete: handle(async (req: provproto.DeleteRequest) => {
      await p.delete(req.getUrn(), props(req.getProperties()));
      return new emptyproto.Empty();
    }),
    cancel: handle(async () => {
      await p.cancel();
      return new emptyproto.Empty();
    }),
    attach: handle(() => new emptyproto.Empty()),
  };
}

/** Serves the provider on a free loopback port; resolves to the port. */
export function serve(p: AynaProvider, log?: EngineLog): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server({ "grpc.max_receive_message_length": 400 * 1024 * 1024 });
  server.addService(provrpc.ResourceProviderService, service(p, log));
  return new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve({ server, port }),
    );
  });
}
