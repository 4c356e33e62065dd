// Verifies every hand-written expectation in tests/fixtures/chat/jinja_unit.json
// with @huggingface/jinja (same setup as gen_fixtures.mjs: fixed date for
// strftime_now). Exits 1 on any disagreement.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { render } from "./render.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? path.resolve(here, "../../tests/fixtures/chat/jinja_unit.json");
const { cases } = JSON.parse(fs.readFileSync(file, "utf8"));
let bad = 0;
for (const c of cases) {
  let out, err;
  try {
    out = render(c.template, structuredClone(c.vars ?? {}));
  } catch (e) {
    err = String(e.message);
  }
  const ok = c.error !== undefined ? err !== undefined && err.includes(c.error) : err === undefined && out === c.expected;
  if (!ok) {
    bad++;
    console.log(`MISMATCH ${c.name}: expected ${JSON.stringify(c.expected ?? "error: " + c.error)}, oracle ${JSON.stringify(err !== undefined ? "error: " + err : out)}`);
  }
}
console.log(`${cases.length - bad} of ${cases.length} expectations confirmed by @huggingface/jinja`);
process.exit(bad ? 1 : 0);
