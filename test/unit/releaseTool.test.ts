// The host-side release tool (builders/ayna-release.sh), one step at a time.
// Each test renders the tool into a scratch directory and runs bash that
// sources it (or runs it as a program) with the project root moved there
// (AYNA_RELEASE_ROOT) and systemctl, systemd-run, curl and journalctl replaced
// by stubs on PATH: they log their arguments, with the release `current`
// pointed to at the time, and answer from files the test writes.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { encodeUnits, ReleaseToolSpec, renderReleaseTool } from "../../builders/releaseTool";
import { alembicUpgrade, commandStep, djangoCollectstatic, djangoMigrate } from "../../builders/appSteps";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Call {
  /** The release `current` pointed to when the stub was called. */
  current: string;
  /** The command and its arguments, space-separated. */
  line: string;
}

const webCandidate = ["@RELEASE@/.venv/bin/gunicorn", "--bind", "127.0.0.1:8155", "config.wsgi:application"];

const baseSpec: ReleaseToolSpec = {
  project: "demoapp",
  stage: "production",
  // The deploy step chowns to the service user; the tests run as root.
  user: "root",
  group: "root",
  services: [
    { role: "web", port: 8150, reload: "handover", candidatePort: 8155, candidateCommand: webCandidate },
    { role: "celery", reload: "restart", checkCommand: ["/bin/sh", "-c", "echo celery app loads"] },
  ],
  keep: 3,
  healthPath: "/health",
  healthTimeoutSeconds: 10,
  healthPasses: 2,
  // Unit tests do not wait out the watch window (one liveness check); its own tests set it.
  watchSeconds: 0,
  lockWaitSeconds: 1,
};

// Every stub starts by logging "<current>\t<name> <args>".
const logCall = `#!/bin/bash
cur=$(basename "$(readlink "$AYNA_RELEASE_ROOT/releases/current" 2>/dev/null || echo none)")
printf '%s\\t%s\\n' "$cur" "$(basename "$0") $*" >>"$STUB_DIR/calls.log"
`;

const stubs: Record<string, string> = {
  // State lives in files: disabled/<unit>, inactive/<unit>, active/<handover unit>, show/<unit>.<property>.
  systemctl: `case "$1" in
  is-enabled) test ! -e "$STUB_DIR/disabled/$3" ;;
  # Handover units run only while a release hands over: inactive unless started.
  is-active) case "$3" in *-handover.service) test -e "$STUB_DIR/active/$3" ;; *) test ! -e "$STUB_DIR/inactive/$3" ;; esac ;;
  show) if [ "$2" = -p ]; then
      # show -p Id -p ActiveState -p MainPID -p NRestarts -- UNIT...: a block per unit, as systemctl prints it.
      shift 10
      for u; do
        st=active; [ ! -e "$STUB_DIR/inactive/$u" ] || st=inactive
        printf 'Id=%s\nActiveState=%s\nMainPID=%s\nNRestarts=%s\n\n' "$u" "$st" \
          "$(cat "$STUB_DIR/show/$u.MainPID" 2>/dev/null || echo 4242)" "$(cat "$STUB_DIR/show/$u.NRestarts" 2>/dev/null || echo 0)"
      done
    elif [ "$3" = ActiveState ]; then
      case "$4" in *-handover.service) [ -e "$STUB_DIR/active/$4" ] && echo active || echo inactive ;; *) [ -e "$STUB_DIR/inactive/$4" ] && echo inactive || echo active ;; esac
    else cat "$STUB_DIR/show/$4.$3" 2>/dev/null || { [ "$3" = MainPID ] && echo 4242; } || echo 0; fi ;;
  start | restart) shift; for u; do rm -f "$STUB_DIR/inactive/$u"; case "$u" in *-handover.service) touch "$STUB_DIR/active/$u" ;; esac; done ;;
  stop) shift; for u; do rm -f "$STUB_DIR/active/$u"; done ;;
esac
`,
  // curl/<port> holds one answer per request, the last one repeated: "200 <body>" or an HTTP error status.
  curl: `for url; do :; done
port=$(printf '%s' "$url" | sed -n 's|^http://127.0.0.1:\\([0-9]*\\)/.*|\\1|p')
f="$STUB_DIR/curl/$port"
[ -f "$f" ] || { echo "curl: (7) Failed to connect to 127.0.0.1 port $port" >&2; exit 7; }
n=$(( $(cat "$f.n" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$f.n"
line=$(sed -n "$n"p "$f")
[ -n "$line" ] || line=$(tail -n 1 "$f")
case "$line" in
  "200 "*) printf '%s' "$line" | cut -c5- | tr -d '\\n' ;;
  *) echo "curl: (22) The requested URL returned error: $line" >&2; exit 22 ;;
esac
`,
  journalctl: `echo "last words of $2"
`,
  // pgrep -P PID: the server has one worker, 4343.
  pgrep: `echo 4343
`,
  // --wait runs the command after "--" (run_as_app); otherwise it only starts a unit.
  "systemd-run": `case " $* " in *" --wait "*) ;; *) exit 0 ;; esac
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do case "$1" in WorkingDirectory=*) cd "\${1#WorkingDirectory=}" ;; esac; shift; done
shift
exec "$@"
`,
};

// For the switch test: ln and mv log which of their arguments are symlinks, then run for real.
const linkLogger = `for a; do if [ -L "$a" ]; then echo "$a -> $(readlink "$a")" >>"$STUB_DIR/links.log"; fi; done
exec "/usr/bin/$(basename "$0")" "$@"
`;

const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

/** A scratch host: the rendered tool, a project root, stubs and their state. */
class Sandbox {
  readonly root: string;
  readonly stubDir: string;
  readonly tool: string;
  /** Stands in for /etc/systemd/system. */
  readonly unitDir: string;
  private readonly helpers: ChildProcess[] = [];

  constructor(
    readonly dir: string,
    spec: ReleaseToolSpec,
  ) {
    this.root = path.join(dir, "root");
    this.stubDir = path.join(dir, "stub");
    this.tool = path.join(dir, "ayna-release");
    this.unitDir = path.join(dir, "units");
    fs.mkdirSync(this.unitDir);
    fs.mkdirSync(path.join(this.stubDir, "bin"), { recursive: true });
    for (const d of ["active", "curl", "disabled", "inactive", "show"]) fs.mkdirSync(path.join(this.stubDir, d));
    for (const [name, body] of Object.entries(stubs)) this.stub(name, body);
    fs.writeFileSync(path.join(this.stubDir, "calls.log"), "");
    fs.writeFileSync(this.tool, renderReleaseTool(spec), { mode: 0o755 });
  }

  stub(name: string, body: string): void {
    fs.writeFileSync(path.join(this.stubDir, "bin", name), logCall + body, { mode: 0o755 });
  }

  /** The directories main creates before any step runs. */
  tree(): void {
    for (const d of ["releases", "venvs", "logs"]) fs.mkdirSync(path.join(this.root, d), { recursive: true });
  }

  /** A complete release vN on an environment (built), optionally marked failed. */
  release(name: string, opts: { venv?: string; checksum?: string; sha?: string; failed?: boolean } = {}): string {
    const venv = opts.venv ?? "envA";
    const dir = path.join(this.root, "releases", name);
    this.tree();
    fs.mkdirSync(dir);
    this.env(venv);
    fs.symlinkSync(`../../venvs/${venv}`, path.join(dir, ".venv"));
    fs.writeFileSync(
      path.join(dir, ".ayna-release.json"),
      `{"release": "${name}", "sha": "${opts.sha ?? `sha-${name}`}", "checksum": "${opts.checksum ?? ""}", "venv": "${venv}"}\n`,
    );
    if (opts.failed) fs.writeFileSync(path.join(dir, ".ayna-failed"), "");
    return dir;
  }

