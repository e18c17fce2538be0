// Validate AsyncAPI documents with the AsyncAPI project's own parser (@asyncapi/parser 3.x).
// Usage: node validate.mjs FILE...  Prints one JSON object per file on stdout:
//   {"file": ..., "version": ..., "errors": [{"code", "message", "path"}], "warnings": [...]}
// Exit status 1 when any file has an error (severity 0), 0 otherwise.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const pick = (d) => ({ code: String(d.code), message: d.message, path: d.path.join("/") });
  const errors = diagnostics.filter((d) => d.severity === 0).map(pick);
  const warnings = diagnostics.filter((d) => d.severity === 1).map(pick);
  if (errors.length > 0 || document === undefined) failed = true;
  const version = document === undefined ? null : document.version();
  console.log(JSON.stringify({ file, version, errors, warnings }));
}
process.exit(failed ? 1 : 0);
