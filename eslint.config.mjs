import js from "@eslint/js";
import tseslint from "typescript-eslint";

// The layers, lowest first. A layer may import only from the layers listed as
// allowed for it; `npm run lint` (and so the test command) fails otherwise.
//   standard/   facts of the house standard: imports nothing
//   builders/   pure builders of what runs on a host: standard/
//   sdk/        typed client of the ayna provider: @pulumi/pulumi only
//   local/      work on the deploying machine (archives): standard/, builders/
//   plugins/    the provider (standard/, builders/) and the language host (nothing of ours)
//   components/ component resources: standard/, builders/, sdk/, local/; never config
//   stacks/     config in, a typed plan per host out: standard/, builders/
//   index.ts    wiring
const layer = (files, forbidden, message, extra = {}) => ({
  files,
  rules: {
    "no-restricted-imports": [
      "error",
      { patterns: [{ group: forbidden, message: `import against the layer direction: ${message}` }] },
    ],
    ...extra,
  },
});
// Each layer as a folder import ("../sdk") and as a file in it ("../sdk/provider").
const layers = ["standard", "builders", "sdk", "local", "components", "stacks", "plugins", "scripts"];
const ours = [...layers.flatMap((l) => [`**/${l}`, `**/${l}/**`]), "../index", "../../index"];
const except = (...allowed) => ours.filter((p) => !allowed.some((a) => `${p}/`.includes(a)));

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "sample-app/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { require: "readonly", module: "writable", process: "readonly", __dirname: "readonly" },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
  {
    files: ["**/*.js"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  layer(["standard/**/*.ts"], [...ours, "@pulumi/*", "../*"], "standard/ imports nothing"),
  layer(["builders/**/*.ts"], [...except("/standard/"), "@pulumi/*"], "builders/ may import standard/ only"),
  layer(["sdk/**/*.ts"], ours, "sdk/ may import @pulumi/pulumi only"),
  layer(
    ["local/**/*.ts"],
    [...except("/standard/", "/builders/"), "@pulumi/*"],
    "local/ may import standard/ and builders/",
  ),
  layer(
    ["plugins/provider/**/*.ts"],
    except("/standard/", "/builders/"),
    "the provider may import standard/ and builders/ only",
  ),
  layer(["plugins/language-nodejs/**/*.ts"], ours, "the language host imports nothing of the program"),
  layer(
    ["components/**/*.ts"],
    except("/standard/", "/builders/", "/sdk/", "/local/", "/components/"),
    "components/ may import standard/, builders/, sdk/ and local/",
    {
      "no-restricted-syntax": [
        "error",
        {
          selector: "NewExpression[callee.property.name='Config'], NewExpression[callee.name='Config']",
          message: "components take Args and never read config; read it in stacks/",
        },
      ],
    },
  ),
  layer(
    ["stacks/**/*.ts"],
    except("/standard/", "/builders/", "/stacks/"),
    "stacks/ may import standard/ and builders/",
  ),
);
