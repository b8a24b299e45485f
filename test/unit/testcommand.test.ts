// The test command cannot flatter itself: focused, pending and skipped tests
// fail; a dry run counts as skipped; a mocha exit that the reporter did not
// record still fails; golden files are compared, never rewritten. Mocha runs
// here as a child process on the files in test/fixtures/mocha/ (named
// *.fixture.ts, which neither spec glob matches) with the project's own
// .mocharc files, reporter and tally arithmetic (test/support/tally.js).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assertGolden, lineDiff, UPDATE_ENV } from "../support/golden";

const repoRoot = path.resolve(__dirname, "..", "..");
const fixtures = path.join(repoRoot, "test", "fixtures", "mocha");
const tallyScript = path.join(repoRoot, "test", "support", "tally.js");

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
}

/** A tally line as written: the counts, and what failed when something did. */
interface TallyLine extends Tally {
  failures?: string[];
}

interface MochaRun {
  code: number | null;
  out: string;
  /** The counts of the lines the reporter wrote to $AYNA_TALLY_FILE. */
  lines: Tally[];
  /** What scripts/test.sh adds to its total for this run (counts only). */
  counted: Tally;
  /** The failures named by that line. */
  failures: string[];
}

const counts = ({ passed, failed, skipped }: TallyLine): Tally => ({ passed, failed, skipped });

/** Config copies and tally files of the child runs; made and removed by the suite below. */
let scratch: string;

