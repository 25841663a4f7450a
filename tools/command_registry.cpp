#include "command_registry.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "loom/core/check.hpp"

namespace loom::cli {
namespace {

struct Entry {
  std::string path;
  std::string description;
  Setup setup;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> entries;  // function-local: safe during static initialisation
  return entries;
}

std::vector<std::string> split_words(const std::string& path) {
  std::istringstream is(path);
  std::vector<std::string> words;
  for (std::string w; is >> w;) words.push_back(w);
  return words;
}

}  // namespace

bool register_command(const std::string& path, const std::string& description, Setup setup) {
  registry().push_back({path, description, std::move(setup)});
  return true;
}

int run_main(int argc, char** argv) {
  CLI::App app{"loom: train GPT-2 style language models on one or many processes"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");

  auto entries = registry();
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  std::map<std::string, CLI::App*> groups;  // "bench" -> its CLI::App
  std::vector<std::pair<CLI::App*, Run>> runs;
  std::map<CLI::App*, std::string> names;
  for (const auto& e : entries) {
    const auto words = split_words(e.path);
    CLI::App* parent = &app;
    std::string prefix;
    for (size_t i = 0; i + 1 < words.size(); ++i) {
      prefix += (prefix.empty() ? "" : " ") + words[i];
      auto it = groups.find(prefix);
      if (it == groups.end()) {
        CLI::App* group = parent->add_subcommand(words[i], "Subcommands of " + prefix);
        group->require_subcommand(1);
        it = groups.emplace(prefix, group).first;
      }
      parent = it->second;
    }
    CLI::App* sub = parent->add_subcommand(words.back(), e.description);
    runs.emplace_back(sub, e.setup(*sub));
    names[sub] = e.path;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runs) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const std::exception& e) {
      std::cerr << "loom " << names[sub] << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "loom: no command given (see loom --help)\n";
  return 2;
}

}  // namespace loom::cli