  /** A built environment under venvs/. */
  env(name: string): string {
    const dir = path.join(this.root, "venvs", name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, ".ayna-complete"), "");
    return dir;
  }

  setCurrent(name: string): void {
    fs.mkdirSync(path.join(this.root, "releases"), { recursive: true });
    fs.symlinkSync(name, path.join(this.root, "releases", "current"));
  }

  current(): string {
    return fs.readlinkSync(path.join(this.root, "releases", "current"));
  }

  setPrevious(name: string): void {
    fs.writeFileSync(path.join(this.root, ".previous-release"), `${name}\n`);
  }

  releases(): string[] {
    return fs.readdirSync(path.join(this.root, "releases")).sort();
  }

  /** What curl answers on a port, one request after another (the last answer repeats). */
  answers(port: number, ...answers: string[]): void {
    fs.writeFileSync(path.join(this.stubDir, "curl", String(port)), answers.join("\n") + "\n");
    fs.rmSync(path.join(this.stubDir, "curl", `${port}.n`), { force: true });
  }

  state(file: string, content = ""): void {
    fs.writeFileSync(path.join(this.stubDir, file), content);
  }

  calls(command?: string): Call[] {
    return fs
      .readFileSync(path.join(this.stubDir, "calls.log"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [current = "", line = ""] = l.split("\t");
        return { current, line: line.trimEnd() };
      })
      .filter((c) => !command || c.line.split(" ")[0] === command);
  }

  /** Lines of a file under the project root. */
  lines(file: string): string[] {
    return fs.readFileSync(path.join(this.root, file), "utf8").trimEnd().split("\n");
  }

  exists(file: string): boolean {
    return fs.existsSync(path.join(this.root, file));
  }

  /** A process kept running for the test (a lock holder, a service's main process). */
  helper(cmd: string[], cwd?: string): number {
    const p = spawn(cmd[0]!, cmd.slice(1), { cwd, stdio: "ignore" });
    this.helpers.push(p);
    return p.pid!;
  }

  /** Bash that sources the tool (so main does not run) and then runs `script`. */
  source(script: string, input?: Buffer): Promise<Run> {
    // Short pauses between health requests: the tests' answers come at once.
    return this.run(["bash", "-c", `source "$TOOL"\nPOLL_INTERVAL=0.01\n${script}`], input);
  }

  /** The tool run as a program, as components/release.ts runs it on a host. */
  program(args: string[], input?: Buffer): Promise<Run> {
    return this.run([this.tool, ...args], input);
  }

  private run(cmd: string[], input?: Buffer): Promise<Run> {
    const env = {
      PATH: `${path.join(this.stubDir, "bin")}:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: this.dir,
      TOOL: this.tool,
      STUB_DIR: this.stubDir,
      AYNA_RELEASE_ROOT: this.root,
      AYNA_UNIT_DIR: this.unitDir,
      AYNA_PROC: path.join(this.stubDir, "proc"),
      AYNA_ACTOR: "tester@ci",
    };
    return new Promise((resolve, reject) => {
      const child = spawn(cmd[0]!, cmd.slice(1), { env, cwd: this.dir, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.stdin.on("error", () => undefined); // a script that does not read its input
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(input ?? "");
    });
  }

  cleanup(): void {
    for (const p of this.helpers) p.kill("SIGKILL");
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const sandboxes: Sandbox[] = [];
const scratch: string[] = [];

function sandbox(overrides: Partial<ReleaseToolSpec> = {}): Sandbox {
  // realpath: the tool compares resolved environment paths with the ones it lists.
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "ayna-release-test-")));
  const sb = new Sandbox(dir, { ...baseSpec, ...overrides });
  sandboxes.push(sb);
  return sb;
}

const healthy = (release: string) => `200 {"status": "ok", "release": "${release}"}`;
const far = "$(( $(date +%s) + 60 ))";

/** A code archive (tar.gz of a one-file app) and the sha256 of its tar, as local/archive.ts gives it. */
function archive(dir: string, tag: string): { data: Buffer; checksum: string } {
  const src = path.join(dir, `app-${tag}`);
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "app.py"), `TAG = ${JSON.stringify(tag)}\n`);
  const file = path.join(dir, `app-${tag}.tar.gz`);
  const r = spawnSync("tar", ["-czf", file, "-C", src, "."]);
  assert.equal(r.status, 0, String(r.stderr));
  const data = fs.readFileSync(file);
  return { data, checksum: crypto.createHash("sha256").update(zlib.gunzipSync(data)).digest("hex") };
}

function deployArgs(a: { checksum: string }, sha: string, venv = "envA"): string[] {
  return ["deploy", "--sha", sha, "--checksum", a.checksum, "--venv", venv];
}

/** Deploys `a` with its web candidate and the web port answering healthy for `release`. */
function healthyDeploy(sb: Sandbox, a: { data: Buffer; checksum: string }, sha: string, release: string): Promise<Run> {
  sb.answers(8155, healthy(release));
  sb.answers(8150, healthy(release));
  return sb.program(deployArgs(a, sha), a.data);
}

afterEach(() => {
  for (const sb of sandboxes.splice(0)) sb.cleanup();
  for (const d of scratch.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("ayna-release: the script", () => {
  it("sourcing it defines the steps and runs nothing (main runs only when executed)", async () => {
    const sb = sandbox();
    const r = await sb.source("declare -F main poll_health acquire_lock switch_to activate prune >/dev/null");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sb.calls(), []);
    assert.equal(fs.existsSync(sb.root), false, "main would have created the project tree");
  });
});

describe("ayna-release: health poll", () => {
  it("passes on the HEALTH_PASSES-th healthy answer in a row; an unhealthy answer restarts the count", async () => {
    const sb = sandbox({ healthPasses: 3 });
    sb.answers(8150, healthy("v2"), "503", healthy("v2"), healthy("v2"), healthy("v2"), "503");
    const r = await sb.source(`poll_health http://127.0.0.1:8150/health v2 ${far}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      sb.calls("curl").map((c) => c.line),
      new Array<string>(5).fill("curl -fsS --max-time 2 http://127.0.0.1:8150/health"),
    );
  });

  it("counts only answers that name the expected release (v1, v22 and a 200 without a release do not count for v2)", async () => {
    const sb = sandbox({ healthPasses: 2 });
    // Were v1, v22 or the bare 200 counted, two in a row would come at request 2, 4 or 6.
    sb.answers(
      8150,
      healthy("v2"),
      healthy("v1"),
      healthy("v2"),
      healthy("v22"),
      healthy("v2"),
      '200 {"status": "ok"}',
      healthy("v2"),
      healthy("v2"),
    );
    const r = await sb.source(`poll_health http://127.0.0.1:8150/health v2 ${far}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sb.calls("curl").length, 8);
  });

  it("fails once its deadline has passed, keeping the last answer for the message", async () => {
    const sb = sandbox();
    sb.answers(8150, "503");
    const r = await sb.source(
      'rc=0; poll_health http://127.0.0.1:8150/health v2 "$(date +%s)" || rc=$?; echo "rc=$rc answer=$HEALTH_ANSWER"',
    );
    assert.equal(r.stdout, "rc=1 answer=curl: (22) The requested URL returned error: 503\n");
    assert.equal(sb.calls("curl").length, 1);
  });

  it("fails at once, long before its deadline, when the watched candidate unit is no longer running", async () => {
    const sb = sandbox();
    sb.answers(8155, "503");
    sb.state("inactive/demoapp-web-candidate.service");
    const started = Date.now();
    const r = await sb.source(
      `rc=0; poll_health http://127.0.0.1:8155/health v2 ${far} demoapp-web-candidate.service || rc=$?; echo "rc=$rc"`,
    );
    assert.equal(r.stdout, "rc=1\n");
    assert.equal(sb.calls("curl").length, 1);
    assert.ok(Date.now() - started < 10_000);
  });

  it("is the one poll used for candidates, for the real ports after the switch and for the check after a rollback", async () => {
    // Deadlines are whole seconds, so a 1 s timeout may leave no time at all; a poll that must pass gets 2.
    const sb = sandbox({ healthTimeoutSeconds: 2 });
    sb.release("v1");
    const v2 = sb.release("v2");
    sb.setCurrent("v1");
    sb.answers(8155, healthy("v2"));
    sb.answers(8150, healthy("v1")); // the real port never serves v2: rolled back
    const r = await sb.source(`
      eval "real_$(declare -f poll_health)"
      poll_health() { echo "poll_health $1 $2 watching=\${4:-none}" >>"$STUB_DIR/polls.log"; real_poll_health "$@"; }
      candidate_check ${v2} v2
      activate v1 v2 sha2 deploy`);
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(fs.readFileSync(path.join(sb.stubDir, "polls.log"), "utf8").trimEnd().split("\n"), [
      "poll_health http://127.0.0.1:8155/health v2 watching=demoapp-web-candidate.service",
      "poll_health http://127.0.0.1:8150/health v2 watching=none",
      "poll_health http://127.0.0.1:8150/health v1 watching=none",
    ]);
  });

  // web answers only once api has been asked: a poll of one service after the
  // other never gets there (web fails its budget, 2 s idle past it).
  const apiService = { role: "api" as const, port: 8151, reload: "handover" as const };
  const afterApiAsked = (webPort: number, apiPort: number) => `
      (for _ in $(seq 500); do [ -e "$STUB_DIR/curl/${apiPort}.n" ] && break; sleep 0.01; done
       mv "$STUB_DIR/curl/${webPort}.later" "$STUB_DIR/curl/${webPort}") &`;

  const webAndApi = () => sandbox({ healthTimeoutSeconds: 1, services: [baseSpec.services[0]!, apiService] });

  it("the health gate polls web and api side by side, and names both healthy in the services' order", async () => {
    const sb = webAndApi();
    sb.state("curl/8150.later", `${healthy("v2")}\n`);
    sb.answers(8151, healthy("v2"));
    const t0 = Date.now();
    const r = await sb.source(`${afterApiAsked(8150, 8151)}\nhttp_gate v2`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - t0 < 8_000);
    assert.match(
      r.stderr,
      /^health ok: http:\/\/127\.0\.0\.1:8150\/health serves v2\nhealth ok: http:\/\/127\.0\.0\.1:8151\/health serves v2$/m,
    );
  });

  for (const [where, tmpdir] of [
    ["side by side", ""],
    ["one after the other when no temporary directory can be made", "TMPDIR=/nonexistent/ayna; "],
  ]) {
    it(`the health gate ${where}: the first failing service in order is named, with its answer and log lines, exit 1`, async () => {
      const sb = webAndApi();
      sb.answers(8150, healthy("v2"));
      sb.answers(8151, "503");
      const r = await sb.source(`${tmpdir}rc=0; http_gate v2 || rc=$?; echo "rc=$rc"`);
      assert.equal(r.stdout, "rc=1\n");
      assert.equal(
        r.stderr,
        "health ok: http://127.0.0.1:8150/health serves v2\n" +
          "health check failed: http://127.0.0.1:8151/health did not answer 200 for release v2 within 1s; " +
          "last answer: curl: (22) The requested URL returned error: 503\n" +
          "last log lines of demoapp-api.service:\nlast words of demoapp-api.service\n",
      );
    });
  }

  it("the health gate without a temporary directory still passes a healthy release, polling one service after the other", async () => {
    const sb = webAndApi();
    sb.answers(8150, healthy("v2"));
    sb.answers(8151, healthy("v2"));
    const r = await sb.source("TMPDIR=/nonexistent/ayna; http_gate v2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^health ok: http:\/\/127\.0\.0\.1:8150\/health serves v2\nhealth ok: http:\/\/127\.0\.0\.1:8151\/health serves v2$/m,
    );
    assert.ok(!fs.existsSync("/0") && !fs.existsSync("/0.answer"), "results written at the filesystem root");
  });

  it("a tool stopped mid-gate (SIGTERM) stops its side-by-side polls and leaves no results directory behind", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 30, services: [baseSpec.services[0]!, apiService] });
    sb.env("envA");
    const a = archive(sb.dir, "a");
    fs.writeFileSync(path.join(sb.dir, "a.tgz"), a.data);
    sb.answers(8155, healthy("v1"));
    sb.answers(8150, "503");
    sb.answers(8151, "503");
    const curls = 'cut -f2 "$STUB_DIR/calls.log" | grep -c "^curl "';
    const r = await sb.source(`
      export TMPDIR="$HOME/tmp"; mkdir "$TMPDIR"
      "$TOOL" ${deployArgs(a, "sha1").join(" ")} <"$HOME/a.tgz" >"$HOME/tool.log" 2>&1 &
      tool=$!
      for _ in $(seq 1000); do [ -e "$STUB_DIR/curl/8151.n" ] && [ -e "$STUB_DIR/curl/8150.n" ] && break; sleep 0.01; done
      echo "mid-gate: $(ls "$TMPDIR")"
      kill -TERM "$tool"; rc=0; wait "$tool" || rc=$?; echo "tool: $rc"
      sleep 1; before=$(${curls}); sleep 1
      echo "polls after: $(( $(${curls}) - before ))"
      echo "left: $(ls -A "$TMPDIR")"`);
    assert.equal(r.code, 0, r.stdout + r.stderr + fs.readFileSync(path.join(sb.dir, "tool.log"), "utf8"));
    assert.match(r.stdout, /^mid-gate: ayna-poll\.\w{6}\ntool: 143\npolls after: 0\nleft: \n$/);
  });

  it("the candidates of web and api are polled side by side", async () => {
    const apiCandidate = ["@RELEASE@/.venv/bin/gunicorn", "--bind", "127.0.0.1:8156", "api.main:app"];
    const sb = sandbox({
      healthTimeoutSeconds: 1,
      services: [baseSpec.services[0]!, { ...apiService, candidatePort: 8156, candidateCommand: apiCandidate }],
    });
    const v2 = sb.release("v2");
    sb.state("curl/8155.later", `${healthy("v2")}\n`);
    sb.answers(8156, healthy("v2"));
    const r = await sb.source(`${afterApiAsked(8155, 8156)}\ncandidate_check ${v2} v2`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^candidate ok: web of v2 is healthy on 127\.0\.0\.1:8155\ncandidate ok: api of v2 is healthy on 127\.0\.0\.1:8156$/m,
    );
  });

  it("health gate after the switch: on timeout it names the URL, release, timeout and last answer, then the unit's last log lines", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    sb.answers(8150, "503");
    const r = await sb.source('rc=0; http_gate v2 || rc=$?; echo "rc=$rc"');
    assert.equal(r.stdout, "rc=1\n");
    assert.equal(
      r.stderr,
      "health check failed: http://127.0.0.1:8150/health did not answer 200 for release v2 within 1s; " +
        "last answer: curl: (22) The requested URL returned error: 503\n" +
        "last log lines of demoapp-web.service:\n" +
        "last words of demoapp-web.service\n",
    );
    assert.deepEqual(
      sb.calls("journalctl").map((c) => c.line),
      ["journalctl -u demoapp-web.service -n 20 --no-pager -o cat"],
    );
  });

  // A server's CPU time as /proc/PID/stat shows it: utime is the 14th field, here after a comm with a space.
  const busyServer = (ticksPerTenth: number) => `
    mkdir -p "$AYNA_PROC/4242"
    ( t=0; while :; do
        printf '4242 (gunicorn: master) S 1 4242 4242 0 -1 4194560 100 0 0 0 %d 3 0 0 20 0 1 0\\n' "$t" >"$AYNA_PROC/4242/stat.tmp"
        mv "$AYNA_PROC/4242/stat.tmp" "$AYNA_PROC/4242/stat"; t=$((t + ${ticksPerTenth})); sleep 0.1
      done ) >/dev/null 2>&1 &
    busy=$!`;

  it("health gate: a server still starting (refusing connections, using CPU) when the budget runs out gets more time and passes: a host short of CPU does not fail a healthy release", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 2 });
    // Connections refused for 3.5 s (no answers file), then healthy: past the 2 s budget, within three times it.
    sb.state("curl/8150.later", `${healthy("v2")}\n`);
    const r = await sb.source(`${busyServer(3)}
      (sleep 3.5; mv "$STUB_DIR/curl/8150.later" "$STUB_DIR/curl/8150") &
      rc=0; http_gate v2 || rc=$?; kill "$busy"; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=0\n", r.stderr);
    assert.match(
      r.stderr,
      /^health: demoapp-web\.service was still starting \(using CPU\) when the 2s budget ran out; it answered [1-4]s past it$/m,
    );
    assert.match(r.stderr, /^health ok: http:\/\/127\.0\.0\.1:8150\/health serves v2$/m);
  });

  it("health gate: a server that answers an error status gets no more time, however busy it is (serving traffic)", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    sb.answers(8150, "503");
    const t0 = Date.now();
    const r = await sb.source(`${busyServer(3)}
      rc=0; http_gate v2 || rc=$?; kill "$busy"; echo "rc=$rc"`);
    const took = (Date.now() - t0) / 1000;
    assert.equal(r.stdout, "rc=1\n");
    assert.match(r.stderr, /within 1s; last answer: curl: \(22\) The requested URL returned error: 503$/m);
    assert.ok(took < 1.8, `gave up after ${took} s, past the 1 s budget`);
  });

  it("health gate: a server that refuses connections and stays idle fails 2 s past the budget, saying it was idle", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    const r = await sb.source(`${busyServer(0)}
      rc=0; http_gate v2 || rc=$?; kill "$busy"; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=1\n");
    assert.match(
      r.stderr,
      /within 1s \(past the budget it used 0 ticks of CPU in 2s: idle, not starting\); last answer: curl: \(7\) Failed to connect to 127\.0\.0\.1 port 8150$/m,
    );
  });

  it("health gate: a server that keeps using CPU without ever answering fails at three times the budget", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    const t0 = Date.now();
    const r = await sb.source(`${busyServer(3)}
      rc=0; http_gate v2 || rc=$?; kill "$busy"; echo "rc=$rc"`);
    const took = (Date.now() - t0) / 1000;
    assert.equal(r.stdout, "rc=1\n");
    assert.match(
      r.stderr,
      /^health check failed: http:\/\/127\.0\.0\.1:8150\/health did not answer 200 for release v2 within 1s \(it was still using CPU at three times the budget\); last answer: curl: \(7\) Failed to connect to 127\.0\.0\.1 port 8150$/m,
    );
    assert.ok(took >= 2 && took < 6, `gave up after ${took} s; the cap is 3 s`);
  });

  it("health gate: a server restarted past the budget (a crash loop, busy booting) fails at once instead of getting more time", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    const t0 = Date.now();
    const r = await sb.source(`${busyServer(3)}
      (sleep 1.5; echo 4244 >"$STUB_DIR/show/demoapp-web.service.MainPID"; mkdir -p "$AYNA_PROC/4244"; cp "$AYNA_PROC/4242/stat" "$AYNA_PROC/4244/stat") &
      rc=0; http_gate v2 || rc=$?; kill "$busy"; echo "rc=$rc"`);
    const took = (Date.now() - t0) / 1000;
    assert.equal(r.stdout, "rc=1\n");
    assert.match(r.stderr, /within 1s \(demoapp-web\.service restarted past the budget\); last answer/);
    assert.ok(took < 2.5, `gave up after ${took} s, not when the process changed`);
  });

  it("health gate: a worker that restarted since the release was applied fails, naming the unit", async () => {
    const sb = sandbox();
    sb.answers(8150, healthy("v2"));
    const r = await sb.source(`
      apply_release v1 v2
      echo 1 >"$STUB_DIR/show/demoapp-celery.service.NRestarts"
      rc=0; { http_gate v2 && watch_services v2; } || rc=$?; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=1\n");
    assert.match(
      r.stderr,
      /^health check failed: demoapp-celery\.service stopped or restarted \d+s after it started \(it must stay up for 0s\)$/m,
    );
  });

  it("watch window: web's main process replaced 1 s after the switch (a crash, restarted by systemd) fails the gate within the 3 s window", async () => {
    const sb = sandbox({ watchSeconds: 3 });
    sb.answers(8150, healthy("v2"));
    const r = await sb.source(`
      apply_release v1 v2
      (sleep 1; echo 5151 >"$STUB_DIR/show/demoapp-web.service.MainPID") &
      t0=$(date +%s%N); rc=0; { http_gate v2 && watch_services v2; } || rc=$?
      echo "rc=$rc ms=$((($(date +%s%N) - t0) / 1000000))"`);
    const m = /^rc=(\d+) ms=(\d+)$/.exec(r.stdout.trim());
    assert.ok(m, r.stdout + r.stderr);
    assert.equal(m[1], "1", r.stderr);
    assert.ok(Number(m[2]) >= 900 && Number(m[2]) < 3000, `failed after ${m[2]} ms, while the window was open`);
    assert.match(r.stderr, /^health ok: http:\/\/127\.0\.0\.1:8150\/health serves v2$/m);
    assert.match(
      r.stderr,
      /^health check failed: demoapp-web\.service stopped or restarted [12]s after it started \(it must stay up for 3s\)$/m,
    );
    assert.match(r.stderr, /^last words of demoapp-web\.service$/m);
  });

  it("watch window: services that keep their process pass only once 2 s have gone by since their start, after web answers again", async () => {
    const sb = sandbox({ watchSeconds: 2 });
    sb.answers(8150, healthy("v2"));
    const r = await sb.source(`
      t0=$(date +%s%N); apply_release v1 v2; rc=0; { http_gate v2 && watch_services v2; } || rc=$?
      echo "rc=$rc ms=$((($(date +%s%N) - t0) / 1000000))"`);
    const m = /^rc=(\d+) ms=(\d+)$/.exec(r.stdout.trim());
    assert.ok(m, r.stdout + r.stderr);
    assert.equal(m[1], "0", r.stderr);
    // Whole seconds on the tool's clock: at least one full second and the start of the next.
    assert.ok(Number(m[2]) >= 1000, `passed after ${m[2]} ms`);
    assert.match(r.stderr, /^health ok: every service of v2 stayed up for 2s$/m);
    // Two answers for the gate, two more at the end of the window.
    assert.equal(fs.readFileSync(path.join(sb.stubDir, "curl", "8150.n"), "utf8").trim(), "4");
  });
});

describe("ayna-release: candidates before the switch", () => {
  it("starts each HTTP service's new code as a transient unit on its reserved port, as the service user with the env file", async () => {
    const sb = sandbox();
    const v2 = sb.release("v2");
    sb.answers(8155, healthy("v2"));
    const r = await sb.source(`candidate_check ${v2} v2`);
    assert.equal(r.code, 0, r.stderr);
    const started = sb.calls("systemd-run").filter((c) => !c.line.includes("--wait"));
    assert.deepEqual(
      started.map((c) => c.line),
      [
        "systemd-run --quiet --collect --service-type=exec --unit=demoapp-web-candidate.service --uid=root --gid=root " +
          `-p EnvironmentFile=${sb.root}/shared/.env.production -p WorkingDirectory=${v2} ` +
          `-p ProtectSystem=strict -p ReadWritePaths=${sb.root}/shared ${sb.root}/logs -p PrivateTmp=yes -p NoNewPrivileges=yes ` +
          `-E PATH=${v2}/.venv/bin:/usr/bin:/bin -- ${v2}/.venv/bin/gunicorn --bind 127.0.0.1:8155 config.wsgi:application`,
      ],
    );
    assert.match(r.stderr, /^candidate ok: web of v2 is healthy on 127\.0\.0\.1:8155$/m);
  });

  it("a role's own health path is the one polled, on the candidate port and after the switch", async () => {
    const sb = sandbox({ healthPaths: { web: "/ready/" } });
    const v2 = sb.release("v2");
    sb.answers(8155, healthy("v2"));
    sb.answers(8150, healthy("v2"));
    const r = await sb.source(`candidate_check ${v2} v2 && http_gate v2`);
    assert.equal(r.code, 0, r.stderr);
    const urls = [...new Set(sb.calls("curl").map((c) => c.line.split(" ").pop()))];
    assert.deepEqual(urls, ["http://127.0.0.1:8155/ready/", "http://127.0.0.1:8150/ready/"]);
  });

  it("an app whose health answer names no release: a 200 counts when healthNamesRelease is off, and only then", async () => {
    const plain = '200 {"status": "ok"}';
    const off = sandbox({ healthNamesRelease: false });
    const v2 = off.release("v2");
    off.answers(8155, plain);
    const passed = await off.source(`candidate_check ${v2} v2`);
    assert.equal(passed.code, 0, passed.stderr);
    const on = sandbox({ healthTimeoutSeconds: 1 });
    const w2 = on.release("v2");
    on.answers(8155, plain);
    const failed = await on.source(`rc=0; candidate_check ${w2} v2 || rc=$?; echo "rc=$rc"`);
    assert.equal(failed.stdout, "rc=1\n");
    assert.match(failed.stderr, /did not answer 200 on its candidate port 8155 .* last answer: \{"status": "ok"\}/);
  });

  it("tells the candidates to stop once they have passed, without waiting for their graceful exit", async () => {
    const sb = sandbox();
    const v2 = sb.release("v2");
    sb.answers(8155, healthy("v2"));
    const r = await sb.source(`candidate_check ${v2} v2`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      sb
        .calls("systemctl")
        .slice(-1)
        .map((c) => c.line),
      ["systemctl stop --no-block demoapp-web-candidate.service"],
    );
  });

  it("the tool waits at its exit for candidates told to stop, and the next candidate check waits for them first", async () => {
    const sb = sandbox();
    sb.env("envA");
    const a1 = archive(sb.dir, "one");
    const r = await healthyDeploy(sb, a1, "sha1", "v1");
    assert.equal(r.code, 0, r.stderr);
    const lines = sb.calls("systemctl").map((c) => c.line);
    const retired = lines.indexOf("systemctl stop --no-block demoapp-web-candidate.service");
    assert.ok(retired >= 0, lines.join("\n"));
    // After the switch (the web unit started), a stop that blocks until the candidate is gone.
    const waited = lines.lastIndexOf("systemctl stop demoapp-web-candidate.service");
    assert.ok(waited > retired, lines.join("\n"));
    assert.ok(
      lines.slice(retired, waited).some((l) => l.includes("demoapp-web.service")),
      lines.join("\n"),
    );

    const v2 = sb.release("v2");
    sb.answers(8155, healthy("v2"));
    const again = await sb.source(`candidate_check ${v2} v2 && candidate_check ${v2} v2`);
    assert.equal(again.code, 0, again.stderr);
    const second = sb.calls("systemctl").map((c) => c.line);
    const noBlock = second.lastIndexOf("systemctl stop --no-block demoapp-web-candidate.service");
    const firstRetire = second.indexOf("systemctl stop --no-block demoapp-web-candidate.service", lines.length);
    assert.ok(firstRetire >= 0 && noBlock > firstRetire, second.join("\n"));
    assert.ok(
      second.slice(firstRetire, noBlock).includes("systemctl stop demoapp-web-candidate.service"),
      second.join("\n"),
    );
  });

  it("stops web's and api's candidates in one systemctl call, so they stop side by side", async () => {
    const apiCandidate = ["@RELEASE@/.venv/bin/gunicorn", "--bind", "127.0.0.1:8156", "api.main:app"];
    const sb = sandbox({
      services: [
        { role: "web", port: 8150, reload: "handover", candidatePort: 8155, candidateCommand: webCandidate },
        { role: "api", port: 8151, reload: "handover", candidatePort: 8156, candidateCommand: apiCandidate },
      ],
    });
    const v2 = sb.release("v2");
    sb.answers(8155, healthy("v2"));
    sb.answers(8156, healthy("v2"));
    const r = await sb.source(`candidate_check ${v2} v2`);
    assert.equal(r.code, 0, r.stderr);
    const units = "demoapp-web-candidate.service demoapp-api-candidate.service";
    // The first pair clears leftovers before they start; the last call, once both passed.
    assert.deepEqual(
      sb
        .calls("systemctl")
        .map((c) => c.line)
        .filter((l) => /^systemctl (stop|reset-failed)/.test(l)),
      [`systemctl stop ${units}`, `systemctl reset-failed ${units}`, `systemctl stop --no-block ${units}`],
    );
  });

  it("a candidate that never answers healthy fails naming role, release and candidate port, and is stopped", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    const v2 = sb.release("v2");
    sb.answers(8155, "500");
    const r = await sb.source(`rc=0; candidate_check ${v2} v2 || rc=$?; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=1\n");
    assert.match(
      r.stderr,
      /^health check failed: web of release v2 did not answer 200 on its candidate port 8155 \(http:\/\/127\.0\.0\.1:8155\/health\) within 1s; last answer: curl: \(22\) The requested URL returned error: 500\nlast log lines of the candidate:\nlast words of demoapp-web-candidate\.service$/m,
    );
    assert.equal(sb.calls("systemctl").at(-2)?.line, "systemctl stop demoapp-web-candidate.service");
  });

  it("a worker whose code does not load fails before any candidate is polled, showing its output", async () => {
    const sb = sandbox({
      services: [
        { role: "web", port: 8150, reload: "handover", candidatePort: 8155, candidateCommand: webCandidate },
        {
          role: "celery",
          reload: "restart",
          checkCommand: ["/bin/sh", "-c", "echo 'RuntimeError: v2 worker cannot start' >&2; exit 1"],
        },
      ],
    });
    const v2 = sb.release("v2");
    sb.answers(8155, healthy("v2"));
    const r = await sb.source(`rc=0; candidate_check ${v2} v2 || rc=$?; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=1\n");
    assert.match(
      r.stderr,
      /^health check failed: the celery code of release v2 does not load \(exit status 1\):\nRuntimeError: v2 worker cannot start$/m,
    );
    assert.doesNotMatch(r.stderr, /once more/, "a check that says why it failed is not run again");
    assert.deepEqual(sb.calls("curl"), []);
  });

  // A CI run once saw the celery check end non-zero with no output at all
  // while the host was under load; code that cannot load always prints why.
  function silentOnce(times: number): string[] {
    const marks = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-check-"));
    scratch.push(marks);
    const script = `n=$(ls ${marks} | wc -l); touch ${marks}/run$n; if [ "$n" -lt ${times} ]; then exit 137; fi; echo 'tasks: 3'`;
    return ["/bin/sh", "-c", script];
  }

  it("a worker check that ends without a word is run once more, and passes when the second run loads", async () => {
    const sb = sandbox({
      services: [{ role: "celery", reload: "restart", checkCommand: silentOnce(1) }],
    });
    const v2 = sb.release("v2");
    const r = await sb.source(`rc=0; candidate_check ${v2} v2 || rc=$?; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=0\n");
    assert.match(
      r.stderr,
      /^the celery-check step ended with status 137 and printed nothing \(last words of demoapp-celery-check-\d+\.service \): running it once more\ncandidate ok: celery code of v2 loads \(tasks: 3\)$/m,
    );
  });

  it("a worker check that ends without a word twice fails, naming its exit status", async () => {
    const sb = sandbox({
      services: [{ role: "celery", reload: "restart", checkCommand: silentOnce(2) }],
    });
    const v2 = sb.release("v2");
    const r = await sb.source(`rc=0; candidate_check ${v2} v2 || rc=$?; echo "rc=$rc"`);
    assert.equal(r.stdout, "rc=1\n");
    assert.match(
      r.stderr,
      /^health check failed: the celery code of release v2 does not load \(exit status 137\):\n\(last words of demoapp-celery-check-\d+\.service \)$/m,
    );
    assert.equal((r.stderr.match(/running it once more/g) ?? []).length, 1);
  });
});

