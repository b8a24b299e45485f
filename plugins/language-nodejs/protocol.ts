// Where the language host gets gRPC and the LanguageRuntime protocol stubs.
//
// The host is installed beside the pulumi CLI, away from any program, so it
// brings no node_modules of its own: like the upstream host, which loads
// @pulumi/pulumi from the program it runs, it loads the stubs from the
// program's @pulumi/pulumi, and gRPC and google-protobuf from where those stubs
// load them. One copy of each matters: the generated serializers check
// `instanceof` against their own google-protobuf classes.
import { createRequire } from "node:module";
import type * as Grpc from "@grpc/grpc-js";
import type * as EmptyProto from "google-protobuf/google/protobuf/empty_pb";
import type * as LangRpc from "@pulumi/pulumi/proto/language_grpc_pb";
import type * as LangProto from "@pulumi/pulumi/proto/language_pb";
import type * as PluginProto from "@pulumi/pulumi/proto/plugin_pb";

export interface Protocol {
  grpc: typeof Grpc;
  emptyproto: typeof EmptyProto;
  langrpc: typeof LangRpc;
  langproto: typeof LangProto;
  pluginproto: typeof PluginProto;
  /** The language_grpc_pb.js file the stubs were loaded from. */
  source: string;
}

const stubs = "@pulumi/pulumi/proto/language_grpc_pb";

/** Loads the protocol from the first of `dirs` whose node_modules has @pulumi/pulumi. */
export function loadProtocol(dirs: string[]): Protocol {
  let source: string;
  try {
    source = require.resolve(stubs, { paths: dirs });
  } catch {
    throw new Error(
      `pulumi-language-nodejs: @pulumi/pulumi is not installed for the program in ${dirs[0] ?? "."} ` +
        "(looked for node_modules/@pulumi/pulumi from there up); run npm install in the program's directory",
    );
  }
  const fromStubs = createRequire(source);
  return {
    grpc: fromStubs("@grpc/grpc-js") as typeof Grpc,
    emptyproto: fromStubs("google-protobuf/google/protobuf/empty_pb") as typeof EmptyProto,
    langrpc: fromStubs("./language_grpc_pb.js") as typeof LangRpc,
    langproto: fromStubs("./language_pb.js") as typeof LangProto,
    pluginproto: fromStubs("./plugin_pb.js") as typeof PluginProto,
    source,
  };
}
