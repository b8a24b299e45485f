// The provider's logic, free of gRPC so unit tests drive it directly with a
// fake executor. One instance serves one provider configuration: with a
// connection it runs commands and files on that host; without one it only
// makes random secrets.
import {
  checkCommand,
  createCommand,
  EngineMessage,
  deleteCommand,
  Progress,
  diffCommand,
  readCommand,
  updateCommand,
  withStdinHash,
} from "./command";
import { checkConfig, connectionOf, diffConfig } from "./config";
import { checkFile, createFile, deleteFile, diffFile, readFile, updateFile } from "./file";
import { checkPlan, createPlan, diffPlan, planLines, planMessage, updatePlan } from "./plan";
import { checkSecret, createSecret, diffSecret } from "./randomSecret";
import { Connection, Executor, Failure, hostIdentity } from "./ssh";
import { containsUnknown } from "./secrets";
import { defined, DiffResult, newMachine } from "./util";

type Props = Record<string, unknown>;

export const types = {
  command: "ayna:remote:Command",
  file: "ayna:remote:File",
  secret: "ayna:random:Secret",
  plan: "ayna:deploy:Plan",
} as const;

/** The resource type of a URN (the part after the last `$` of its type segment). */
export function typeOfUrn(urn: string): string {
  const typePart = urn.split("::")[2] ?? "";
  return typePart.slice(typePart.lastIndexOf("$") + 1);
}

function unknownType(urn: string): Error {
  return new Error(`ayna provider: unknown resource type ${typeOfUrn(urn)}`);
}

export interface CheckResult {
  inputs: Props;
  failures: Failure[];
  /** Messages for the engine to show on the resource (the deploy plan). */
  messages?: string[];
}

export class AynaProvider {
  private config: Props = {};
  private conn?: Connection;

  constructor(
    private readonly exec: Executor,
    readonly version: string,
  ) {}

  /**
   * Validates the connection; when it changed on a provider that already
   * exists (a new address, user, key or pinned host key), also logs in with
   * the new settings and runs nothing, so a key the host refuses is caught at
   * preview, before it replaces the one that works.
   */
  async checkConfig(olds: Props, news: Props): Promise<CheckResult> {
    const result = checkConfig(news, olds);
    const before = connectionOf(olds);
    if (result.failures.length > 0 || !before || containsUnknown(news) || !this.exec.probe) return result;
    if (!diffConfig(olds, news).changes) return result;
    const after = connectionOf(news)!;
    try {
      await this.exec.probe(after);
    } catch (e) {
      const message = (e as Error).message;
      const property = /host key/.test(message)
        ? "hostKey"
        : /refused the key/.test(message)
          ? "privateKey"
          : "address";
      result.failures.push({ property, reason: `the new connection does not work: ${message}` });
    }
    return result;
  }

  diffConfig(olds: Props, news: Props): DiffResult {
    return diffConfig(olds, news);
  }

  configure(config: Props): void {
    this.config = config;
    this.conn = containsUnknown(config) ? undefined : connectionOf(config);
  }

  /** The host the resource acts on; a clear error when this provider has none. */
  private connection(urn: string): Connection {
    if (this.conn) return this.conn;
    if (containsUnknown(this.config)) {
      throw new Error(`${typeOfUrn(urn)}: the provider's connection is not known yet`);
    }
    throw new Error(
      `${typeOfUrn(urn)} needs an ayna provider with a connection (address, user, privateKey, hostKey): ` +
        "create one per host and pass it as the resource's `provider`",
    );
  }

