// The project's resource provider (`pulumi-resource-ayna`): remote commands and
// files over SSH, and random secrets. It stands in for the upstream command and
// random providers, which cannot be built on these machines.
import * as fs from "node:fs";
import * as path from "node:path";
import * as provider from "@pulumi/pulumi/provider";
import { checkCommand, createCommand, deleteCommand, diffCommand, updateCommand } from "./command";
import { checkFile, createFile, deleteFile, diffFile, readFile, updateFile } from "./file";
import { checkSecret, createSecret, diffSecret } from "./randomSecret";
import { SshPool } from "./ssh";
import { Failure } from "./util";

type Props = Record<string, unknown>;

export const types = {
  command: "ayna:remote:Command",
  file: "ayna:remote:File",
  secret: "ayna:random:Secret",
} as const;

/** The resource type of a URN (the part after the last `$` of its type segment). */
export function typeOfUrn(urn: string): string {
  const typePart = urn.split("::")[2] ?? "";
  return typePart.slice(typePart.lastIndexOf("$") + 1);
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, "../../../package.json"), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

function unknownType(urn: string): Error {
  return new Error(`ayna provider: unknown resource type ${typeOfUrn(urn)}`);
}

export class AynaProvider implements provider.Provider {
  readonly version = readVersion();
  constructor(private readonly pool: SshPool) {}

  async check(urn: string, _olds: Props, news: Props): Promise<provider.CheckResult> {
    let failures: Failure[];
    switch (typeOfUrn(urn)) {
      case types.command:
        failures = checkCommand(news);
        break;
      case types.file:
        failures = checkFile(news);
        break;
      case types.secret:
        failures = checkSecret(news);
        break;
      default:
        throw unknownType(urn);
    }
    return { inputs: news, failures };
  }

  async diff(_id: string, urn: string, olds: Props, news: Props): Promise<provider.DiffResult> {
    switch (typeOfUrn(urn)) {
      case types.command:
        return diffCommand(olds, news);
      case types.file:
        return diffFile(olds, news);
      case types.secret:
        return diffSecret(olds, news);
      default:
        throw unknownType(urn);
    }
  }

  async create(urn: string, inputs: Props): Promise<provider.CreateResult> {
    switch (typeOfUrn(urn)) {
      case types.command:
        return createCommand(this.pool, inputs);
      case types.file:
        return createFile(this.pool, inputs);
      case types.secret:
        return createSecret(inputs);
      default:
        throw unknownType(urn);
    }
  }

  async read(id: string, urn: string, props: Props): Promise<provider.ReadResult> {
    // Commands and secrets have nothing on the host to read back.
    if (typeOfUrn(urn) === types.file) return readFile(this.pool, id, props);
    return { id, props };
  }

  async update(_id: string, urn: string, olds: Props, news: Props): Promise<provider.UpdateResult> {
    switch (typeOfUrn(urn)) {
      case types.command:
        return updateCommand(this.pool, olds, news);
      case types.file:
        return updateFile(this.pool, news);
      case types.secret:
        // Only a keeper-free change gets here (e.g. none): keep the value.
        return { outs: { ...news, value: olds["value"] } };
      default:
        throw unknownType(urn);
    }
  }

  async delete(_id: string, urn: string, props: Props): Promise<void> {
    switch (typeOfUrn(urn)) {
      case types.command:
        return deleteCommand(this.pool, props);
      case types.file:
        return deleteFile(this.pool, props);
      case types.secret:
        return;
      default:
        throw unknownType(urn);
    }
  }
}

if (require.main === module) {
  const pool = new SshPool();
  process.on("exit", () => pool.closeAll());
  void provider.main(new AynaProvider(pool), process.argv.slice(2));
}
