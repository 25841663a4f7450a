#include "command_registry.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "loom/comm/transport.hpp"
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

// "max_new_tokens" and "max-new-tokens" are one flag: the key both spellings share.
std::string flag_key(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// Rewrites every long flag of argv to the spelling its command registered, so each flag is
// accepted with dashes or underscores (--max-new-tokens = --max_new_tokens) without registering
// each twice. The command is followed through its subcommand words; nothing after a bare "--"
// is touched (it is another command's argv, e.g. `loom launch ... -- train ...`).
std::vector<std::string> normalise_flags(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  CLI::App* current = &app;
  std::map<std::string, std::string> spelling;  // key -> registered long name
  auto learn = [&](CLI::App* a) {
    for (const CLI::Option* opt : a->get_options())
      for (const std::string& n : opt->get_lnames()) spelling[flag_key(n)] = n;
  };
  learn(current);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.rfind("--", 0) == 0) {
      const size_t eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const auto it = spelling.find(flag_key(name));
      if (it != spelling.end()) a = "--" + it->second + (eq == std::string::npos ? "" : a.substr(eq));
    } else if (a[0] != '-') {
      try {
        CLI::App* sub = current->get_subcommand(a);
        current = sub;
        learn(current);
      } catch (const CLI::OptionNotFound&) {
        // a value or a positional argument, not a subcommand
      }
    }
  }
  return args;
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

  app.footer("Every flag may be written with dashes or underscores (--max-new-tokens = --max_new_tokens).");
  try {
    std::vector<std::string> args = normalise_flags(app, argc, argv);
    std::reverse(args.begin() + 1, args.end());  // CLI11 takes the arguments reversed
    args.erase(args.begin());
    app.parse(std::move(args));
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runs) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const std::exception& e) {
      std::cerr << "loom " << names[sub] << ": error: " << e.what() << "\n";
      return dynamic_cast<const comm::PeerFailure*>(&e) ? comm::kPeerFailureExitCode : 1;
    }
  }
  std::cerr << "loom: no command given (see loom --help)\n";
  return 2;
}

}  // namespace loom::cli
