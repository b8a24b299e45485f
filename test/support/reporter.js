// Spec output for people, plus a machine-readable tally that scripts/test.sh
// adds up into the one closing line `N passed, N failed[, N skipped]`. Plain
// JS: mocha loads reporters before ts-node is registered.
//
// What counts as what, so the tally cannot flatter a run:
// - a failing test or hook: failed;
// - a pending test (it.skip, xit, an `it` without a body, this.skip()):
//   failed. --forbid-pending already turns these into failures; this is the
//   backstop for a run without it;
// - under --dry-run (tests listed, not run: the end-to-end tests with
//   AYNA_SKIP_E2E=1): each listed test is skipped, never passed.
// The line is appended to $AYNA_TALLY_FILE when the run ends; a run that
// never gets there writes nothing, and scripts/test.sh counts that as failed.
// It also names each failure ("failures": full title and the error's first
// line), so that the command's last lines say which tests failed: CI shows
// only the end of a run's output.
"use strict";
const fs = require("node:fs");
const Mocha = require("mocha");

const { EVENT_RUN_END, EVENT_TEST_FAIL, EVENT_TEST_PASS, EVENT_TEST_PENDING } = Mocha.Runner.constants;

/** An error's first non-empty line, cut at 300 characters. */
function firstLine(err) {
  const text = err && typeof err.message === "string" ? err.message : String(err);
  const line = text.split("\n").find((l) => l.trim() !== "") || "(no message)";
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

class TallyReporter extends Mocha.reporters.Base {
  constructor(runner, options = {}) {
    super(runner, options);
    const dryRun = options.dryRun === true;
    const tally = { passed: 0, failed: 0, skipped: 0 };
    const failures = [];
    if (!dryRun) {
      // Its own listeners print the usual tree and the failures at the end.
      new Mocha.reporters.Spec(runner, options);
    }
    runner.on(EVENT_TEST_PASS, (test) => {
      if (!dryRun) {
        tally.passed++;
        return;
      }
      tally.skipped++;
      process.stdout.write(`  - ${test.fullTitle()} (not run)\n`);
    });
    runner.on(EVENT_TEST_FAIL, (test, err) => {
      tally.failed++;
      failures.push(`${test.fullTitle()}: ${firstLine(err)}`);
    });
    runner.on(EVENT_TEST_PENDING, (test) => {
      tally.failed++;
      failures.push(`${test.fullTitle()}: pending (skipped or without a body)`);
      process.stdout.write(`  pending test counted as failed: ${test.fullTitle()}\n`);
    });
    runner.once(EVENT_RUN_END, () => {
      if (dryRun) {
        process.stdout.write(`\n  dry run: ${tally.skipped} tests listed, not run (counted as skipped)\n`);
        if (this.failures.length) Mocha.reporters.Base.list(this.failures);
      }
      const out = process.env.AYNA_TALLY_FILE;
      const line = failures.length ? { ...tally, failures } : tally;
      if (out) fs.appendFileSync(out, JSON.stringify(line) + "\n");
    });
  }
}

module.exports = TallyReporter;