describe("ayna-release: deploy lock", () => {
  it("a deploy and a rollback prepare the runtime (Docker mode: network, volumes, Redis) only while holding the lock", async () => {
    const sb = sandbox();
    sb.release("v1");
    // What prepare_runtime finds: the lock and whose it is.
    const probe = 'prepare_runtime() { grep -qx "pid=$$" "$LOCK/info" && echo "held by this run: $*"; exit 9; }';
    const deploy = await sb.source(`${probe}\ncmd_deploy --sha s --checksum ${"a".repeat(64)} --venv envA`);
    assert.equal(deploy.code, 9, deploy.stderr);
    assert.equal(deploy.stdout, "held by this run: \n");
    const rollback = await sb.source(`${probe}\ncmd_rollback --to v1`);
    assert.equal(rollback.code, 9, rollback.stderr);
    assert.equal(rollback.stdout, "held by this run: \n");
  });

  it("takes a free lock, recording actor, reason, this process's pid and the boot id", async () => {
    const sb = sandbox();
    sb.tree();
    const r = await sb.source('acquire_lock "deploy of abc"; echo "$$"');
    assert.equal(r.code, 0, r.stderr);
    const info = sb.lines(".deploy-lock/info");
    assert.equal(info[0], "owner=tester@ci");
    assert.match(info[1]!, /^since=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(info.slice(2), ["reason=deploy of abc", `pid=${r.stdout.trim()}`, `boot=${bootId}`]);
  });

  it("is refused with exit 75 after LOCK_WAIT seconds while a live process holds it, naming the holder and the unlock command", async () => {
    const sb = sandbox({ lockWaitSeconds: 1 });
    const holder = `owner=bob\nsince=2026-01-01T00:00:00Z\nreason=deploy\npid=${process.pid}\nboot=${bootId}\n`;
    fs.mkdirSync(path.join(sb.root, ".deploy-lock"), { recursive: true });
    fs.writeFileSync(path.join(sb.root, ".deploy-lock", "info"), holder);
    const r = await sb.source('acquire_lock deploy; echo "taken"');
    assert.equal(r.code, 75);
    assert.equal(r.stdout, "");
    const held = holder.replace(/\n/g, " ");
    assert.equal(
      r.stderr,
      `waiting for the deploy lock: ${held}\n` +
        `ayna-release: another deploy has held the lock on ${os.hostname()} for over 1s: ${held}- ` +
        `if that deploy is dead, break the lock with: sudo ${sb.root}/bin/ayna-release unlock\n`,
    );
    assert.equal(fs.readFileSync(path.join(sb.root, ".deploy-lock", "info"), "utf8"), holder, "bob's lock stays");
  });

  it("breaks a lock whose holder process is gone and takes it", async () => {
    const sb = sandbox();
    const dead = spawnSync("true").pid; // exited and reaped
    fs.mkdirSync(path.join(sb.root, ".deploy-lock"), { recursive: true });
    fs.writeFileSync(path.join(sb.root, ".deploy-lock", "info"), `owner=bob\npid=${dead}\nboot=${bootId}\n`);
    const r = await sb.source('acquire_lock deploy; echo "$$"');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^ayna-release: breaking a stale deploy lock \(its holder is gone\): owner=bob /m);
    assert.ok(sb.lines(".deploy-lock/info").includes(`pid=${r.stdout.trim()}`));
  });

  it("breaks a lock taken before the host last booted, even when its pid is in use again", async () => {
    const sb = sandbox();
    fs.mkdirSync(path.join(sb.root, ".deploy-lock"), { recursive: true });
    fs.writeFileSync(
      path.join(sb.root, ".deploy-lock", "info"),
      `owner=bob\npid=${process.pid}\nboot=00000000-0000-0000-0000-000000000000\n`,
    );
    const r = await sb.source('acquire_lock deploy; echo "$$"');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /breaking a stale deploy lock/);
    assert.ok(sb.lines(".deploy-lock/info").includes(`pid=${r.stdout.trim()}`));
  });

  it("a waiting deploy takes the lock once its live holder exits", async () => {
    const sb = sandbox();
    const holder = sb.helper(["sleep", "1.5"]);
    fs.mkdirSync(path.join(sb.root, ".deploy-lock"), { recursive: true });
    fs.writeFileSync(path.join(sb.root, ".deploy-lock", "info"), `owner=bob\npid=${holder}\nboot=${bootId}\n`);
    const r = await sb.source('LOCK_WAIT=10; acquire_lock deploy; echo "$$"');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^waiting for the deploy lock: owner=bob /m);
    assert.match(r.stderr, /^ayna-release: breaking a stale deploy lock \(its holder is gone\)/m);
    assert.ok(sb.lines(".deploy-lock/info").includes(`pid=${r.stdout.trim()}`));
  });

  it("a run that fails after taking the lock leaves no lock behind", async () => {
    const sb = sandbox();
    const r = await sb.program(["rollback"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ayna-release: rollback: no previous release recorded$/m);
    assert.equal(sb.exists(".deploy-lock"), false);
  });

  it("status shows a held lock and unlock breaks it by hand", async () => {
    const sb = sandbox();
    fs.mkdirSync(path.join(sb.root, ".deploy-lock"), { recursive: true });
    fs.writeFileSync(path.join(sb.root, ".deploy-lock", "info"), `owner=bob\npid=${process.pid}\nboot=${bootId}\n`);
    const status = await sb.program(["status"]);
    assert.match(status.stdout, new RegExp(`^lock: owner=bob pid=${process.pid} boot=${bootId} $`, "m"));
    const unlock = await sb.program(["unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    assert.match(unlock.stderr, /^breaking deploy lock: owner=bob /m);
    assert.equal(sb.exists(".deploy-lock"), false);
  });
});

describe("ayna-release: the switch of current", () => {
  it("renames a temporary symlink over current (ln -sfn to .current.tmp, then mv -T); current is never removed", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    sb.stub("ln", linkLogger);
    sb.stub("mv", linkLogger);
    const r = await sb.source("switch_to v2");
    assert.equal(r.code, 0, r.stderr);
    const releases = path.join(sb.root, "releases");
    assert.deepEqual(
      sb.calls().map((c) => c.line),
      [`ln -sfn v2 ${releases}/.current.tmp`, `mv -Tf ${releases}/.current.tmp ${releases}/current`],
    );
    assert.deepEqual(
      fs.readFileSync(path.join(sb.stubDir, "links.log"), "utf8").trimEnd().split("\n"),
      [`${releases}/.current.tmp -> v2`, `${releases}/current -> v1`],
      "at the rename the temporary link already points to v2 and current still to v1",
    );
    assert.equal(sb.current(), "v2");
    assert.equal(sb.exists("releases/.current.tmp"), false);
  });

  it("a reader never finds current missing while it is switched back and forth", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    const r = await sb.source(`
      ( missing=0; for _ in $(seq 50000); do [ -L "$RELEASES/current" ] || missing=$((missing + 1)); done
        echo "missing=$missing" ) &
      reader=$!
      switches=0
      while kill -0 "$reader" 2>/dev/null; do switch_to v2; switch_to v1; switches=$((switches + 2)); done
      wait "$reader"
      echo "switches=$switches"`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^missing=0$/m);
    assert.ok(Number(/switches=(\d+)/.exec(r.stdout)?.[1]) >= 10, r.stdout);
  });
});

