// The program's entry point (Pulumi.yaml `main`): index.ts, compiled ahead by
// scripts/compiled.js. The language host (the engine's own
// pulumi-language-nodejs as much as this project's stand-in) loads this file
// as plain JavaScript (`typescript: false`); the run harness calls the function
// exported here and the exports of index.ts become the stack's outputs.
"use strict";
const { compiled, deferSdkParts, nativeStackTraces, stopScriptEvents } = require("./compiled");
deferSdkParts(__dirname);
nativeStackTraces();
module.exports = async () => {
  await stopScriptEvents(__dirname);
  return require(compiled("index.ts"));
};
