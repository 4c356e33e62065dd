// Renders every template in tests/fixtures/models/chat-templates (or argv[2])
// with @huggingface/jinja for a fixed set of conversations and writes
// tests/fixtures/chat/oracle.json: one case per (template, conversation,
// add_generation_prompt) with the exact output, or the error message when the
// template raises. strftime_now is bound to a fixed date (DATE) so the
// fixtures are reproducible; everything else is @huggingface/jinja's own
// Template code path (tokenize with lstrip_blocks/trim_blocks, parse, run).
import { render, DATE, lastErrorRaised } from "./render.mjs";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const tdir = process.argv[2] ?? path.join(repo, "tests/fixtures/models/chat-templates");
const outFile = process.argv[3] ?? path.join(repo, "tests/fixtures/chat/oracle.json");

// Special tokens as the models' tokenizer_config.json define them.
const TOKENS = {
  "Qwen-Qwen2.5-7B-Instruct.jinja": { bos_token: null, eos_token: "<|im_end|>" },
  "Qwen-Qwen3-0.6B.jinja": { bos_token: null, eos_token: "<|im_end|>" },
  "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja": { bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<｜end▁of▁sentence｜>" },
  "google-gemma-2-2b-it.jinja": { bos_token: "<bos>", eos_token: "<eos>" },
  "ibm-granite-granite-3.3-2B-Instruct.jinja": { bos_token: "<|end_of_text|>", eos_token: "<|end_of_text|>" },
  "meta-llama-Llama-3.1-8B-Instruct.jinja": { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  "meta-llama-Llama-3.2-3B-Instruct.jinja": { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  "microsoft-Phi-3.5-mini-instruct.jinja": { bos_token: "<s>", eos_token: "<|endoftext|>" },
  "mistralai-Mistral-Nemo-Instruct-2407.jinja": { bos_token: "<s>", eos_token: "</s>" },
};

const U = (content) => ({ role: "user", content });
const A = (content) => ({ role: "assistant", content });
const S = (content) => ({ role: "system", content });
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city, in \"quotes\" — ünïcode",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", description: "City name" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        days: { type: "integer", minimum: 1, maximum: 7.5 },
      },
      required: ["city"],
    },
  },
};

const CONVERSATIONS = {
  single_user: { messages: [U("Hello!")] },
  system_user: { messages: [S("You are a helpful assistant."), U("What is 2+2?")] },
  multi_turn: { messages: [U("Hi, who are you?"), A("I am an assistant."), U("Tell me a joke.")] },
  system_multi_turn: { messages: [S("Be brief."), U("Capital of France?"), A("Paris."), U("And of Italy?")] },
  assistant_last: { messages: [U("Say hi."), A("Hi!")] },
  unicode_quotes_braces: {
    messages: [U("Ünïcödé 日本語 emoji 😀 \"double\" 'single' `tick` {braces} {{ not jinja }} {% nor this %} back\\slash\nline two\n\n\ttabbed")],
  },
  padded_whitespace: { messages: [S("  system with spaces  \n"), U("\n  padded user text \t\n"), A("  answer  "), U(" again ")] },
  think_history: {
    messages: [U("Why is the sky blue?"), A("<think>\nRayleigh scattering.\n</think>\n\nBecause of Rayleigh scattering."), U("And sunsets?")],
  },
  empty_content: { messages: [U(""), A(""), U("x")] },
  long_multi_turn: {
    messages: [S("sys"), U("u1"), A("a1"), U("u2"), A("a2"), U("u3"), A("a3"), U("u4")],
  },
  with_tools: { messages: [U("What's the weather in Paris?")], tools: [WEATHER_TOOL] },
  // expected errors on templates that require alternation or forbid roles
  two_users: { messages: [U("first"), U("second")] },
  assistant_first: { messages: [A("I speak first."), U("ok")] },
  system_only: { messages: [S("Only a system prompt.")] },
  empty_messages: { messages: [] },
  // tool calling: assistant tool_calls (arguments as a dict), tool results
  tool_call_round: {
    messages: [
      U("What's the weather in Paris?"),
      { role: "assistant", content: "", tool_calls: [{ id: "call12345", type: "function", function: { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } } }] },
      { role: "tool", content: "{\"temp\": 22}", tool_call_id: "call12345", name: "get_weather" },
    ],
    tools: [WEATHER_TOOL],
  },
  tool_call_null_content: {
    messages: [
      U("Weather in Rome and Oslo?"),
      { role: "assistant", content: null, tool_calls: [
        { id: "callaaaaa", type: "function", function: { name: "get_weather", arguments: "{\"city\": \"Rome\"}" } },
        { id: "callbbbbb", type: "function", function: { name: "get_weather", arguments: "{\"city\": \"Oslo\"}" } }] },
      { role: "tool", content: "18", tool_call_id: "callaaaaa" },
      { role: "tool", content: "3", tool_call_id: "callbbbbb" },
      A("Rome 18, Oslo 3."),
      U("Thanks"),
    ],
  },
  // template-specific variables
  qwen3_no_thinking: { messages: [U("Quick answer: 1+1?")], vars: { enable_thinking: false } },
  reasoning_content: { messages: [U("q1"), { role: "assistant", content: "a1", reasoning_content: "r1" }, U("q2")] },
  granite_documents: {
    messages: [U("Summarize the documents.")],
    vars: { documents: [{ doc_id: 1, text: "First doc." }, { doc_id: "two", text: "Second doc." }], controls: { citations: true } },
  },
  granite_thinking: { messages: [U("Think about it.")], vars: { thinking: true } },
  llama_date_and_builtin: { messages: [U("Search the web.")], vars: { date_string: "01 Jan 2025", builtin_tools: ["brave_search", "code_interpreter"] } },
};

const files = fs.readdirSync(tdir).filter((f) => f.endsWith(".jinja")).sort();
const cases = [];
let nerr = 0;
for (const file of files) {
  const src = fs.readFileSync(path.join(tdir, file), "utf8");
  const tok = TOKENS[file] ?? { bos_token: "<s>", eos_token: "</s>" };
  for (const [name, conv] of Object.entries(CONVERSATIONS)) {
    for (const agp of [true, false]) {
      const vars = { messages: conv.messages, add_generation_prompt: agp, ...tok };
      if (conv.tools) vars.tools = conv.tools;
      Object.assign(vars, conv.vars ?? {});
      const c = { template: file, conversation: name, add_generation_prompt: agp };
      try {
        c.output = render(src, structuredClone(vars));
      } catch (e) {
        c.error = String(e.message);
        c.raised = lastErrorRaised();
        nerr++;
      }
      cases.push(c);
    }
  }
}
const out = {
  generator: "tools/jinja_oracle/gen_fixtures.mjs with @huggingface/jinja " +
    JSON.parse(fs.readFileSync(path.join(here, "node_modules/@huggingface/jinja/package.json"), "utf8")).version,
  date: DATE,
  tokens: TOKENS,
  conversations: CONVERSATIONS,
  cases,
};
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, JSON.stringify(out, null, 1) + "\n");
console.log(`${cases.length} cases (${nerr} expected errors) from ${files.length} templates -> ${outFile}`);