describe("ayna-release: applying a release to the services", () => {
  it("hands web and api over on their sockets (handover started, unit restarted, handover stopped), restarts workers; starts inactive units, skips disabled ones", async () => {
    const sb = sandbox({
      services: [
        { role: "web", port: 8150, reload: "handover" },
        { role: "api", port: 8151, reload: "handover" },
        { role: "celery", reload: "restart" },
        { role: "beat", reload: "restart" },
      ],
    });
    sb.release("v1", { venv: "envA" });
    sb.release("v2", { venv: "envA" });
    sb.release("v3", { venv: "envB" });
    sb.state("inactive/demoapp-api.service");
    sb.state("disabled/demoapp-beat.service");
    const r = await sb.source("apply_release v1 v2; echo ---; apply_release v2 v3");
    assert.equal(r.code, 0, r.stderr);
    const actions = sb
      .calls("systemctl")
      .map((c) => c.line)
      .filter((l) => /^systemctl (start|stop|reload|restart) /.test(l));
    const handover = (role: string) => [
      `systemctl start demoapp-${role}-handover.service`,
      `systemctl restart demoapp-${role}.service`,
      `systemctl stop --no-block demoapp-${role}-handover.service`,
    ];
    assert.deepEqual(actions, [
      ...handover("web"),
      "systemctl start demoapp-api.service",
      "systemctl restart demoapp-celery.service",
      ...handover("web"),
      ...handover("api"), // started by the first apply
      "systemctl restart demoapp-celery.service",
    ]);
    assert.deepEqual(
      sb.calls("pgrep").map((c) => c.line),
      ["pgrep -P 4242", "pgrep -P 4242", "pgrep -P 4242", "pgrep -P 4242", "pgrep -P 4242", "pgrep -P 4242"],
      "waits for a worker of the handover, then of the restarted unit",
    );
  });

  it("an event-loop worker (ready: listening) counts as serving only once its epoll set holds the socket listening on the port; a synchronous one at once", async () => {
    const sb = sandbox();
    const fdinfo = path.join(sb.stubDir, "proc", "4343", "fdinfo");
    fs.mkdirSync(fdinfo, { recursive: true });
    fs.mkdirSync(path.join(sb.stubDir, "proc", "net"));
    // 127.0.0.1:8151 listening (state 0A) with inode 226851 (0x37623); another socket's entry is already in the epoll set.
    fs.writeFileSync(
      path.join(sb.stubDir, "proc", "net", "tcp"),
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
        "   0: 0100007F:1FD7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 226851 1 0 100 0 0 10 0\n",
    );
    fs.writeFileSync(
      path.join(fdinfo, "7"),
      "pos:\t0\nflags:\t02\ntfd:        8 events:       19 data: 8  pos:0 ino:9ab03 sdev:9\n",
    );
    const r = await sb.source(`
      ms() { echo $(($(date +%s%N) / 1000000)); }
      t0=$(ms); serving_workers demoapp-web.service fork 8150; echo "fork=$(($(ms) - t0))"
      (sleep 0.6; printf 'tfd:        5 events:       19 data:                5  pos:0 ino:37623 sdev:9\\n' >>"$AYNA_PROC/4343/fdinfo/7") &
      t0=$(ms); serving_workers demoapp-api.service listening 8151; echo "listening=$(($(ms) - t0))"`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "", "no warning");
    const fork = Number(/fork=(\d+)/.exec(r.stdout)?.[1]);
    const listening = Number(/listening=(\d+)/.exec(r.stdout)?.[1]);
    assert.ok(fork < 500, `a synchronous worker waited ${fork} ms`);
    assert.ok(listening >= 550 && listening < 3000, `the event-loop worker was taken as serving after ${listening} ms`);
  });

  it("activate: the workers restart together in one systemctl call, only after web answers for the new release", async () => {
    const sb = sandbox({
      services: [
        { role: "web", port: 8150, reload: "handover" },
        { role: "celery", reload: "restart" },
        { role: "beat", reload: "restart" },
      ],
    });
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    sb.answers(8150, healthy("v2"));
    const r = await sb.source("activate v1 v2 sha2 deploy");
    assert.equal(r.code, 0, r.stderr);
    const steps = sb
      .calls()
      .map((c) => c.line)
      .filter((l) => /^(curl|systemctl restart)/.test(l))
      .map((l) => (l.startsWith("curl") ? "curl" : l));
    const workers = steps.indexOf("systemctl restart demoapp-celery.service demoapp-beat.service");
    assert.ok(workers > 0, steps.join("\n"));
    assert.deepEqual(steps.slice(0, workers), ["systemctl restart demoapp-web.service", "curl", "curl"]);
    assert.equal(steps.filter((l) => l.includes("celery")).length, 1, "celery restarted once");
  });

  it("a handover drains in the background: the next role hands over meanwhile, and the workers' apply returns only once every handover has stopped", async () => {
    const sb = sandbox({
      services: [
        { role: "web", port: 8150, reload: "handover" },
        { role: "api", port: 8151, reload: "handover" },
        { role: "celery", reload: "restart" },
      ],
    });
    sb.release("v1");
    sb.release("v2");
    // A handover takes 0.8 s to stop, as gunicorn's drain does; "gone UNIT" is logged when it has.
    sb.stub(
      "systemctl",
      `gone() { sleep 0.8; rm -f "$STUB_DIR/active/$1"; printf -- '-\\tgone %s\\n' "$1" >>"$STUB_DIR/calls.log"; }
case "$1 $2 $3" in
  "stop --no-block "*-handover.service) gone "$3" >/dev/null 2>&1 & exit 0 ;;
  "stop "*-handover.service" ") gone "$2"; exit 0 ;;
esac
` + stubs.systemctl,
    );
    const r = await sb.source(
      `mark() { printf -- '-\\tmark %s\\n' "$1" >>"$STUB_DIR/calls.log"; }
      apply_release v1 v2 http; mark http; apply_release v1 v2 workers; mark workers`,
    );
    assert.equal(r.code, 0, r.stderr);
    const log = sb.calls().map((c) => c.line.replace(/^systemctl /, ""));
    const at = (line: string) => {
      const i = log.indexOf(line);
      assert.ok(i >= 0, `${line} is not in the log:\n${log.join("\n")}`);
      return i;
    };
    assert.ok(
      at("start demoapp-api-handover.service") < at("gone demoapp-web-handover.service"),
      `api's handover started only after web's had stopped:\n${log.join("\n")}`,
    );
    assert.ok(at("restart demoapp-celery.service") < at("gone demoapp-api-handover.service"));
    assert.ok(
      at("gone demoapp-api-handover.service") < at("mark workers"),
      `the workers' apply returned while api's handover still ran:\n${log.join("\n")}`,
    );
  });

  it("a handover that does not start falls back to a plain restart, with a warning", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.stub(
      "systemctl",
      `case "$1 $2" in "start demoapp-web-handover.service") exit 1 ;; "show -P") echo 4242 ;; esac
`,
    );
    const r = await sb.source("apply_release v1 v2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: demoapp-web-handover\.service did not start; restarting demoapp-web\.service without a handover/,
    );
    assert.ok(sb.calls("systemctl").some((c) => c.line === "systemctl restart demoapp-web.service"));
    assert.equal(
      sb.calls("systemctl").filter((c) => c.line === "systemctl start demoapp-web-handover.service").length,
      1,
      "a handover that failed on its own (Result is not resources) is not tried again",
    );
  });

  it("a handover systemd could not spawn (Result=resources, 'Failed to spawn executor') is reset and started again, and the release still hands over without a gap", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    // The first start fails as PID 1 failed it in CI; the second works.
    sb.stub(
      "systemctl",
      `n="$STUB_DIR/handover-starts"
case "$1 $2" in
  "start demoapp-web-handover.service") c=$(( $(cat "$n" 2>/dev/null || echo 0) + 1 )); echo "$c" >"$n"; [ "$c" -gt 1 ] || exit 1 ;;
  "show -P") if [ "$3" = Result ]; then echo resources; else echo 4242; fi ;;
esac
`,
    );
    const r = await sb.source("apply_release v1 v2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: systemd could not spawn demoapp-web-handover\.service \(attempt 1 of 3\); trying again/,
    );
    assert.doesNotMatch(r.stderr, /without a handover/);
    assert.deepEqual(
      sb
        .calls("systemctl")
        .map((c) => c.line)
        .filter((l) => /^systemctl (start|stop|restart|reset-failed) /.test(l)),
      [
        "systemctl start demoapp-web-handover.service",
        "systemctl reset-failed demoapp-web-handover.service",
        "systemctl start demoapp-web-handover.service",
        "systemctl restart demoapp-web.service",
        "systemctl stop --no-block demoapp-web-handover.service",
        "systemctl restart demoapp-celery.service",
      ],
    );
  });

  for (const [result, retried] of [
    ["resources", true],
    ["exit-code", false],
  ] as const) {
    it(`workers restarted together: one left inactive with Result=${result} is ${retried ? "started again on its own (systemd could not spawn it)" : "not tried again (its own failure)"}`, async () => {
      const sb = sandbox({
        services: [
          { role: "celery", reload: "restart" },
          { role: "beat", reload: "restart" },
        ],
      });
      sb.release("v1");
      sb.release("v2");
      // The joint restart fails and leaves beat down, as PID 1 did in CI ("Failed to spawn executor").
      sb.stub("systemctl-default", stubs["systemctl"]!);
      sb.stub(
        "systemctl",
        `if [ "$*" = "restart demoapp-celery.service demoapp-beat.service" ]; then touch "$STUB_DIR/inactive/demoapp-beat.service"; exit 1; fi
exec "$(dirname "$0")/systemctl-default" "$@"
`,
      );
      sb.state("show/demoapp-beat.service.Result", `${result}\n`);
      const r = await sb.source("apply_release v1 v2");
      assert.equal(r.code, 0, r.stderr);
      const actions = sb
        .calls("systemctl")
        .map((c) => c.line)
        .filter((l) => /^systemctl (start|restart|reset-failed) /.test(l));
      if (retried) {
        assert.deepEqual(actions, [
          "systemctl restart demoapp-celery.service demoapp-beat.service",
          "systemctl reset-failed demoapp-beat.service",
          "systemctl start demoapp-beat.service",
        ]);
        assert.match(r.stderr, /warning: systemd could not spawn demoapp-beat\.service; trying again/);
        assert.doesNotMatch(r.stderr, /did not restart/);
      } else {
        assert.deepEqual(actions, ["systemctl restart demoapp-celery.service demoapp-beat.service"]);
        assert.match(r.stderr, /warning: demoapp-celery\.service demoapp-beat\.service did not restart/);
      }
    });
  }

  it("an inactive unit systemd could not spawn (Result=resources) is reset and started again", async () => {
    const sb = sandbox({ services: [{ role: "celery", reload: "restart" }] });
    sb.release("v1");
    sb.release("v2");
    sb.state("inactive/demoapp-celery.service");
    // The first start fails as PID 1 did in CI ("Failed to spawn executor"); the next one works.
    sb.stub("systemctl-default", stubs["systemctl"]!);
    sb.stub(
      "systemctl",
      `if [ "$*" = "start demoapp-celery.service" ] && [ ! -e "$STUB_DIR/spawned-once" ]; then touch "$STUB_DIR/spawned-once"; exit 1; fi
exec "$(dirname "$0")/systemctl-default" "$@"
`,
    );
    sb.state("show/demoapp-celery.service.Result", "resources\n");
    const r = await sb.source("apply_release v1 v2");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      sb
        .calls("systemctl")
        .map((c) => c.line)
        .filter((l) => /^systemctl (start|restart|reset-failed) /.test(l)),
      [
        "systemctl start demoapp-celery.service",
        "systemctl reset-failed demoapp-celery.service",
        "systemctl start demoapp-celery.service",
      ],
    );
    assert.match(r.stderr, /warning: systemd could not spawn demoapp-celery\.service \(attempt 1 of 3\); trying again/);
    assert.doesNotMatch(r.stderr, /did not start/);
  });

  it("a handover systemd cannot spawn three times falls back to a plain restart, with a warning", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.stub(
      "systemctl",
      `case "$1 $2" in
  "start demoapp-web-handover.service") exit 1 ;;
  "show -P") if [ "$3" = Result ]; then echo resources; else echo 4242; fi ;;
esac
`,
    );
    const r = await sb.source("apply_release v1 v2");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      sb.calls("systemctl").filter((c) => c.line === "systemctl start demoapp-web-handover.service").length,
      3,
    );
    assert.match(r.stderr, /restarting demoapp-web\.service without a handover/);
  });
});

