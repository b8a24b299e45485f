// Process checks on this machine, for tests of what outlives what.
import { spawn } from "node:child_process";
import * as fs from "node:fs";

/** Whether pid is a live process (a zombie counts as gone: it has exited). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/**
 * Starts `command args...` as the child of a shell that stands in for the
 * engine, waits until the child has printed its port line, SIGKILLs the shell
 * and reports whether the child was gone within `withinMs`. A child still
 * running then is SIGKILLed, so a failing test leaves nothing behind.
 */
export async function outlivesKilledParent(
  command: string,
  args: string[],
  opts: { cwd: string; withinMs: number },
): Promise<{ gone: boolean; ms: number }> {
  const parent = spawn("bash", ["-c", '"$@" & echo "pid $!"; wait', "engine", command, ...args], {
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const found = /^pid (\d+)$/m.exec(out)?.[1];
      if (found && /^\d+$/m.test(out)) resolve(Number(found));
    });
    parent.on("exit", () => reject(new Error(`the stand-in engine exited early: ${out}`)));
  });
  if (!alive(pid)) throw new Error(`the child ${pid} printed its port and exited by itself: ${out}`);
  parent.kill("SIGKILL");
  const killed = Date.now();
  while (alive(pid) && Date.now() - killed < opts.withinMs) await new Promise((r) => setTimeout(r, 100));
  const gone = !alive(pid);
  if (!gone) process.kill(pid, "SIGKILL");
  return { gone, ms: Date.now() - killed };
}
