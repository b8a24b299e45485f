// The project's resource provider (`pulumi-resource-ayna`): remote commands and
// files over SSH, one provider instance per host, and random secrets. It
// stands in for the upstream command and random providers, which cannot be
// built on these machines.
import * as fs from "node:fs";
import * as path from "node:path";
import { AynaProvider } from "./provider";
import { engineLog, serve } from "./server";
import { SshPool } from "./ssh";

export { AynaProvider, typeOfUrn, types } from "./provider";

export function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, "../../../package.json"), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/**
 * Exits once the process that started this one is gone. The engine starts
 * plugins in their own process group and stops them over gRPC or by signal;
 * a CLI killed outright (SIGKILL, an OOM kill) does neither, and the provider
 * would otherwise live on under PID 1 for good. Commands it started on hosts
 * run as transient units there and finish on their own. The parent's pid is
 * taken before the port line is printed: an engine killed as soon as it read
 * that line would otherwise already have been replaced by init.
 */
function exitWithParent(parent: number, everyMs = 500): void {
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, everyMs).unref(); // never the reason the process stays up
}

async function main(): Promise<void> {
  exitWithParent(process.ppid);
  const pool = new SshPool();
  const provider = new AynaProvider(pool, readVersion());
  // The engine's address comes last, after flags such as `--tracing <endpoint>`.
  const engine = process.argv
    .slice(2)
    .filter((a) => !a.startsWith("-"))
    .pop();
  const { port } = await serve(provider, engine ? engineLog(engine) : undefined);
  process.on("exit", () => pool.closeAll());
  // The engine reads the port from the first line of stdout.
  process.stdout.write(`${port}\n`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`pulumi-resource-ayna: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
