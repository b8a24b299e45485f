// How the provider runs every command on a host. The SSH command line carries
// only the command text (never a secret): environment values travel first on
// stdin, then the command's own input. The host's `timeout` bounds the run, so
// a command that outlives its budget is stopped on the host, not only
// abandoned by the client, and the wrapper reports its PID so a cancelled
// command can be stopped too.
import { argv } from "./shell";

/** First line of stderr: `ayna-pid:<pid of timeout>`. */
export const pidMarker = "ayna-pid:";

/** Grace between TERM and KILL when a command runs out of time, seconds. */
export const killGraceSeconds = 10;

/** Exit status of `timeout` when the command ran out of time. */
export const timedOutStatus = 124;

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Reads NAME=base64 lines up to an empty line, exports them decoded (the `x`
// keeps trailing newlines that $(...) would strip), then hands the rest of
// stdin to the command under timeout.
const wrapper = [
  `printf '${pidMarker}%s\\n' "$$" >&2`,
  `while IFS= read -r l && [ -n "$l" ]; do v=$(printf %s "\${l#*=}" | base64 -d && echo x) || exit 125; export "\${l%%=*}=\${v%x}"; done`,
  `exec timeout -k ${killGraceSeconds} "$1" sh -c "$2"`,
].join("; ");

/** The SSH command line for `command`, stopped on the host after `timeoutSeconds`. */
export function remoteInvocation(command: string, timeoutSeconds: number): string {
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new Error(`invalid timeout ${timeoutSeconds}: a positive whole number of seconds`);
  }
  return argv("exec", "sh", "-c", wrapper, "ayna-run", timeoutSeconds, command);
}

/** What goes on stdin before the command's own input: one `NAME=base64` line each, then an empty line. */
export function envPrelude(env: Record<string, string> | undefined): string {
  const lines = Object.keys(env ?? {})
    .sort()
    .map((k) => {
      if (!envName.test(k)) throw new Error(`invalid environment variable name ${JSON.stringify(k)}`);
      return `${k}=${Buffer.from(env![k]!, "utf8").toString("base64")}`;
    });
  return lines.map((l) => l + "\n").join("") + "\n";
}

/** Stops a running command by the PID its wrapper reported (TERM; `timeout` passes it on to the command's group). */
export function stopCommand(pid: number): string {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`invalid pid ${pid}`);
  return argv("kill", "-TERM", pid);
}

/** Splits the wrapper's PID line off stderr. */
export function splitPid(stderr: string): { pid?: number; rest: string } {
  if (!stderr.startsWith(pidMarker)) return { rest: stderr };
  const nl = stderr.indexOf("\n");
  if (nl < 0) return { rest: "" };
  const pid = Number(stderr.slice(pidMarker.length, nl));
  return { pid: Number.isInteger(pid) && pid > 1 ? pid : undefined, rest: stderr.slice(nl + 1) };
}
