#include "bench/generate_bench.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/infer/gguf_export.hpp"
#include "loom/infer/kv_decoder.hpp"
#include "loom/model/generate.hpp"

namespace loom::infer {

namespace fs = std::filesystem;

namespace {

std::vector<std::vector<int32_t>> random_prompts(int batch, int len, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<int32_t>> p(batch);
  for (auto& s : p)
    for (int t = 0; t < len; ++t) s.push_back(static_cast<int32_t>(rng.next_u64() % (vocab - 1)));
  return p;
}

// Greedy generation with the KV cache, prefill and decoding timed apart.
GenerateBenchRow time_cached(const GPT& model, WeightType w,
                             const std::vector<std::vector<int32_t>>& prompts, int new_tokens) {
  KVDecoder dec(model, w);
  const int B = static_cast<int>(prompts.size()), P = static_cast<int>(prompts[0].size());
  const int V = model.config().vocab_size;
  dec.start(B, P + new_tokens);
  std::vector<int> seqs;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> want;
  for (int s = 0; s < B; ++s)
    for (int t = 0; t < P; ++t) {
      seqs.push_back(s);
      tokens.push_back(prompts[s][t]);
      want.push_back(t == P - 1);
    }
  Timer timer;
  const float* logits = dec.forward(seqs, tokens, want);
  GenerateBenchRow row{"loom kv-cache", name(w), B};
  row.prefill_s = timer.seconds();
  seqs.resize(B);
  tokens.resize(B);
  want.assign(B, 1);
  Timer decode;
  for (int i = 1; i < new_tokens; ++i) {
    for (int s = 0; s < B; ++s) {
      seqs[s] = s;
      const float* l = logits + static_cast<size_t>(s) * V;
      tokens[s] = static_cast<int32_t>(std::max_element(l, l + V) - l);
    }
    logits = dec.forward(seqs, tokens, want);
  }
  row.decode_s = decode.seconds();
  row.decode_steps = new_tokens - 1;
  row.total_s = row.prefill_s + row.decode_s;
  row.new_tokens = new_tokens;
  return row;
}

// Runs the llama.cpp script; returns its JSON answer.
nlohmann::json run_llama_cpp(const GenerateBenchOptions& o, const nlohmann::json& req,
                             const std::string& dir) {
  const std::string req_path = dir + "/request.json";
  std::ofstream(req_path) << req.dump();
  // llama.cpp's own threading defaults: Loom's OMP_WAIT_POLICY=PASSIVE (see cpu_env) would make
  // its OpenMP threads sleep between operations.
  const std::string cmd = "env -u OMP_WAIT_POLICY LOOM_NPM_DIR='" + o.npm_dir + "' node '" + o.script + "' \"$(cat '" +
                          req_path + "')\" 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  LOOM_CHECK(p != nullptr, "bench generate: cannot run node");
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  LOOM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && out.find('{') != std::string::npos,
             "bench generate: llama.cpp run failed (", o.script, "):\n", out);
  return nlohmann::json::parse(out.substr(out.find('{')));
}

}  // namespace

std::vector<GenerateBenchRow> run_generate_bench(const GenerateBenchOptions& o) {
  LOOM_CHECK(o.prompt_len > 0 && o.new_tokens > 0, "bench generate: prompt and new tokens must be > 0");
  LOOM_CHECK(o.prompt_len + o.new_tokens <= o.model.context_len, "bench generate: prompt ",
             o.prompt_len, " + new tokens ", o.new_tokens, " exceed context_len ", o.model.context_len);
  GPT model(o.model);
  model.init_weights(o.seed);
  std::vector<GenerateBenchRow> rows;
  std::string tmp;
  if (o.llama_cpp) {
    LOOM_CHECK(fs::exists(o.npm_dir + "/node-llama-cpp/package.json"),
               "bench generate: node-llama-cpp is not installed in ", o.npm_dir,
               " (run scripts/setup.sh, or pass --no_llama_cpp)");
    tmp = (fs::temp_directory_path() / ("loom-bench-generate-" + std::to_string(::getpid()))).string();
    fs::create_directories(tmp);
    const auto tok = load_tokenizer("gpt2");
    export_gguf(model, *tok, GgmlType::F32, "bench", tmp + "/f32.gguf");
    export_gguf(model, *tok, GgmlType::Q8_0, "bench", tmp + "/q8_0.gguf");
  }
  try {
    for (int B : o.batches) {
      const auto prompts = random_prompts(B, o.prompt_len, o.model.vocab_size, o.seed + B);
      if (o.no_cache && B == 1) {
        Rng rng(0);
        Timer t;
        generate(model, prompts[0], o.new_tokens, {0.0f, 0}, rng);
        GenerateBenchRow r{"loom no-cache", "f32", 1};
        r.total_s = t.seconds();
        r.new_tokens = o.new_tokens;
        rows.push_back(r);
      }
      for (WeightType w : {WeightType::F32, WeightType::Int8})
        rows.push_back(time_cached(model, w, prompts, o.new_tokens));
      if (!o.llama_cpp) continue;
      for (const std::string type : {"f32", "q8_0"}) {
        const nlohmann::json req = {{"model", tmp + "/" + type + ".gguf"}, {"prompts", prompts},
                                    {"max_new_tokens", o.new_tokens}, {"threads", o.threads}};
        const auto out = run_llama_cpp(o, req, tmp);
        GenerateBenchRow r{"llama.cpp", type, B};
        r.prefill_s = out["prefill_s"].get<double>();
        r.decode_s = out["decode_s"].get<double>();
        r.decode_steps = o.new_tokens;  // the last prompt token + new_tokens - 1 generated ones
        r.total_s = r.prefill_s + r.decode_s;
        r.new_tokens = o.new_tokens;
        rows.push_back(r);
      }
    }
  } catch (...) {
    if (!tmp.empty()) fs::remove_all(tmp);
    throw;
  }
  if (!tmp.empty()) fs::remove_all(tmp);
  return rows;
}

std::string format_generate_bench(const GenerateBenchOptions& o,
                                  const std::vector<GenerateBenchRow>& rows) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line,
                "generate: %d layers, d_model %d, vocab %d; prompt %d + %d new tokens, greedy, "
                "%d threads\n", o.model.n_layer, o.model.d_model, o.model.vocab_size, o.prompt_len,
                o.new_tokens, o.threads);
  os << line;
  os << "engine         weights batch  prefill s  decode tok/s  total tok/s  vs llama.cpp f32\n";
  for (const auto& r : rows) {
    double ref = 0;  // llama.cpp f32's total tokens/s at the same batch
    for (const auto& q : rows)
      if (q.engine == "llama.cpp" && q.weights == "f32" && q.batch == r.batch) ref = q.batch * q.new_tokens / q.total_s;
    const double total = r.batch * r.new_tokens / r.total_s;
    const double decode = r.decode_steps > 0 ? r.batch * r.decode_steps / r.decode_s : 0;
    char prefill[32] = "-", dec[32] = "-", vs[32] = "-";
    if (r.prefill_s >= 0) std::snprintf(prefill, sizeof prefill, "%.3f", r.prefill_s);
    if (decode > 0) std::snprintf(dec, sizeof dec, "%.1f", decode);
    if (ref > 0) std::snprintf(vs, sizeof vs, "%.2fx", total / ref);
    std::snprintf(line, sizeof line, "%-14s %-7s %5d  %9s  %12s  %11.1f  %s\n", r.engine.c_str(),
                  r.weights.c_str(), r.batch, prefill, dec, total, vs);
    os << line;
  }
  return os.str();
}

}  // namespace loom::infer
