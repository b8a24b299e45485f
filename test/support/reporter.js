// Spec output for people, plus a machine-readable tally that scripts/test.sh
// adds up into the one closing line `N passed, N failed`. Plain JS: mocha loads
// reporters before ts-node is registered.
"use strict";
const fs = require("node:fs");
const Mocha = require("mocha");

class TallyReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const tally = { passed: 0, failed: 0, skipped: 0 };
    runner.on(Mocha.Runner.constants.EVENT_TEST_PASS, () => tally.passed++);
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, () => tally.failed++);
    runner.on(Mocha.Runner.constants.EVENT_TEST_PENDING, () => tally.skipped++);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const out = process.env.AYNA_TALLY_FILE;
      if (out) fs.appendFileSync(out, JSON.stringify(tally) + "\n");
    });
  }
}

module.exports = TallyReporter;
