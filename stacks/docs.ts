// The configuration reference, rendered from the same schema that validates
// config, so the README's table cannot drift from what the program accepts.
import { Field, schema } from "./schema";

function describeType(f: Field): string {
  switch (f.kind) {
    case "string":
      return f.secret ? "string (secret)" : "string";
    case "int":
      return f.min !== undefined || f.max !== undefined ? `int ${f.min ?? ""}..${f.max ?? ""}` : "int";
    case "bool":
      return "bool";
    case "enum":
      return f.values.join(" \\| ");
    case "object":
      return "object";
    case "array":
      return "list";
    case "map":
      return f.secret ? "map (secret values)" : "map";
  }
}

function defaultOf(f: Field): string {
  if (!("default" in f) || f.default === undefined) return "";
  return `\`${JSON.stringify(f.default)}\``;
}

function rows(prefix: string, fields: Record<string, Field>, out: string[]): void {
  for (const [key, f] of Object.entries(fields)) {
    const name = `${prefix}${key}`;
    out.push(
      `| \`${name}\` | ${describeType(f)} | ${f.required ? "yes" : ""} | ${defaultOf(f)} | ${f.doc.replace(/\|/g, "\\|")} |`,
    );
    if (f.kind === "object") rows(`${name}.`, f.fields, out);
    if (f.kind === "array" && f.items.kind === "object") rows(`${name}[i].`, f.items.fields, out);
  }
}

export function renderConfigDocs(): string {
  const out = ["| key | type | required | default | meaning |", "| --- | --- | --- | --- | --- |"];
  rows("", schema, out);
  return out.join("\n") + "\n";
}

if (require.main === module) process.stdout.write(renderConfigDocs());
