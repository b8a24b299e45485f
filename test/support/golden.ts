// Golden files: rendered text checked in beside the tests, so any change to
// what lands on a host shows up as a reviewed diff. UPDATE_GOLDEN=1 rewrites them.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";

const dir = path.join(__dirname, "..", "unit", "golden");

export function assertGolden(name: string, actual: string): void {
  const file = path.join(dir, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    fs.writeFileSync(file, actual);
    return;
  }
  assert.ok(fs.existsSync(file), `golden file ${name} is missing; run with UPDATE_GOLDEN=1 and review the result`);
  assert.equal(actual, fs.readFileSync(file, "utf8"), `${name} differs from its golden file`);
}
