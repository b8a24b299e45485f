// The arithmetic of scripts/test.sh's closing line, kept here so it is tested
// (test/unit/testcommand.test.ts). A tally file holds one JSON line
// {"passed":N,"failed":N,"skipped":N} per check or mocha run, with
// "failures": ["what failed", ...] when something did.
//
//   node test/support/tally.js run LABEL EXIT_CODE RUN_FILE
//     prints the one line a mocha run adds to the total: what its reporter
//     wrote to RUN_FILE, plus one failure if the reporter wrote nothing or
//     mocha exited non-zero while the reporter recorded no failure.
//   node test/support/tally.js sum FILE
//     prints `N passed, N failed` (`, N skipped` when some were skipped).
//   node test/support/tally.js failures FILE
//     prints one line per failure named in FILE (nothing when none failed).
"use strict";
const fs = require("node:fs");

const KEYS = ["passed", "failed", "skipped"];

/** Adds up a tally file's lines; a line that is not a tally counts as a failure. */
function add(text) {
  const t = { passed: 0, failed: 0, skipped: 0, lines: 0, failures: [] };
  for (const line of text.split("\n").filter((l) => l.trim() !== "")) {
    let x;
    try {
      x = JSON.parse(line);
    } catch {
      x = undefined;
    }
    if (!x || !KEYS.every((k) => Number.isInteger(x[k]) && x[k] >= 0)) {
      process.stderr.write(`tally: not a tally line, counted as failed: ${line}\n`);
      t.failed++;
      t.failures.push(`not a tally line: ${line.slice(0, 200)}`);
      continue;
    }
    for (const k of KEYS) t[k] += x[k];
    if (Array.isArray(x.failures)) t.failures.push(...x.failures.map(String));
    t.lines++;
  }
  return t;
}

function run(label, exitCode, file) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  const t = add(text);
  // Anything but a plain 0 is a non-zero exit.
  const code = /^\d+$/.test(String(exitCode)) ? Number(exitCode) : NaN;
  const failures = t.failures.map((f) => `${label}: ${f}`);
  let extra = "";
  if (t.lines === 0) {
    // The reporter writes at the end of the run: no line, no finished run.
    extra = `mocha exited ${code} and its reporter recorded nothing`;
  } else if (code !== 0 && t.failed === 0) {
    extra = `mocha exited ${code} but its reporter recorded no failure`;
  }
  if (extra) {
    process.stderr.write(`tally: ${label}: ${extra}; counted as failed\n`);
    t.failed++;
    failures.push(`${label}: ${extra}`);
  }
  const counts = { passed: t.passed, failed: t.failed, skipped: t.skipped };
  return failures.length ? { ...counts, failures } : counts;
}

function sum(file) {
  const t = add(fs.readFileSync(file, "utf8"));
  return `${t.passed} passed, ${t.failed} failed` + (t.skipped ? `, ${t.skipped} skipped` : "");
}

/** One line per failure, for the lines above the closing one. */
function failures(file) {
  return add(fs.readFileSync(file, "utf8"))
    .failures.map((f) => `FAILED ${f}\n`)
    .join("");
}

if (require.main === module) {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === "run" && args.length === 3) {
    process.stdout.write(JSON.stringify(run(args[0], args[1], args[2])) + "\n");
  } else if (cmd === "sum" && args.length === 1) {
    process.stdout.write(sum(args[0]) + "\n");
  } else if (cmd === "failures" && args.length === 1) {
    process.stdout.write(failures(args[0]));
  } else {
    process.stderr.write("usage: tally.js run LABEL EXIT_CODE RUN_FILE | tally.js sum FILE | tally.js failures FILE\n");
    process.exit(2);
  }
}

module.exports = { add, run, sum, failures };
