// The import direction of the layers (eslint.config.mjs): a lower layer never
// imports a higher one. These cases lint one-line files placed in each layer,
// so the rule itself is under test, not only the code that obeys it today.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { ESLint } from "eslint";

const root = path.resolve(__dirname, "..", "..");

interface Case {
  file: string;
  source: string;
  allowed: boolean;
}

const cases: Case[] = [
  { file: "builders/x.ts", source: 'import { Host } from "../components/host";', allowed: false },
  { file: "builders/x.ts", source: 'import { RemoteFile } from "../sdk";', allowed: false },
  { file: "builders/x.ts", source: 'import * as pulumi from "@pulumi/pulumi";', allowed: false },
  { file: "builders/x.ts", source: 'import { paths } from "../standard/paths";', allowed: true },
  { file: "standard/x.ts", source: 'import { argv } from "../builders/shell";', allowed: false },
  { file: "standard/x.ts", source: 'import { paths } from "./paths";', allowed: true },
  { file: "sdk/x.ts", source: 'import { argv } from "../builders/shell";', allowed: false },
  { file: "local/x.ts", source: 'import { Host } from "../components/host";', allowed: false },
  { file: "plugins/provider/x.ts", source: 'import { Host } from "../../components/host";', allowed: false },
  { file: "plugins/provider/x.ts", source: 'import { RemoteFile } from "../../sdk";', allowed: false },
  { file: "plugins/provider/x.ts", source: 'import { argv } from "../../builders/shell";', allowed: true },
  { file: "plugins/language-nodejs/x.ts", source: 'import { argv } from "../../builders/shell";', allowed: false },
  { file: "components/x.ts", source: 'import { loadStackConfig } from "../stacks";', allowed: false },
  { file: "components/x.ts", source: 'import { AynaProvider } from "../plugins/provider/provider";', allowed: false },
  { file: "components/x.ts", source: 'import { RemoteFile } from "../sdk";', allowed: true },
  { file: "stacks/x.ts", source: 'import { Host } from "../components/host";', allowed: false },
  { file: "stacks/x.ts", source: 'import { unitSpec } from "./plan";', allowed: true },
];

describe("layers: imports run one way only (eslint no-restricted-imports)", function () {
  this.timeout(60_000);
  const eslint = new ESLint({ cwd: root });

  async function layerErrors(file: string, source: string): Promise<string[]> {
    const [result] = await eslint.lintText(`${source}\nexport {};\n`, { filePath: path.join(root, file) });
    return (result?.messages ?? [])
      .filter((m) => m.ruleId === "no-restricted-imports" || m.ruleId === "no-restricted-syntax")
      .map((m) => m.message);
  }

  for (const c of cases) {
    it(`${c.allowed ? "allows" : "refuses"} in ${c.file}: ${c.source}`, async () => {
      const errors = await layerErrors(c.file, c.source);
      if (c.allowed) assert.deepEqual(errors, []);
      else assert.match(errors.join("\n"), /import against the layer direction/);
    });
  }

  it("refuses a component that reads stack config itself", async () => {
    const errors = await layerErrors(
      "components/x.ts",
      'import * as pulumi from "@pulumi/pulumi";\nconst c = new pulumi.Config();\nvoid c;',
    );
    assert.match(errors.join("\n"), /components take Args and never read config/);
  });
});