describe("ayna-release: rollback", () => {
  it("a release whose web fails the gate after the switch is switched back before any worker restarted: web handed back to the old release and that one checked, the workers never touched", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 2 });
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    sb.answers(8150, healthy("v1"));
    const r = await sb.source("activate v1 v2 sha2 deploy");
    assert.equal(r.code, 3, r.stderr);
    assert.equal(sb.current(), "v1");
    assert.deepEqual(
      sb
        .calls("systemctl")
        .filter((c) => /^systemctl (start|reload|restart) /.test(c.line))
        .map((c) => `${c.current}: ${c.line}`),
      [
        "v2: systemctl start demoapp-web-handover.service",
        "v2: systemctl restart demoapp-web.service",
        "v1: systemctl start demoapp-web-handover.service",
        "v1: systemctl restart demoapp-web.service",
      ],
    );
    assert.match(r.stderr, /^rolling back to v1\n(.*\n)*health ok: http:\/\/127\.0\.0\.1:8150\/health serves v1$/m);
  });

  // CI saw it: the disk filled after the upload, and the tool ended on a bare "printf: write error".
  it("a switch record that cannot be written (a full disk): exit 4 naming it, nothing switched or restarted, no part-written record left", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    // Writes to /dev/full fail with ENOSPC, as on a full disk.
    fs.symlinkSync("/dev/full", path.join(sb.root, ".in-flight"));
    const r = await sb.source("activate v1 v2 sha2 deploy");
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      /^ayna-release: deploy: the switch record \S+\/\.in-flight could not be stored; nothing was switched, v1 is still serving$/m,
    );
    assert.equal(sb.current(), "v1");
    assert.deepEqual(
      sb.calls("systemctl").filter((c) => /^systemctl (start|reload|restart) /.test(c.line)),
      [],
    );
    assert.equal(fs.existsSync(path.join(sb.root, ".in-flight")), false);
    assert.equal(fs.lstatSync(path.join(sb.root, ".in-flight"), { throwIfNoEntry: false }), undefined);
  });

  it("an interrupted switch: .in-flight from the killed tool makes the next deploy check current again, with the release before it to come back to", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v2");
    sb.state("../root/.in-flight", "from=v1\nto=v2\n");
    const r = await sb.source('echo "from=$(interrupted_from v2)"; echo "again=$(interrupted_from v2)"');
    assert.equal(r.stdout, "from=v1\nagain=v2\n", "read once, then gone");
    assert.equal(
      r.stderr,
      "the switch from v1 to v2 was interrupted before its health gate passed: v2 is checked now, and v1 comes back if it fails\n",
    );
    // A marker for another release than current (the switch never happened) changes nothing.
    sb.state("../root/.in-flight", "from=v1\nto=v3\n");
    const other = await sb.source('echo "from=$(interrupted_from v2)"');
    assert.equal(other.stdout, "from=v2\n");
    assert.equal(other.stderr, "");
  });

  it("activate holds .in-flight from before the switch until the verdict: present while the gate runs, gone after a pass and after a rollback", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 3 });
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    sb.answers(8150, healthy("v2"));
    // curl is the gate: record whether the marker is there while it runs.
    sb.stub(
      "curl",
      `cat "$AYNA_RELEASE_ROOT/.in-flight" >>"$STUB_DIR/seen" 2>/dev/null; printf '%s' '{"status": "ok", "release": "v2"}'
`,
    );
    const pass = await sb.source("activate v1 v2 sha2 deploy");
    assert.equal(pass.code, 0, pass.stderr);
    assert.match(fs.readFileSync(path.join(sb.stubDir, "seen"), "utf8"), /^from=v1\nto=v2\n/);
    assert.equal(sb.exists(".in-flight"), false, "gone after a pass");
    sb.stub("curl", "exit 7\n");
    const fail = await sb.source("activate v2 v1 sha1 deploy");
    assert.equal(fail.code, 3, fail.stderr);
    assert.equal(sb.exists(".in-flight"), false, "gone after a rollback");
  });

  it("a release rolled back after the switch exits 3 saying so, is marked failed and audited as rolled-back; no result line", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 2 });
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v1");
    sb.answers(8150, healthy("v1"));
    const r = await sb.source("activate v1 v2 sha2 deploy");
    assert.equal(r.code, 3);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /ayna-release: release v2 failed its health check and was rolled back; v1 is serving\n$/);
    assert.ok(sb.exists("releases/v2/.ayna-failed"));
    assert.match(
      sb.lines("logs/deploy-audit.log").at(-1)!,
      /^\S+Z\tactor=tester@ci\tfrom=v1\tto=v2\tsha=sha2\tresult=rolled-back\thealth check failed$/,
    );
  });

  it("a first release failing the gate has nothing to roll back to: exit 3, audited failed", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    sb.release("v1");
    sb.answers(8150, "502");
    const r = await sb.source("activate none v1 sha1 deploy");
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      /ayna-release: release v1 failed its health check \(first release: nothing to roll back to\)\n$/,
    );
    assert.match(sb.lines("logs/deploy-audit.log").at(-1)!, /\tfrom=none\tto=v1\tsha=sha1\tresult=failed\t/);
  });

  it("the rollback command switches to the previous release, reloads the services onto it and prints release=v1 previous=v2", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2");
    sb.setCurrent("v2");
    sb.setPrevious("v1");
    sb.answers(8150, healthy("v1"));
    const r = await sb.program(["rollback"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sb.current(), "v1");
    assert.deepEqual(
      sb
        .calls("systemctl")
        .filter((c) => /^systemctl (start|reload|restart) /.test(c.line))
        .map((c) => `${c.current}: ${c.line}`),
      [
        "v1: systemctl start demoapp-web-handover.service",
        "v1: systemctl restart demoapp-web.service",
        "v1: systemctl restart demoapp-celery.service",
      ],
    );
    assert.equal(r.stdout, "release=v1 previous=v2\n");
  });

  it("the rollback command refuses a release that is not on the host, or that failed, listing those available", async () => {
    const sb = sandbox();
    sb.release("v1");
    sb.release("v2", { failed: true });
    sb.release("v3");
    sb.setCurrent("v3");
    const unknown = await sb.program(["rollback", "--to", "v9"]);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      new RegExp(
        `^ayna-release: rollback: release v9 does not exist on ${os.hostname()} \\(pruned or never deployed\\); available: v1 v2 v3 $`,
        "m",
      ),
    );
    const failed = await sb.program(["rollback", "--to", "v2"]);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /^ayna-release: rollback: release v2 failed its health check when it was deployed; pick another \(available: v1 v2 v3 \)$/m,
    );
    assert.equal(sb.current(), "v3");
  });
});

