/**
 * The page's API types come from the OpenAPI schema the server publishes
 * (drf-spectacular), so a field or status added to the job is typed here
 * by regenerating, not by hand.
 *
 *   node scripts/api-types.mjs          writes src/api/schema.d.ts
 *   node scripts/api-types.mjs --check  fails if that file is out of date
 *
 * The schema is taken from the back end in this checkout (manage.py
 * spectacular, with the test settings: a scratch data directory).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const frontend = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(frontend, "..");
const target = resolve(frontend, "src/api/schema.d.ts");
const venvPython = resolve(root, ".venv/bin/python");
const python = process.env.PYTHON ?? (existsSync(venvPython) ? venvPython : "python3");

const schema = execFileSync(python, ["manage.py", "spectacular", "--format", "openapi-json"], {
  cwd: root,
  env: { ...process.env, DJANGO_SETTINGS_MODULE: "jobsite.settings_test" },
  encoding: "utf8",
  maxBuffer: 16 * 1024 * 1024,
});
const header = "// Generated from the server's OpenAPI schema by scripts/api-types.mjs: do not edit.\n";
const generated = header + astToString(await openapiTS(JSON.parse(schema)));

if (process.argv.includes("--check")) {
  const current = existsSync(target) ? readFileSync(target, "utf8") : "";
  if (current !== generated) {
    console.error("src/api/schema.d.ts does not match the server's schema: run `npm run api-types` and commit it.");
    process.exit(1);
  }
  console.log("src/api/schema.d.ts matches the server's schema.");
} else {
  writeFileSync(target, generated);
  console.log(`wrote ${target}`);
}
