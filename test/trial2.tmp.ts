import { PulumiStack } from "./support/pulumi";
import { execFileSync } from "node:child_process";
(async () => {
  const out = execFileSync("bash", ["scripts/testhost.sh", "up", "insp"]).toString();
  const h = JSON.parse(out.trim().split("\n").pop()!);
  h.privateKey = require("fs").readFileSync(h.privateKeyPath, "utf8");
  const s = await PulumiStack.create("insp");
  await s.configureHost("demoapp", h);
  await s.configureSampleApp("demoapp");
  console.log(JSON.stringify({ dir: s.dir }));
  const r = await s.run(["up", "--yes", "--skip-preview"], { timeoutMs: 900000 });
  console.log(r.stdout.slice(-1500), r.stderr.slice(-3000), "ms", r.ms);
})();
