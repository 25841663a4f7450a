#include "loom/train/checkpoint.hpp"

#include <stdio.h>  // renameat2
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "loom/core/check.hpp"
#include "loom/core/json_input.hpp"
#include "loom/core/checksum.hpp"
#include "loom/io/file_io.hpp"
#include "loom/io/safetensors.hpp"

namespace loom {
namespace fs = std::filesystem;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";

nlohmann::json file_entry(const std::string& path, uint64_t hash) {
  return {{"bytes", fs::file_size(path)}, {"fnv1a64", hex64(hash)}};
}

// Moves `from` to `to`; an existing `to` directory is atomically exchanged, then removed.
void rename_into_place(const std::string& from, const std::string& to) {
  if (!fs::exists(to)) {
    LOOM_CHECK(std::rename(from.c_str(), to.c_str()) == 0, "cannot rename ", from, " to ", to, ": ",
               std::strerror(errno));
    return;
  }
  LOOM_CHECK(renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0,
             "cannot replace ", to, " with ", from, ": ", std::strerror(errno));
  fs::remove_all(from);  // now holds the replaced checkpoint
}

const nlohmann::json& field(const nlohmann::json& j, const char* key, const std::string& where) {
  LOOM_CHECK(j.is_object() && j.contains(key), where, ": missing field \"", key, "\"");
  return j[key];
}

uint64_t read_u64(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = field(j, key, where);
  LOOM_CHECK(v.is_number_unsigned(), where, ": field \"", key, "\" must be a non-negative integer");
  return v.get<uint64_t>();
}

uint64_t parse_hex(const nlohmann::json& v, const std::string& where) {
  LOOM_CHECK(v.is_string() && v.get<std::string>().size() == 16, where,
             ": expected 16 hex digits, got ", v.dump());
  const std::string s = v.get<std::string>();
  char* end = nullptr;
  const uint64_t x = std::strtoull(s.c_str(), &end, 16);
  LOOM_CHECK(*end == '\0', where, ": expected 16 hex digits, got ", v.dump());
  return x;
}

// Reads `file` of checkpoint `dir` after checking its size and checksum against state.json.
SafetensorsFile read_verified(const std::string& dir, const char* file) {
  const std::string state_path = dir + "/" + kStateFile;
  const nlohmann::json state = [&] {
    std::ifstream in(state_path);
    LOOM_CHECK(in, state_path, ": cannot open (not a checkpoint directory?)");
    return read_json_file(state_path);
  }();
  const auto& entry = field(field(state, "files", state_path), file, state_path + ": files");
  const std::string path = dir + "/" + file;
  std::vector<uint8_t> bytes = read_file(path);
  const uint64_t expected_bytes = read_u64(entry, "bytes", state_path + ": files." + file);
  LOOM_CHECK(bytes.size() == expected_bytes, path, ": ", bytes.size(), " bytes, but state.json records ",
             expected_bytes, ": the file is truncated or corrupted");
  const uint64_t expected_hash = parse_hex(field(entry, "fnv1a64", state_path), state_path);
  const uint64_t hash = fnv1a64(bytes.data(), bytes.size());
  LOOM_CHECK(hash == expected_hash, path, ": checksum ", hex64(hash), " does not match ",
             hex64(expected_hash), " recorded in state.json: the file is corrupted");
  return SafetensorsFile(std::move(bytes), path);
}

// Refuses a file holding tensors this model does not have (e.g. a checkpoint of a deeper model).
void refuse_unexpected(const SafetensorsFile& f, const std::set<std::string>& expected) {
  for (const auto& [name, e] : f.tensors())
    LOOM_CHECK(expected.count(name), f.origin(), ": unexpected tensor '", name,
               "' (the checkpoint does not match this model's configuration)");
}

size_t largest_tensor(const std::vector<ParamInfo>& layout) {
  size_t n = 0;
  for (const auto& p : layout) n = std::max(n, p.numel);
  return n;
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%06lld", static_cast<long long>(step));
  return buf;
}

BufferCheckpointSource::BufferCheckpointSource(const std::vector<ParamInfo>& layout,
                                               const float* params, const AdamW& optimizer)
    : BufferCheckpointSource(params, optimizer.m(), optimizer.v(), optimizer.step_count()) {
  LOOM_CHECK(optimizer.begin() == 0 && optimizer.end() == layout.back().offset + layout.back().numel,
             "save_checkpoint: the optimizer must own the whole parameter buffer");
}

const float* BufferCheckpointSource::tensor(CheckpointTensor kind, const ParamInfo& p, float*) {
  const float* base = kind == CheckpointTensor::Param ? params_ : kind == CheckpointTensor::M ? m_ : v_;
  return base + p.offset;
}

void for_each_checkpoint_tensor(const std::vector<ParamInfo>& layout,
                                const std::function<void(CheckpointTensor, const ParamInfo&)>& f) {
  for (const auto& p : layout) f(CheckpointTensor::Param, p);
  for (const auto& p : layout) {
    f(CheckpointTensor::M, p);
    f(CheckpointTensor::V, p);
  }
}

void drain_checkpoint_source(const std::vector<ParamInfo>& layout, CheckpointSource& source) {
  std::vector<float> scratch(largest_tensor(layout));
  for_each_checkpoint_tensor(layout, [&](CheckpointTensor kind, const ParamInfo& p) {
    source.tensor(kind, p, scratch.data());
  });
}

std::string save_checkpoint(const std::string& out_dir, const CheckpointState& state,
                            const std::vector<ParamInfo>& layout, CheckpointSource& source) {
  return publish_checkpoint(out_dir, write_checkpoint_files(out_dir, {state, layout, source}));
}

std::string save_checkpoint(const std::string& out_dir, const CheckpointState& state,
                            const std::vector<ParamInfo>& layout, const float* params,
                            const AdamW& optimizer) {
  BufferCheckpointSource source(layout, params, optimizer);
  return save_checkpoint(out_dir, state, layout, source);
}

std::string write_checkpoint_files(const std::string& out_dir, const CheckpointData& data) {
  const CheckpointState& state = data.state;
  fs::create_directories(out_dir);
  const std::string tmp = out_dir + "/.tmp-" + checkpoint_dir_name(state.step);
  fs::remove_all(tmp);  // left over by an interrupted save
  fs::create_directory(tmp);

  // Each tensor is asked of the source when the writer reaches it, into one scratch tensor.
  std::vector<float> scratch(largest_tensor(data.layout));
  std::vector<TensorToWrite> model, moments;
  for_each_checkpoint_tensor(data.layout, [&](CheckpointTensor kind, const ParamInfo& p) {
    const char* prefix = kind == CheckpointTensor::Param ? "" : kind == CheckpointTensor::M ? "m." : "v.";
    auto& file = kind == CheckpointTensor::Param ? model : moments;
    file.push_back({prefix + p.name, "F32", p.shape, nullptr,
                    [&data, &scratch, kind, &p] {
                      return static_cast<const void*>(data.source.tensor(kind, p, scratch.data()));
                    }});
  });
  const int64_t optimizer_step = data.source.optimizer_step();
  moments.push_back({"step", "I64", {}, &optimizer_step});

  const std::string model_path = tmp + "/" + kModelFile, opt_path = tmp + "/" + kOptimizerFile;
  nlohmann::json files;
  files[kModelFile] = file_entry(model_path, write_safetensors(model_path, model, {{"format", "pt"}}));
  files[kOptimizerFile] = file_entry(opt_path, write_safetensors(opt_path, moments));

  nlohmann::json rng = nlohmann::json::array();
  for (uint64_t w : state.dropout_rng) rng.push_back(hex64(w));
  const nlohmann::json j = {{"format", "loom-checkpoint"},
                            {"version", 1},
                            {"step", state.step},
                            {"data", {{"epoch", state.data.epoch}, {"samples", state.data.samples}}},
                            {"rng", {{"dropout", rng}}},
                            {"world_size", state.world_size},
                            {"tokenizer", state.tokenizer},
                            {"config", state.config},
                            {"layout", state.layout},
                            {"files", files}};
  const std::string text = j.dump(2) + "\n";
  SyncedFile sf(tmp + "/" + kStateFile);
  sf.write(text.data(), text.size());
  sf.close();
  fsync_dir(tmp);
  return tmp;
}

std::string publish_checkpoint(const std::string& out_dir, const std::string& tmp_dir) {
  const std::string tmp_name = fs::path(tmp_dir).filename().string();
  LOOM_CHECK(tmp_name.rfind(".tmp-", 0) == 0, "publish_checkpoint: ", tmp_dir,
             " is not a .tmp-step_XXXXXX directory");
  const std::string name = tmp_name.substr(5), final_dir = out_dir + "/" + name;
  rename_into_place(tmp_dir, final_dir);
  fsync_dir(out_dir);
  write_file_atomic(out_dir + "/latest", name + "\n");
  return final_dir;
}

std::string resolve_checkpoint(const std::string& path) {
  LOOM_CHECK(fs::exists(path), "checkpoint ", path, " does not exist");
  if (fs::is_directory(path)) {
    // A run's out_dir (no state.json, a `latest` file): its newest checkpoint.
    const fs::path latest = fs::path(path) / "latest";
    if (!fs::exists(fs::path(path) / kStateFile) && fs::exists(latest)) return resolve_checkpoint(latest.string());
    return path;
  }
  std::ifstream in(path);
  std::string name;
  LOOM_CHECK(in && (in >> name) && !name.empty(), path, ": cannot read the checkpoint name it should hold");
  const fs::path dir = fs::path(path).parent_path() / name;
  LOOM_CHECK(fs::is_directory(dir), path, " names ", name, ", but ", dir.string(), " is not a directory");
  return dir.string();
}

CheckpointState read_checkpoint_state(const std::string& dir) {
  const std::string path = dir + "/" + kStateFile;
  std::ifstream in(path);
  LOOM_CHECK(in, path, ": cannot open (is ", dir, " a checkpoint directory?)");
  const auto j = read_json_file(path);
  LOOM_CHECK(j.is_object() && j.value("format", "") == "loom-checkpoint", path,
             ": not a loom checkpoint (no \"format\": \"loom-checkpoint\")");
  LOOM_CHECK(read_u64(j, "version", path) == 1, path, ": unsupported checkpoint version ", j["version"]);
  CheckpointState s;
  s.step = static_cast<int64_t>(read_u64(j, "step", path));
  const auto& data = field(j, "data", path);
  s.data.epoch = read_u64(data, "epoch", path + ": data");
  s.data.samples = read_u64(data, "samples", path + ": data");
  const auto& rng = field(field(j, "rng", path), "dropout", path + ": rng");
  LOOM_CHECK(rng.is_array() && rng.size() == 4, path, ": rng.dropout must hold 4 words");
  for (size_t i = 0; i < 4; ++i) s.dropout_rng[i] = parse_hex(rng[i], path + ": rng.dropout");
  s.world_size = static_cast<int>(read_u64(j, "world_size", path));
  const auto& tok = field(j, "tokenizer", path);
  LOOM_CHECK(tok.is_string(), path, ": tokenizer must be a string");
  s.tokenizer = tok.get<std::string>();
  s.config = field(j, "config", path);
  s.layout = j.value("layout", nlohmann::json::object());
  field(j, "files", path);
  return s;
}

void load_checkpoint_params(const std::string& dir, const std::vector<ParamInfo>& layout,
                            float* params) {
  const SafetensorsFile f = read_verified(dir, kModelFile);
  // Check everything before copying anything.
  std::set<std::string> names;
  for (const auto& p : layout) {
    f.check(p.name, "F32", p.shape);
    names.insert(p.name);
  }
  refuse_unexpected(f, names);
  for (const auto& p : layout) f.copy_to(p.name, "F32", p.shape, params + p.offset);
}

void load_checkpoint_optimizer(const std::string& dir, const std::vector<ParamInfo>& layout,
                               AdamW& optimizer) {
  LOOM_CHECK(optimizer.begin() == 0 && optimizer.end() == layout.back().offset + layout.back().numel,
             "load_checkpoint_optimizer: the optimizer must own the whole parameter buffer");
  const SafetensorsFile f = read_verified(dir, kOptimizerFile);
  std::set<std::string> names = {"step"};
  for (const auto& p : layout) {
    for (const char* prefix : {"m.", "v."}) {
      f.check(prefix + p.name, "F32", p.shape);
      names.insert(prefix + p.name);
    }
  }
  refuse_unexpected(f, names);
  int64_t step = 0;
  f.copy_to("step", "I64", {}, &step);
  LOOM_CHECK(step >= 0, f.origin(), ": negative step ", step);
  for (const auto& p : layout) {
    f.copy_to("m." + p.name, "F32", p.shape, optimizer.m() + p.offset);
    f.copy_to("v." + p.name, "F32", p.shape, optimizer.v() + p.offset);
  }
  optimizer.set_step_count(step);
}

void prune_checkpoints(const std::string& out_dir, int keep_last) {
  if (keep_last <= 0) return;
  std::string latest;
  std::ifstream(out_dir + "/latest") >> latest;
  std::vector<std::pair<long long, fs::path>> dirs;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step_", 0) != 0) continue;
    char* end = nullptr;
    const long long step = std::strtoll(n.c_str() + 5, &end, 10);
    if (*end == '\0') dirs.emplace_back(step, e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (size_t i = 0; i + keep_last < dirs.size(); ++i)
    if (dirs[i].second.filename() != latest) fs::remove_all(dirs[i].second);
}

}  // namespace loom