describe("ayna-release: migrations and static files before the switch", () => {
  const django = { migrate: djangoMigrate, static: djangoCollectstatic };
  /** A Django-shaped release vN whose python logs each manage.py command; `files` adds or replaces files. */
  function djangoRelease(sb: Sandbox, name: string, files: Record<string, string> = {}): string {
    const dir = sb.release(name);
    fs.renameSync(path.join(dir, ".ayna-release.json"), path.join(dir, ".ayna-release.json.part"));
    const all: Record<string, string> = {
      "manage.py": "",
      "core/views.py": "v = 1\n",
      "core/migrations/0001_initial.py": "m = 1\n",
      "core/static/core/site.css": "body {}\n",
      "config/settings.py": "DEBUG = False\n",
      ...files,
    };
    for (const [f, content] of Object.entries(all)) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), content);
    }
    fs.mkdirSync(path.join(dir, "staticfiles"), { recursive: true });
    const python = path.join(sb.root, "venvs", "envA", "bin", "python");
    fs.mkdirSync(path.dirname(python), { recursive: true });
    fs.writeFileSync(
      python,
      `#!/bin/sh\necho "$(basename "$PWD") $2" >>"$STUB_DIR/manage.log"\n[ "$2" != collectstatic ] || echo collected >staticfiles/site.css\n`,
      { mode: 0o755 },
    );
    return dir;
  }

  /** Runs prepare_release from -> to and marks `to` complete; returns what manage.py ran. */
  async function prepare(sb: Sandbox, from: string, to: string): Promise<{ run: string[]; stderr: string }> {
    fs.rmSync(path.join(sb.stubDir, "manage.log"), { force: true });
    const r = await sb.source(
      `prepare_release ${from} ${to} sha envA && cd "$RELEASES/${to}" && mv .ayna-release.json.part .ayna-release.json`,
    );
    assert.equal(r.code, 0, r.stderr);
    const log = path.join(sb.stubDir, "manage.log");
    const run = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").sort() : [];
    return { run, stderr: r.stderr };
  }

  it("a first release runs migrate and collectstatic", async () => {
    const sb = sandbox(django);
    djangoRelease(sb, "v1");
    assert.deepEqual((await prepare(sb, "none", "v1")).run, ["v1 collectstatic", "v1 migrate"]);
  });

  it("a release that changes only Python code outside the settings runs neither; the serving release's static files are copied", async () => {
    const sb = sandbox(django);
    djangoRelease(sb, "v1");
    await prepare(sb, "none", "v1");
    djangoRelease(sb, "v2", { "core/views.py": "v = 2\n" });
    const r = await prepare(sb, "v1", "v2");
    assert.deepEqual(r.run, []);
    assert.match(r.stderr, /^migrations unchanged since v1: not run$/m);
    assert.match(r.stderr, /^static inputs unchanged since v1: its static files copied, the build not run$/m);
    assert.equal(
      fs.readFileSync(path.join(sb.root, "releases", "v2", "staticfiles", "site.css"), "utf8"),
      "collected\n",
    );
  });

  it("bytecode is no input: a release whose __pycache__ differs (settings' and migrations' too) runs neither step", async () => {
    const sb = sandbox(django);
    djangoRelease(sb, "v1", { "config/__pycache__/settings.cpython-313.pyc": "one" });
    await prepare(sb, "none", "v1");
    djangoRelease(sb, "v2", {
      "core/views.py": "v = 2\n",
      "core/__pycache__/views.cpython-313.pyc": "two",
      "config/__pycache__/settings.cpython-313.pyc": "two",
      "core/migrations/__pycache__/0001_initial.cpython-313.pyc": "two",
    });
    const r = await prepare(sb, "v1", "v2");
    assert.deepEqual(r.run, []);
    assert.match(r.stderr, /^static inputs unchanged since v1: its static files copied, the build not run$/m);
  });

  it("a changed static file or settings module runs collectstatic again; a new migration runs migrate alone", async () => {
    const sb = sandbox(django);
    djangoRelease(sb, "v1");
    await prepare(sb, "none", "v1");
    djangoRelease(sb, "v2", { "core/static/core/site.css": "body { color: red }\n" });
    assert.deepEqual((await prepare(sb, "v1", "v2")).run, ["v2 collectstatic"]);
    djangoRelease(sb, "v3", {
      "core/static/core/site.css": "body { color: red }\n",
      "config/settings.py": "DEBUG = True\n",
    });
    assert.deepEqual((await prepare(sb, "v2", "v3")).run, ["v3 collectstatic"]);
    djangoRelease(sb, "v4", {
      "core/static/core/site.css": "body { color: red }\n",
      "config/settings.py": "DEBUG = True\n",
      "core/migrations/0002_more.py": "m = 2\n",
    });
    assert.deepEqual((await prepare(sb, "v3", "v4")).run, ["v4 migrate"]);
  });
  it("Alembic: upgrade head on a first release, skipped while no revision changed, run for a new one", async () => {
    const sb = sandbox({ migrate: alembicUpgrade });
    const withAlembic = (name: string, files: Record<string, string> = {}) => {
      const dir = djangoRelease(sb, name, { "migrations/versions/0001_items.py": "r = 1\n", ...files });
      const bin = path.join(sb.root, "venvs", "envA", "bin", "alembic");
      fs.writeFileSync(bin, `#!/bin/sh\necho "$(basename "$PWD") alembic $*" >>"$STUB_DIR/manage.log"\n`, {
        mode: 0o755,
      });
      return dir;
    };
    withAlembic("v1");
    assert.deepEqual((await prepare(sb, "none", "v1")).run, ["v1 alembic upgrade head"]);
    withAlembic("v2", { "app/main.py": "x = 2\n" });
    const r = await prepare(sb, "v1", "v2");
    assert.deepEqual(r.run, []);
    assert.match(r.stderr, /^migrations unchanged since v1: not run$/m);
    withAlembic("v3", { "migrations/versions/0002_more.py": "r = 2\n" });
    assert.deepEqual((await prepare(sb, "v2", "v3")).run, ["v3 alembic upgrade head"]);
  });

  it("each step runs as the service user under a unit named for the step and this run, where its journal lines are found", async () => {
    const sb = sandbox(django);
    djangoRelease(sb, "v1");
    await prepare(sb, "none", "v1");
    const units = sb
      .calls("systemd-run")
      .map((c) => /--unit=(\S+)/.exec(c.line)?.[1])
      .sort();
    assert.equal(units.length, 2);
    assert.match(units[0]!, /^demoapp-migrate-\d+\.service$/);
    assert.match(units[1]!, /^demoapp-static-\d+\.service$/);
    for (const c of sb.calls("systemd-run")) assert.match(c.line, / --uid=\S+ --gid=\S+ /);
  });

  // The failure CI saw once under load: collectstatic ended non-zero, side by
  // side with migrate, and printed nothing, so the release failed with no why.
  it("a static build that ends without a word runs once more (what systemd saw is said); silent twice, the release fails naming it", async () => {
    const marks = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-static-"));
    scratch.push(marks);
    const silentOnce = (times: number) =>
      commandStep(
        `n=$(ls ${marks} | wc -l); touch ${marks}/run$n; if [ "$n" -lt ${times} ]; then exit 137; fi; echo "$(basename "$PWD") built" >>"$STUB_DIR/manage.log"`,
      );
    const sb = sandbox({ static: silentOnce(1) });
    djangoRelease(sb, "v1");
    const r = await prepare(sb, "none", "v1");
    assert.deepEqual(r.run, ["v1 built"]);
    assert.match(
      r.stderr,
      /^the static step ended with status 137 and printed nothing \(last words of demoapp-static-\d+\.service \): running it once more$/m,
    );

    fs.rmSync(marks, { recursive: true, force: true });
    fs.mkdirSync(marks);
    const twice = sandbox({ static: silentOnce(2) });
    djangoRelease(twice, "v1");
    const f = await twice.source("prepare_release none v1 sha envA");
    assert.equal(f.code, 4);
    assert.match(f.stderr, /^\(last words of demoapp-static-\d+\.service \)$/m);
    assert.match(f.stderr, /^ayna-release: deploy: the static files build \(.*\) failed; nothing was serving before$/m);
    assert.equal(fs.existsSync(path.join(twice.root, "releases", "v1")), false, "the half-made release is removed");
  });

  it("the operator's own commands run for every new release, in its directory; none configured runs nothing", async () => {
    const log = (what: string) => commandStep(`echo "$(basename "$PWD") ${what}" >>"$STUB_DIR/manage.log"`);
    const sb = sandbox({ migrate: log("migrated"), static: log("built") });
    djangoRelease(sb, "v1");
    assert.deepEqual((await prepare(sb, "none", "v1")).run, ["v1 built", "v1 migrated"]);
    djangoRelease(sb, "v2");
    assert.deepEqual((await prepare(sb, "v1", "v2")).run, ["v2 built", "v2 migrated"]);
    const bare = sandbox();
    djangoRelease(bare, "v1");
    assert.deepEqual((await prepare(bare, "none", "v1")).run, [], "no step configured: manage.py alone runs nothing");
  });
});