/** Runs one fixture under a copy of `config` whose spec is only that fixture. */
function mocha(config: string, fixture: string, extra: string[] = []): MochaRun {
  const rc = JSON.parse(fs.readFileSync(path.join(repoRoot, config), "utf8")) as Record<string, unknown>;
  const id = crypto.randomUUID();
  const rcFile = path.join(scratch, `${id}.json`);
  const tallyFile = path.join(scratch, `${id}.tally`);
  fs.writeFileSync(rcFile, JSON.stringify({ ...rc, spec: [path.join(fixtures, fixture)] }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Its own tally file: the child must never add to the tally of the run around it.
    AYNA_TALLY_FILE: tallyFile,
    // Types are checked by tsc; the child only needs to run.
    TS_NODE_TRANSPILE_ONLY: "1",
  };
  delete env[UPDATE_ENV];
  const r = spawnSync(process.execPath, [require.resolve("mocha/bin/mocha.js"), "--config", rcFile, ...extra], {
    cwd: repoRoot,
    env,
    encoding: "utf8",
    timeout: 90_000,
  });
  const text = fs.existsSync(tallyFile) ? fs.readFileSync(tallyFile, "utf8") : "";
  const lines = text
    .split("\n")
    .filter(Boolean)
    .map((l) => counts(JSON.parse(l) as TallyLine));
  const counted = spawnSync(process.execPath, [tallyScript, "run", fixture, String(r.status), tallyFile], {
    encoding: "utf8",
  });
  assert.equal(counted.status, 0, counted.stderr);
  const line = JSON.parse(counted.stdout) as TallyLine;
  return { code: r.status, out: r.stdout + r.stderr, lines, counted: counts(line), failures: line.failures ?? [] };
}

/** What `tally.js failures` prints for a tally file of these lines. */
function failureLines(lines: string[]): string {
  const file = path.join(scratch, `${crypto.randomUUID()}.tally`);
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const r = spawnSync(process.execPath, [tallyScript, "failures", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function sum(lines: string[]): string {
  const file = path.join(scratch, `${crypto.randomUUID()}.tally`);
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const r = spawnSync(process.execPath, [tallyScript, "sum", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe("the test command: what fails and what counts", function () {
  this.timeout(180_000);
  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ayna-testcommand-"));
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it("keeps the fixtures out of both spec globs", () => {
    for (const f of fs.readdirSync(fixtures)) assert.match(f, /^[\w-]+\.fixture\.ts$/);
    for (const config of [".mocharc.unit.json", ".mocharc.e2e.json"]) {
      const rc = JSON.parse(fs.readFileSync(path.join(repoRoot, config), "utf8")) as { spec: string[] };
      for (const glob of rc.spec) assert.ok(!glob.startsWith("test/fixtures"), `${config}: ${glob}`);
    }
  });

  for (const config of [".mocharc.unit.json", ".mocharc.e2e.json"]) {
    describe(config, () => {
      it("fails a run with .only", () => {
        const r = mocha(config, "only.fixture.ts");
        assert.notEqual(r.code, 0, r.out);
        // Serial mode says "forbidden"; parallel mode (the e2e config) refuses .only outright.
        assert.match(r.out, /`\.only` (forbidden|is not supported in parallel mode)/);
        assert.equal(r.counted.passed, 0, r.out);
        assert.ok(r.counted.failed >= 1, r.out);
      });

      it("fails it.skip, xit and a test without a body", () => {
        const r = mocha(config, "pending.fixture.ts");
        assert.notEqual(r.code, 0, r.out);
        assert.deepEqual(r.lines, [{ passed: 1, failed: 3, skipped: 0 }], r.out);
        assert.deepEqual(r.counted, { passed: 1, failed: 3, skipped: 0 });
      });

      it("fails this.skip() at run time, in a test, a before and a beforeEach hook", () => {
        const r = mocha(config, "runtime-skip.fixture.ts");
        assert.notEqual(r.code, 0, r.out);
        assert.deepEqual(r.lines, [{ passed: 1, failed: 3, skipped: 0 }], r.out);
        assert.deepEqual(r.counted, { passed: 1, failed: 3, skipped: 0 });
      });
    });
  }

  it("counts tests listed by a dry run as skipped, never passed", () => {
    const run = mocha(".mocharc.e2e.json", "passing.fixture.ts");
    assert.deepEqual(run.counted, { passed: 2, failed: 0, skipped: 0 }, run.out);
    // As scripts/test.sh lists the end-to-end tests with AYNA_SKIP_E2E=1.
    const dry = mocha(".mocharc.e2e.json", "passing.fixture.ts", ["--dry-run", "--no-parallel"]);
    assert.equal(dry.code, 0, dry.out);
    assert.deepEqual(dry.counted, { passed: 0, failed: 0, skipped: 2 }, dry.out);
    assert.match(dry.out, /passing tests one \(not run\)/);
    assert.doesNotMatch(dry.out, /✔/);
  });

  it("a dry run still fails pending and focused tests", () => {
    const dry = mocha(".mocharc.e2e.json", "pending.fixture.ts", ["--dry-run", "--no-parallel"]);
    assert.notEqual(dry.code, 0, dry.out);
    assert.deepEqual(dry.counted, { passed: 0, failed: 3, skipped: 1 }, dry.out);
    const only = mocha(".mocharc.e2e.json", "only.fixture.ts", ["--dry-run", "--no-parallel"]);
    assert.notEqual(only.code, 0, only.out);
    assert.match(only.out, /`\.only` forbidden/);
    assert.deepEqual(only.counted, { passed: 0, failed: 1, skipped: 0 }, only.out);
  });

  it("adds a failure when mocha exits non-zero with none recorded", () => {
    // No tests: --fail-zero makes mocha exit 1, the reporter records 0 failures.
    const r = mocha(".mocharc.unit.json", "empty.fixture.ts");
    assert.notEqual(r.code, 0, r.out);
    assert.deepEqual(r.lines, [{ passed: 0, failed: 0, skipped: 0 }], r.out);
    assert.deepEqual(r.counted, { passed: 0, failed: 1, skipped: 0 });
  });

  it("adds a failure when the reporter recorded nothing, even after exit 0", () => {
    const r = mocha(".mocharc.unit.json", "exits-early.fixture.ts");
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(r.lines, []);
    assert.deepEqual(r.counted, { passed: 0, failed: 1, skipped: 0 });
  });

  it("names each failing test, labelled by its run, with its error's first line; a passing run names none", () => {
    const r = mocha(".mocharc.unit.json", "failing.fixture.ts");
    assert.notEqual(r.code, 0, r.out);
    assert.deepEqual(r.counted, { passed: 1, failed: 2, skipped: 0 }, r.out);
    assert.deepEqual(r.failures, [
      "failing.fixture.ts: failing tests compares two numbers: one and one make three",
      "failing.fixture.ts: failing tests throws a long story: first line of the story",
    ]);
    const pass = mocha(".mocharc.unit.json", "passing.fixture.ts");
    assert.deepEqual(pass.failures, [], pass.out);
    // --forbid-pending turns each pending test into a failure of its own.
    assert.deepEqual(
      mocha(".mocharc.unit.json", "pending.fixture.ts").failures,
      ["skipped with it.skip", "skipped with xit", "has no body"].map(
        (t) => `pending.fixture.ts: pending tests ${t}: Pending test forbidden`,
      ),
    );
    // A run the reporter never finished is named for what happened to it.
    assert.deepEqual(mocha(".mocharc.unit.json", "exits-early.fixture.ts").failures, [
      "exits-early.fixture.ts: mocha exited 0 and its reporter recorded nothing",
    ]);
  });

  it("lists the failures of every line above the closing line, and nothing when all passed", () => {
    const pass = '{"passed":3,"failed":0,"skipped":0}';
    assert.equal(failureLines([pass, pass]), "");
    assert.equal(
      failureLines([
        pass,
        '{"passed":0,"failed":1,"skipped":0,"failures":["eslint"]}',
        '{"passed":5,"failed":2,"skipped":0,"failures":["end-to-end tests (database): a: x","end-to-end tests (database): b: y"]}',
        "garbage",
      ]),
      [
        "FAILED eslint",
        "FAILED end-to-end tests (database): a: x",
        "FAILED end-to-end tests (database): b: y",
        "FAILED not a tally line: garbage",
        "",
      ].join("\n"),
    );
  });

  it("sums to the closing line, naming skipped tests only when there are some", () => {
    const pass = '{"passed":1,"failed":0,"skipped":0}';
    assert.equal(sum([pass, '{"passed":39,"failed":0,"skipped":0}']), "40 passed, 0 failed");
    assert.equal(sum([pass, '{"passed":0,"failed":0,"skipped":31}']), "1 passed, 0 failed, 31 skipped");
    // A line that is not a tally is a failure, not nothing.
    assert.equal(sum([pass, "garbage", '{"passed":-1,"failed":0,"skipped":0}']), "1 passed, 2 failed");
  });
});

describe("golden files: compared, never rewritten by a test run", () => {
  const file = path.join(repoRoot, "test", "unit", "golden", "env.production");
  // These check the comparing mode, also while npm run golden:update runs them.
  let update: string | undefined;
  before(() => {
    update = process.env[UPDATE_ENV];
    delete process.env[UPDATE_ENV];
  });
  after(() => {
    if (update !== undefined) process.env[UPDATE_ENV] = update;
  });

  it("fails with a readable diff and leaves the golden file alone", () => {
    const golden = fs.readFileSync(file, "utf8");
    const changed = golden.replace("PROJECT_NAME=", "PROJECT_NAME=changed-");
    assert.notEqual(changed, golden);
    assert.throws(
      () => assertGolden("env.production", changed),
      (err: Error) => {
        assert.match(err.message, /env\.production differs from test\/unit\/golden\/env\.production/);
        assert.match(err.message, /npm run golden:update/);
        assert.match(err.message, /^- PROJECT_NAME="demoapp"$/m);
        assert.match(err.message, /^\+ PROJECT_NAME=changed-"demoapp"$/m);
        return true;
      },
    );
    assert.equal(fs.readFileSync(file, "utf8"), golden);
  });

  it("does not create a missing golden file", () => {
    const name = `missing-${crypto.randomUUID()}.txt`;
    assert.throws(() => assertGolden(name, "x\n"), /is missing; create it with npm run golden:update/);
    assert.equal(fs.existsSync(path.join(repoRoot, "test", "unit", "golden", name)), false);
  });

  it("the diff shows changed lines in context, trailing blanks and a missing final newline", () => {
    const a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    assert.equal(
      lineDiff(a, a.replace("5\n", "five \n")),
      ["@@ golden line 2, rendered line 2 @@", "  2", "  3", "  4", "- 5", "+ five·", "  6", "  7", "  8"].join("\n"),
    );
    assert.equal(
      lineDiff("a\n", "a"),
      ["@@ golden line 1, rendered line 1 @@", "- a", "+ a (no newline at end of file)"].join("\n"),
    );
  });
});
