// A TCP relay on this machine's loopback between the deploying side and a
// test host's sshd, for fault tests: it can slow what the deployer sends (so
// an upload takes long enough to be interrupted) and cut every connection at
// once, as a network failure would. Bytes are relayed untouched: the SSH
// session, host key checks included, is the real one.
import * as net from "node:net";

export interface TcpProxy {
  /** The loopback port to connect to instead of the host's. */
  readonly port: number;
  /** Bytes relayed from clients to the host so far. */
  readonly upstreamBytes: number;
  /** Limits what clients send to the host, in bytes per second; 0 lifts the limit. */
  setRate(bytesPerSecond: number): void;
  /** Destroys every open connection (both sides); returns how many there were. */
  cut(): number;
  close(): Promise<void>;
}

export async function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let rate = 0;
  let upstreamBytes = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    upstream.pipe(client);
    // Under a rate, what a client sends goes out in small slices, one per
    // tick, and the client is not read while a backlog waits.
    const backlog: Buffer[] = [];
    let pumping = false;
    const pump = (): void => {
      const head = backlog[0];
      if (!head || upstream.destroyed) {
        pumping = false;
        client.resume();
        return;
      }
      const slice = rate > 0 ? head.subarray(0, 1024) : head;
      if (slice.length === head.length) backlog.shift();
      else backlog[0] = head.subarray(slice.length);
      upstreamBytes += slice.length;
      upstream.write(slice);
      if (rate > 0) setTimeout(pump, Math.ceil((slice.length * 1000) / rate));
      else pump();
    };
    client.on("data", (chunk: Buffer) => {
      backlog.push(chunk);
      client.pause();
      if (!pumping) {
        pumping = true;
        pump();
      }
    });
    client.on("end", () => {
      const finish = (): void => {
        if (backlog.length === 0) upstream.end();
        else setTimeout(finish, 50);
      };
      finish();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get upstreamBytes() {
      return upstreamBytes;
    },
    setRate(bytesPerSecond: number) {
      rate = bytesPerSecond;
    },
    cut() {
      const n = open.size / 2;
      for (const s of [...open]) s.destroy();
      open.clear();
      return n;
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