describe("ayna-release: retention", () => {
  it("keeps the newest KEEP releases and always current, previous and one a service process runs in; removes the others", async () => {
    const sb = sandbox({ keep: 3 });
    for (let n = 1; n <= 8; n++) sb.release(`v${n}`);
    fs.mkdirSync(path.join(sb.root, "releases", ".v9.tmp"));
    sb.setCurrent("v2");
    sb.setPrevious("v1");
    const pid = sb.helper(["sleep", "30"], path.join(sb.root, "releases", "v4"));
    sb.state("show/demoapp-celery.service.MainPID", `${pid}\n`);
    const r = await sb.source("prune");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sb.releases(), ["current", "v1", "v2", "v4", "v6", "v7", "v8"]);
    assert.deepEqual(r.stderr.trimEnd().split("\n"), ["pruned release v3", "pruned release v5"]);
  });

  it("keeps the newest KEEP releases however long the lists it checks are (a match found early once failed the check under pipefail and removed the newest release)", async () => {
    const sb = sandbox({ keep: 3 });
    for (let n = 1; n <= 8; n++) sb.release(`v${n}`);
    sb.setCurrent("v2");
    sb.setPrevious("v1");
    // A list longer than a pipe holds: a reader that stops at its match leaves
    // the writer's rest to fail (EPIPE) every time, not one time in thousands.
    const r = await sb.source("in_use_releases() { seq 1 30000 | sed 's/^/elsewhere-/'; }\nprune");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sb.releases(), ["current", "v1", "v2", "v6", "v7", "v8"]);
    assert.deepEqual(r.stderr.trimEnd().split("\n"), ["pruned release v3", "pruned release v4", "pruned release v5"]);
  });

  it("json_field reads the first value of a key, and nothing (status 0) for a key that is not there", async () => {
    const sb = sandbox();
    const f = path.join(sb.dir, "meta.json");
    fs.writeFileSync(f, '{"release": "v3", "sha": "abc", "venv": "envA"}\n{"release": "v9"}\n');
    const r = await sb.source(
      `echo "[$(json_field ${f} release)] [$(json_field ${f} venv)] [$(json_field ${f} nothing)]"`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "[v3] [envA] []\n");
  });

  it("removes environments no kept release uses once they are an hour old; keeps used and fresh ones", async () => {
    const sb = sandbox({ keep: 3 });
    sb.release("v1", { venv: "envD" });
    sb.release("v2", { venv: "envA" });
    sb.release("v3", { venv: "envA" });
    sb.release("v4", { venv: "envA" });
    sb.setCurrent("v4");
    sb.setPrevious("v3");
    sb.env("envB");
    sb.env("envC");
    const hoursAgo = new Date(Date.now() - 2 * 3600_000);
    for (const e of ["envA", "envB", "envD"]) fs.utimesSync(path.join(sb.root, "venvs", e), hoursAgo, hoursAgo);
    const r = await sb.source("prune");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(path.join(sb.root, "venvs")).sort(), ["envA", "envC"]);
  });
});

describe("ayna-release: deploy", () => {
  it("prints release=vN previous=vM as its only line on stdout: release=v1 previous= first, then release=v2 previous=v1", async () => {
    const sb = sandbox();
    sb.env("envA");
    const a1 = archive(sb.dir, "one");
    const a2 = archive(sb.dir, "two");
    const first = await healthyDeploy(sb, a1, "sha1", "v1");
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, "release=v1 previous=\n");
    const second = await healthyDeploy(sb, a2, "sha2", "v2");
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, "release=v2 previous=v1\n");
  });

  it("unpacks the archive into releases/vN with its metadata and environment link, and leaves no lock", async () => {
    const sb = sandbox();
    sb.env("envA");
    const a1 = archive(sb.dir, "one");
    const r = await healthyDeploy(sb, a1, "sha1", "v1");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(sb.root, "releases", "v1", "app.py"), "utf8"), 'TAG = "one"\n');
    assert.equal(fs.readlinkSync(path.join(sb.root, "releases", "v1", ".venv")), "../../venvs/envA");
    assert.match(
      sb.lines("releases/v1/.ayna-release.json")[0]!,
      new RegExp(
        `^\\{"release": "v1", "sha": "sha1", "checksum": "${a1.checksum}", "venv": "envA", "created": "\\S+Z"\\}$`,
      ),
    );
    assert.equal(sb.current(), "v1");
    assert.equal(sb.exists(".deploy-lock"), false);
  });

  it("writes bytecode as root for the release and, once, for its environment, without running the environment's .pth files", async () => {
    const sb = sandbox();
    const env = sb.env("envA");
    // An environment as uv makes one: bin/python the interpreter, a package without bytecode, a .pth file.
    const site = path.join(env, "lib", "python3", "site-packages");
    fs.mkdirSync(site, { recursive: true });
    fs.mkdirSync(path.join(env, "bin"));
    fs.symlinkSync("/usr/bin/python3", path.join(env, "bin", "python"));
    fs.writeFileSync(path.join(site, "pkg.py"), "X = 1\n");
    fs.writeFileSync(path.join(site, "broken.py"), "def (:\n");
    const ran = path.join(sb.dir, "pth-ran");
    fs.writeFileSync(path.join(site, "evil.pth"), `import os; open(${JSON.stringify(ran)}, "w")\n`);
    const pyc = (dir: string, mod: string) =>
      fs.existsSync(path.join(dir, "__pycache__")) &&
      fs.readdirSync(path.join(dir, "__pycache__")).some((f) => f.startsWith(`${mod}.`) && f.endsWith(".pyc"));
    const r = await healthyDeploy(sb, archive(sb.dir, "one"), "sha1", "v1");
    assert.equal(r.code, 0, r.stderr);
    assert.ok(pyc(path.join(sb.root, "releases", "v1"), "app"), "the release's own module");
    assert.ok(pyc(site, "pkg"), "the environment's package");
    assert.ok(!pyc(site, "broken"), "a file that does not compile is skipped, the deploy goes on");
    assert.ok(sb.exists("venvs/envA/.ayna-bytecode"));
    assert.equal(fs.existsSync(ran), false, "python ran without site: no .pth file ran as root");
    // The environment is compiled once: the next release of it leaves it alone.
    fs.rmSync(path.join(site, "__pycache__"), { recursive: true });
    const second = await healthyDeploy(sb, archive(sb.dir, "two"), "sha2", "v2");
    assert.equal(second.code, 0, second.stderr);
    assert.ok(pyc(path.join(sb.root, "releases", "v2"), "app"));
    assert.ok(!pyc(site, "pkg"));
  });

  it("appends one audit line per release: time, actor, from, to, sha, result and action", async () => {
    const sb = sandbox();
    sb.env("envA");
    const a1 = archive(sb.dir, "one");
    const a2 = archive(sb.dir, "two");
    await healthyDeploy(sb, a1, "sha1", "v1");
    await healthyDeploy(sb, a2, "sha2", "v2");
    const audit = sb.lines("logs/deploy-audit.log");
    assert.equal(audit.length, 2);
    assert.match(
      audit[0]!,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\tactor=tester@ci\tfrom=none\tto=v1\tsha=sha1\tresult=ok\tdeploy$/,
    );
    assert.match(audit[1]!, /^\S+Z\tactor=tester@ci\tfrom=v1\tto=v2\tsha=sha2\tresult=ok\tdeploy$/);
  });

  it("an archive already released is switched back to, not unpacked again", async () => {
    const sb = sandbox();
    sb.env("envA");
    const a1 = archive(sb.dir, "one");
    const a2 = archive(sb.dir, "two");
    await healthyDeploy(sb, a1, "sha1", "v1");
    await healthyDeploy(sb, a2, "sha2", "v2");
    sb.answers(8150, healthy("v1"));
    const r = await sb.program(deployArgs(a1, "sha1"), a1.data);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^archive matches existing release v1: switching back to it$/m);
    assert.equal(sb.current(), "v1");
    assert.deepEqual(sb.releases(), ["current", "v1", "v2"]);
    assert.equal(r.stdout, "release=v1 previous=v2\n");
  });

  it("refuses an archive whose checksum does not match: exit 1, no release directory left, nothing switched", async () => {
    const sb = sandbox();
    sb.env("envA");
    const a1 = archive(sb.dir, "one");
    const r = await sb.program(deployArgs(a1, "sha1"), Buffer.concat([a1.data, Buffer.from("x")]));
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^ayna-release: deploy: archive checksum mismatch \(upload damaged or cut off\); nothing changed$/m,
    );
    assert.deepEqual(sb.releases(), []);
    assert.deepEqual(sb.calls("curl"), []);
  });

  it("a release whose candidate fails is never switched to: exit 3, current unchanged, marked failed, audited", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    sb.release("v1", { checksum: "0".repeat(64) });
    sb.setCurrent("v1");
    const a2 = archive(sb.dir, "two");
    sb.answers(8155, "500");
    const r = await sb.program(deployArgs(a2, "sha2"), a2.data);
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      /^ayna-release: release v2 failed its health check before the switch; v1 is still serving$/m,
    );
    assert.equal(sb.current(), "v1");
    assert.ok(sb.calls().every((c) => c.current === "v1"));
    assert.ok(sb.exists("releases/v2/.ayna-failed"));
    assert.match(
      sb.lines("logs/deploy-audit.log").at(-1)!,
      /\tfrom=v1\tto=v2\tsha=sha2\tresult=failed\tcandidate health check failed$/,
    );
  });

  it("a release that failed its candidate check is checked again when the same archive comes back, never just switched to", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 1 });
    sb.release("v1", { checksum: "0".repeat(64) });
    sb.setCurrent("v1");
    const a2 = archive(sb.dir, "two");
    sb.answers(8155, "500");
    assert.equal((await sb.program(deployArgs(a2, "sha2"), a2.data)).code, 3);
    // The same inputs again (a plain `up` after the failure): still unhealthy, so still refused.
    const again = await sb.program(deployArgs(a2, "sha2"), a2.data);
    assert.equal(again.code, 3, again.stderr);
    assert.match(
      again.stderr,
      /^ayna-release: release v2 failed its health check again before the switch; v1 is still serving$/m,
    );
    assert.equal(sb.current(), "v1");
    assert.ok(sb.exists("releases/v2/.ayna-failed"));
    assert.equal(again.stdout, "", "no result line: the stack records no success");
  });

  it("a failed release whose candidates now pass is served, and no longer marked failed", async () => {
    const sb = sandbox({ healthTimeoutSeconds: 2 });
    sb.release("v1", { checksum: "0".repeat(64) });
    sb.setCurrent("v1");
    const a2 = archive(sb.dir, "two");
    sb.answers(8155, "500");
    assert.equal((await sb.program(deployArgs(a2, "sha2"), a2.data)).code, 3);
    sb.answers(8155, healthy("v2"));
    sb.answers(8156, healthy("v2"));
    sb.answers(8150, healthy("v2"));
    sb.answers(8151, healthy("v2"));
    const r = await sb.program(deployArgs(a2, "sha2"), a2.data);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /checking its candidates again/);
    assert.equal(sb.current(), "v2");
    assert.ok(!sb.exists("releases/v2/.ayna-failed"));
    assert.equal(r.stdout, "release=v2 previous=v1\n");
  });
});

/** The two bundle lines a deploy reads before the archive. */
function bundle(env: string, units: Record<string, string>): Buffer {
  return Buffer.from(
    `${Buffer.from(env).toString("base64")}\n` +
      `${encodeUnits(Object.entries(units).map(([name, content]) => ({ name, content })))}\n`,
  );
}

const unitsV1 = { "demoapp-web.service": "[Service]\nExecStart=web v1\n", "demoapp-celery.service": "[Service]\n" };