  check(urn: string, olds: Props, news: Props): CheckResult {
    switch (typeOfUrn(urn)) {
      case types.command:
      case types.file: {
        const isCommand = typeOfUrn(urn) === types.command;
        const failures = isCommand ? checkCommand(news) : checkFile(news);
        if (isCommand) {
          const hashed = withStdinHash(news);
          news = hashed.inputs;
          failures.push(...hashed.failures);
        }
        if (!this.conn && !containsUnknown(this.config)) {
          failures.push({
            property: "provider",
            reason: "needs an ayna provider with a connection: create one per host and pass it as `provider`",
          });
        }
        // The identity of the machine is part of every resource on it.
        const inputs = this.conn ? { ...news, hostIdentity: hostIdentity(this.conn) } : { ...news };
        return { inputs, failures };
      }
      case types.secret:
        return { inputs: news, failures: checkSecret(news) };
      case types.plan: {
        const failures = checkPlan(news);
        if (failures.length > 0) return { inputs: news, failures };
        const lines = planLines(olds, news);
        return { inputs: news, failures, messages: lines.length ? [planMessage(news, lines)] : [] };
      }
      default:
        throw unknownType(urn);
    }
  }

  diff(urn: string, olds: Props, news: Props): DiffResult {
    switch (typeOfUrn(urn)) {
      case types.command:
        return diffCommand(olds, news);
      case types.file:
        return diffFile(olds, news);
      case types.secret:
        return diffSecret(olds, news);
      case types.plan:
        return diffPlan(olds, news);
      default:
        throw unknownType(urn);
    }
  }

  /** `progress` shows a command's stderr lines while it runs (with `logStderr`). */
  async create(
    urn: string,
    inputs: Props,
    progress?: Progress,
  ): Promise<{ id: string; outs: Props; messages?: EngineMessage[] }> {
    let r: { id: string; outs: Props; messages?: EngineMessage[] };
    switch (typeOfUrn(urn)) {
      case types.command:
        r = await createCommand(this.exec, this.connection(urn), inputs, progress);
        break;
      case types.file:
        r = await createFile(this.exec, this.connection(urn), inputs);
        break;
      case types.secret:
        r = createSecret(inputs);
        break;
      case types.plan:
        r = createPlan(inputs);
        break;
      default:
        throw unknownType(urn);
    }
    return { id: r.id, outs: defined(r.outs), ...(r.messages?.length ? { messages: r.messages } : {}) };
  }

  async read(id: string, urn: string, props: Props): Promise<{ id: string; props: Props }> {
    if (typeOfUrn(urn) === types.file) {
      const r = await readFile(this.exec, this.connection(urn), id, props);
      return { id: r.id, props: defined(r.props) };
    }
    if (typeOfUrn(urn) === types.command && this.conn) {
      const r = await readCommand(this.exec, this.conn, id, props);
      return { id: r.id, props: defined(r.props) };
    }
    // Secrets have nothing on the host to read back.
    return { id, props: defined(props) };
  }

  async update(
    urn: string,
    olds: Props,
    news: Props,
    progress?: Progress,
  ): Promise<{ outs: Props; messages?: EngineMessage[] }> {
    let outs: Props;
    let messages: EngineMessage[] = [];
    switch (typeOfUrn(urn)) {
      case types.command:
        ({ outs, messages } = await updateCommand(this.exec, this.connection(urn), olds, news, progress));
        break;
      case types.file:
        outs = (await updateFile(this.exec, this.connection(urn), olds, news)).outs;
        break;
      case types.secret:
        // Only a change that replaces nothing gets here: keep the value.
        outs = { ...news, value: olds["value"] };
        break;
      case types.plan:
        outs = updatePlan(olds, news).outs;
        break;
      default:
        throw unknownType(urn);
    }
    return { outs: defined(outs), ...(messages.length ? { messages } : {}) };
  }

  async delete(urn: string, props: Props): Promise<void> {
    // A resource of a machine that has since been rebuilt (another pinned key)
    // went with that machine; its delete must not run on the new one.
    if (this.conn && newMachine(props, { hostIdentity: hostIdentity(this.conn) })) return;
    switch (typeOfUrn(urn)) {
      case types.command:
        return deleteCommand(this.exec, this.connection(urn), props);
      case types.file:
        return deleteFile(this.exec, this.connection(urn), props);
      case types.secret:
      case types.plan:
        return;
      default:
        throw unknownType(urn);
    }
  }

  /** The engine asks to stop: commands still running are stopped on their hosts. */
  async cancel(): Promise<void> {
    await this.exec.cancelAll();
  }
}
