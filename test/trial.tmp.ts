import { PulumiStack } from "/work/main/test/support/pulumi";
import { startHost } from "/work/main/test/support/testhost";
(async () => {
  const host = await startHost({ name: "trial1" });
  const s = await PulumiStack.create("trial1");
  await s.configureHost("demoapp", host);
  await s.configureSampleApp("demoapp");
  console.log(JSON.stringify({ dir: s.dir, host }));
  const r = await s.run(["up", "--yes", "--skip-preview"], { timeoutMs: 900000 });
  console.log(r.stdout.slice(-6000), r.stderr.slice(-3000), "ms", r.ms);
  process.exit(0);
})();
