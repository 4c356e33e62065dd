// @huggingface/jinja's Template.render() with setupGlobals() inlined so that
// strftime_now can be bound to a fixed date (DATE) for reproducible output.
import { tokenize, parse, Environment, Interpreter } from "@huggingface/jinja";

export const DATE = { year: 2024, month: 7, day: 26, hour: 13, minute: 5 };
const MON_S = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MON_L = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December"];
const pad2 = (n) => (n < 10 ? "0" + n : String(n));
// Same conversions as @huggingface/jinja's strftime (utils.ts), on DATE.
function strftime_now(fmt) {
  return fmt.replace(/%[YmdbBHM%]/g, (t) => ({
    "%Y": String(DATE.year), "%m": pad2(DATE.month), "%d": pad2(DATE.day), "%b": MON_S[DATE.month - 1],
    "%B": MON_L[DATE.month - 1], "%H": pad2(DATE.hour), "%M": pad2(DATE.minute), "%%": "%",
  })[t]);
}

// Template.render() with setupGlobals() inlined so strftime_now can be bound.
// True when the last render() failed through the template's raise_exception().
let raised = false;
export const lastErrorRaised = () => raised;

export function render(source, vars) {
  raised = false;
  const program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
  const env = new Environment();
  env.set("false", false);
  env.set("true", true);
  env.set("none", null);
  env.set("raise_exception", (args) => { raised = true; throw new Error(args); });
  env.set("range", (start, stop, step = 1) => {
    if (stop === undefined) { stop = start; start = 0; }
    const r = [];
    if (step > 0) for (let i = start; i < stop; i += step) r.push(i);
    else for (let i = start; i > stop; i += step) r.push(i);
    return r;
  });
  env.set("strftime_now", strftime_now);
  env.set("True", true);
  env.set("False", false);
  env.set("None", null);
  for (const [k, v] of Object.entries(vars)) env.set(k, v);
  return new Interpreter(env).run(program).value;
}

