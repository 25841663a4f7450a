#include "bench/tiktoken_reference.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loom/core/check.hpp"

namespace loom {
namespace {

// argv: tiktoken module dir, documents (JSON array of strings), output file. Output: uint32
// document count, the count of ids of each document, then all ids. Prints the encode seconds.
constexpr const char* kScript = R"JS(
const fs = require('fs');
const { get_encoding } = require(process.argv[2]);
const docs = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const enc = get_encoding('gpt2');
enc.encode_ordinary('warm up');
const t0 = process.hrtime.bigint();
const out = docs.map((d) => enc.encode_ordinary(d));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const total = out.reduce((s, a) => s + a.length, 0);
const buf = new Uint32Array(1 + out.length + total);
buf[0] = out.length;
let at = 1 + out.length;
out.forEach((a, i) => { buf[1 + i] = a.length; buf.set(a, at); at += a.length; });
fs.writeFileSync(process.argv[4], Buffer.from(buf.buffer));
enc.free();
console.log(seconds);
)JS";

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

ReferenceEncoding tiktoken_encode(const std::vector<std::string_view>& docs,
                                  const std::string& npm_dir, int timeout_s) {
  namespace fs = std::filesystem;
  const std::string module = npm_dir + "/tiktoken";
  LOOM_CHECK(fs::exists(module + "/package.json"), "tiktoken reference: ", module,
             " not found (install it with: bash scripts/setup.sh)");
  std::string tmpl = (fs::temp_directory_path() / "loom-tiktoken-XXXXXX").string();
  LOOM_CHECK(::mkdtemp(tmpl.data()) != nullptr, "tiktoken reference: cannot make a temp dir");
  const fs::path dir = tmpl;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};

  nlohmann::json array = nlohmann::json::array();
  for (const auto d : docs) array.push_back(std::string(d));
  std::ofstream(dir / "script.js") << kScript;
  // dump() throws for invalid UTF-8, which node could not represent anyway.
  std::ofstream(dir / "docs.json") << array.dump();
  const std::string out_path = (dir / "ids.bin").string();
  const std::string cmd = "timeout " + std::to_string(timeout_s) + " node " +
                          shell_quote((dir / "script.js").string()) + " " + shell_quote(module) +
                          " " + shell_quote((dir / "docs.json").string()) + " " +
                          shell_quote(out_path) + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  LOOM_CHECK(pipe != nullptr, "tiktoken reference: cannot start node");
  std::string output;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) output.append(buf, n);
  const int status = ::pclose(pipe);
  LOOM_CHECK(status == 0, "tiktoken reference: node failed (status ", status,
             status == 124 << 8 ? ", timed out" : "", "): ", output.substr(0, 2000));

  std::ifstream in(out_path, std::ios::binary);
  std::vector<uint32_t> raw((fs::file_size(out_path) + 3) / 4);
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size() * 4));
  LOOM_CHECK(!raw.empty() && raw[0] == docs.size(), "tiktoken reference: bad output from node");
  ReferenceEncoding result;
  try {
    result.seconds = std::stod(output.substr(output.find_last_of('\n', output.size() - 2) + 1));
  } catch (const std::exception&) {
    LOOM_FAIL("tiktoken reference: node printed no timing: ", output.substr(0, 2000));
  }
  size_t at = 1 + docs.size();
  for (size_t i = 0; i < docs.size(); ++i) {
    const size_t len = raw[1 + i];
    LOOM_CHECK(at + len <= raw.size(), "tiktoken reference: truncated output from node");
    result.ids.emplace_back(raw.begin() + at, raw.begin() + at + len);
    at += len;
  }
  return result;
}

}  // namespace loom
