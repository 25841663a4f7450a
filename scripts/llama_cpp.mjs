// Runs a GGUF model in llama.cpp (npm node-llama-cpp, its prebuilt CPU build) for Loom's tests
// and `loom bench generate`: tokenizes texts with the model's embedded tokenizer and continues
// token-id prompts greedily, all prompts at once (one sequence each), timing prefill and decoding.
//
//   node scripts/llama_cpp.mjs '{"model": "m.gguf", "prompts": [[464, 3290]], "max_new_tokens": 8,
//                                "texts": ["Hello"], "threads": 2}'
// prints {"tokenized": [[...]], "generated": [[...]], "load_s", "prefill_s", "decode_s"}.
// node_modules: $LOOM_NPM_DIR, else .deps/node_modules beside this script's directory.
import path from "node:path";
import {pathToFileURL, fileURLToPath} from "node:url";

const req = JSON.parse(process.argv[2] ?? "{}");
const npmDir = process.env.LOOM_NPM_DIR ??
    path.join(path.dirname(fileURLToPath(import.meta.url)), "..", ".deps", "node_modules");
const {getLlama, LlamaLogLevel} =
    await import(pathToFileURL(path.join(npmDir, "node-llama-cpp", "dist", "index.js")).href);

const now = () => performance.now() / 1000;
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
let t0 = now();
const model = await llama.loadModel({modelPath: req.model, gpuLayers: 0});
const load_s = now() - t0;

const tokenized = (req.texts ?? []).map((text) => Array.from(model.tokenize(text, false)));
const prompts = req.prompts ?? [];
const maxNew = req.max_new_tokens ?? 16;
let generated = [], prefill_s = 0, decode_s = 0;
if (prompts.length > 0) {
  const longest = Math.max(...prompts.map((p) => p.length));
  const context = await model.createContext({
    sequences: prompts.length,
    contextSize: prompts.length * (longest + maxNew + 8),
    batchSize: Math.max(512, prompts.length * longest),
    threads: req.threads ?? 0,
  });
  const seqs = prompts.map(() => context.getSequence());
  // Prefill: the prompt minus its last token (which the first generation step evaluates).
  t0 = now();
  await Promise.all(seqs.map((s, i) =>
      prompts[i].length > 1 ? s.evaluateWithoutGeneratingNewTokens(prompts[i].slice(0, -1)) : null));
  prefill_s = now() - t0;
  t0 = now();
  generated = await Promise.all(seqs.map(async (s, i) => {
    const out = [];
    for await (const token of s.evaluate(prompts[i].slice(-1), {temperature: 0, yieldEogToken: true})) {
      out.push(token);
      if (out.length >= maxNew) break;
    }
    return out;
  }));
  decode_s = now() - t0;
  await context.dispose();
}
await model.dispose();
console.log(JSON.stringify({tokenized, generated, load_s, prefill_s, decode_s}));