describe("ayna-release: the env file and units travel with the release (--bundle)", () => {
  /** A host serving v1 deployed with `env` and `units`, recorded as the last bundle. */
  async function serving(sb: Sandbox, env = "A=1\n", units = unitsV1) {
    const a = archive(sb.dir, "one");
    sb.tree();
    sb.env("envA");
    sb.answers(8155, healthy("v1"));
    sb.answers(8150, healthy("v1"));
    const r = await sb.program([...deployArgs(a, "sha-1"), "--bundle"], Buffer.concat([bundle(env, units), a.data]));
    assert.equal(r.code, 0, r.stderr);
    fs.writeFileSync(path.join(sb.stubDir, "calls.log"), "");
    return a;
  }

  it("a first deploy installs the env file 0600 and the units, reloads systemd once, and records both for verify", async () => {
    const sb = sandbox();
    await serving(sb);
    const envFile = path.join(sb.root, "shared", ".env.production");
    assert.equal(fs.readFileSync(envFile, "utf8"), "A=1\n");
    assert.equal((fs.statSync(envFile).mode & 0o777).toString(8), "600");
    assert.equal(fs.readFileSync(path.join(sb.unitDir, "demoapp-web.service"), "utf8"), unitsV1["demoapp-web.service"]);
    assert.deepEqual(
      sb.lines(".bundle").map((l) => l.split(" ").slice(0, 2).join(" ")),
      [
        `env ${crypto.createHash("sha256").update("A=1\n").digest("hex")}`,
        "unit demoapp-celery.service",
        "unit demoapp-web.service",
      ],
    );
    assert.equal(sb.exists(".staging"), false, "the staged copy of the env file is gone");
  });

  it("an env change alone is a release of the serving code: candidates run with the new file first, then a restart (not a HUP)", async () => {
    const sb = sandbox();
    const a = await serving(sb);
    sb.answers(8155, healthy("v1"));
    sb.answers(8150, healthy("v1"));
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=2\n", unitsV1), a.data]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "release=v1 previous=\n");
    const candidate = sb.calls("systemd-run").find((c) => c.line.includes("--unit=demoapp-web-candidate.service"));
    assert.match(
      candidate?.line ?? "",
      new RegExp(`EnvironmentFile=${sb.root}/\\.staging/env `),
      "candidates read the staged file",
    );
    const verbs = sb
      .calls("systemctl")
      .map((c) => c.line)
      .filter((l) => /^systemctl (restart|reload|daemon-reload)/.test(l));
    assert.deepEqual(verbs, ["systemctl restart demoapp-web.service", "systemctl restart demoapp-celery.service"]);
    assert.equal(fs.readFileSync(path.join(sb.root, "shared", ".env.production"), "utf8"), "A=2\n");
    assert.match(
      sb.lines("logs/deploy-audit.log").pop() ?? "",
      /from=v1\tto=v1\tsha=sha-1\tresult=ok\tconfig \(env file\)$/,
    );
  });

  it("an env change whose candidates fail changes nothing: the old file stays, no service is touched, exit 3", async () => {
    const sb = sandbox();
    const a = await serving(sb);
    sb.answers(8155, "500");
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=bad\n", unitsV1), a.data]),
    );
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /v1 with the new env file failed its health check before the switch; nothing was changed and v1 is still serving/,
    );
    assert.equal(fs.readFileSync(path.join(sb.root, "shared", ".env.production"), "utf8"), "A=1\n");
    assert.deepEqual(
      sb.calls("systemctl").filter((c) => /restart|reload/.test(c.line)),
      [],
    );
    assert.equal(sb.exists("releases/v1/.ayna-failed"), false, "the serving release is not marked failed");
  });

  it("an env and unit change failing the gate after the switch puts the previous env file and units back, byte for byte", async () => {
    // The stub's port keeps answering 500 after the rollback too: a short gate keeps the test fast.
    const sb = sandbox({ healthTimeoutSeconds: 3 });
    const a = await serving(sb);
    const before = fs.readFileSync(path.join(sb.root, "shared", ".env.production"));
    sb.answers(8155, healthy("v1"));
    sb.answers(8150, "500");
    const units2 = { ...unitsV1, "demoapp-web.service": "[Service]\nExecStart=web v1 --workers 9\n" };
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=2\n", units2), a.data]),
    );
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /v1 with the new env file;units: demoapp-web\.service failed its health check; the previous env file and units are back and v1 is serving/,
    );
    assert.deepEqual(fs.readFileSync(path.join(sb.root, "shared", ".env.production")), before);
    assert.equal(fs.readFileSync(path.join(sb.unitDir, "demoapp-web.service"), "utf8"), unitsV1["demoapp-web.service"]);
    assert.equal(
      sb.calls("systemctl").filter((c) => c.line === "systemctl daemon-reload").length,
      2,
      "once in, once back",
    );
    assert.match(
      sb.lines("logs/deploy-audit.log").pop() ?? "",
      /result=rolled-back\thealth check failed \(env file;units: demoapp-web\.service\)$/,
    );
  });

  it("the same bundle with every service running is a no-op: nothing restarted or reloaded", async () => {
    const sb = sandbox();
    const a = await serving(sb);
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=1\n", unitsV1), a.data]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /release v1 is already current/);
    assert.deepEqual(
      sb.calls("systemctl").filter((c) => /restart|reload|start /.test(c.line)),
      [],
    );
  });

  it("a service stopped by hand is started again by the same deploy, through the gate", async () => {
    const sb = sandbox();
    const a = await serving(sb);
    sb.state("inactive/demoapp-celery.service");
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=1\n", unitsV1), a.data]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /repairing release v1/);
    assert.ok(sb.calls("systemctl").some((c) => c.line === "systemctl start demoapp-celery.service"));
  });

  it("a new socket unit takes the port over: the service is stopped, the socket started, then the service", async () => {
    const sb = sandbox();
    const a = await serving(sb);
    const units2 = { ...unitsV1, "demoapp-web.socket": "[Socket]\nListenStream=127.0.0.1:8150\n" };
    sb.state("inactive/demoapp-web.service");
    sb.answers(8155, healthy("v1"));
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=1\n", units2), a.data]),
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = sb.calls("systemctl").map((c) => c.line);
    const order = [
      "systemctl stop demoapp-web.service",
      "systemctl restart demoapp-web.socket",
      "systemctl start demoapp-web.service",
    ];
    assert.deepEqual(
      lines.filter((l) => order.includes(l)),
      order,
    );
    assert.ok(lines.includes("systemctl enable --quiet demoapp-web.socket"));
  });

  it("a unit the bundle no longer has is stopped, disabled and removed; names outside the project are refused", async () => {
    const sb = sandbox();
    const a = await serving(sb);
    const units2 = { "demoapp-web.service": unitsV1["demoapp-web.service"] };
    sb.answers(8155, healthy("v1"));
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=1\n", units2), a.data]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(sb.calls("systemctl").some((c) => c.line === "systemctl disable --now --quiet demoapp-celery.service"));
    assert.equal(fs.existsSync(path.join(sb.unitDir, "demoapp-celery.service")), false);
    const evil = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=1\n", { "other-web.service": "x" }), a.data]),
    );
    assert.equal(evil.code, 1);
    assert.match(evil.stderr, /refusing unit file name 'other-web\.service'/);
  });

  it("the project's units that are not a service's (the backup timer's) are neither removed nor recorded by a release", async () => {
    const sb = sandbox();
    fs.mkdirSync(sb.unitDir, { recursive: true });
    const backup = path.join(sb.unitDir, "demoapp-backup.service");
    fs.writeFileSync(backup, "[Service]\nExecStart=/opt/ayna/demoapp/bin/ayna-db backup\n");
    const a = await serving(sb);
    sb.answers(8155, healthy("v1"));
    const r = await sb.program(
      [...deployArgs(a, "sha-1"), "--bundle"],
      Buffer.concat([bundle("A=2\n", unitsV1), a.data]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(backup), "the backup unit is still there");
    assert.ok(!sb.calls("systemctl").some((c) => c.line.includes("demoapp-backup")), "and never stopped");
    assert.ok(!sb.lines(".bundle").some((l) => l.includes("demoapp-backup")), "nor recorded as the release's");
  });

  it("verify passes on what was installed, and names each drift: env file mode, a unit edited, a service stopped", async () => {
    const sb = sandbox();
    await serving(sb);
    const ok = await sb.program(["verify"]);
    assert.equal(ok.code, 0, ok.stderr);
    fs.chmodSync(path.join(sb.root, "shared", ".env.production"), 0o644);
    fs.appendFileSync(path.join(sb.unitDir, "demoapp-web.service"), "# edited\n");
    sb.state("inactive/demoapp-celery.service");
    const bad = await sb.program(["verify"]);
    assert.equal(bad.code, 1);
    assert.deepEqual(bad.stderr.trim().split("\n"), [
      `drift: ${sb.root}/shared/.env.production is not mode 0600 owned by root:root`,
      `drift: ${sb.unitDir}/demoapp-web.service was changed or removed`,
      "drift: demoapp-celery.service is not running",
    ]);
  });
});

describe("ayna-release: a rollback to a proven release is a switch and a reload (no second watch window)", () => {
  /** v1 then v2 deployed with `env` and unitsV1 under a 2 s watch window; v2 serves. */
  async function twoReleases(sb: Sandbox, env = "A=1\n") {
    const one = archive(sb.dir, "one");
    const two = archive(sb.dir, "two");
    sb.tree();
    sb.env("envA");
    for (const [a, rel, sha] of [
      [one, "v1", "sha-1"],
      [two, "v2", "sha-2"],
    ] as const) {
      sb.answers(8155, healthy(rel));
      sb.answers(8150, healthy(rel));
      const r = await sb.program([...deployArgs(a, sha), "--bundle"], Buffer.concat([bundle(env, unitsV1), a.data]));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`^health ok: every service of ${rel} stayed up for 2s$`, "m"));
    }
  }

  it("a release that stays up through its window is recorded as proven: the seconds and one hash of the env file and units", async () => {
    const sb = sandbox({ watchSeconds: 2 });
    await twoReleases(sb);
    const proven = sb.lines("releases/v1/.ayna-proven");
    assert.equal(proven[0], "seconds=2");
    assert.match(proven[1] ?? "", /^bundle=[0-9a-f]{64}$/);
    assert.match(proven[2] ?? "", /^at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(
      sb.lines("releases/v2/.ayna-proven").slice(0, 2),
      proven.slice(0, 2),
      "same env and units, same hash",
    );
  });

  it("rolled back to under the same env file and units: no window, its services checked once and web's health gate passed", async () => {
    const sb = sandbox({ watchSeconds: 2 });
    await twoReleases(sb);
    sb.answers(8150, healthy("v1"));
    const r = await sb.program(["rollback", "--bundle"], bundle("A=1\n", unitsV1));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "release=v1 previous=v2\n");
    assert.match(
      r.stderr,
      /^watch: v1 stayed up for 2s under this env file and units when it served before; its services are checked once$/m,
    );
    assert.match(r.stderr, /^health ok: http:\/\/127\.0\.0\.1:8150\/health serves v1$/m);
    assert.doesNotMatch(r.stderr, /stayed up for 2s$/m, "no window was waited out");
    assert.equal(sb.current(), "v1");
  });

  it("rolled back to with another env file: the full window, as for a new release", async () => {
    const sb = sandbox({ watchSeconds: 2 });
    await twoReleases(sb);
    sb.answers(8155, healthy("v1"));
    sb.answers(8150, healthy("v1"));
    const r = await sb.program(["rollback", "--bundle"], bundle("A=2\n", unitsV1));
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /^watch: /m);
    assert.match(r.stderr, /^health ok: every service of v1 stayed up for 2s$/m);
  });

  it("a proven release that fails its gate when switched back to loses its proof, is marked failed, and v2 serves again", async () => {
    const sb = sandbox({ watchSeconds: 2, healthTimeoutSeconds: 2 });
    await twoReleases(sb);
    sb.answers(8150, "500");
    const r = await sb.program(["rollback", "--bundle"], bundle("A=1\n", unitsV1));
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^watch: v1 stayed up for 2s/m);
    assert.equal(sb.exists("releases/v1/.ayna-proven"), false);
    assert.equal(sb.exists("releases/v1/.ayna-failed"), true);
    assert.equal(sb.current(), "v2");
  });
});
