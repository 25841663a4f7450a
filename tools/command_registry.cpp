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

// One name per idea across the commands (train's field names); the old spellings still work, with
// a notice: old key -> the key a command now registers.
const std::map<std::string, std::string>& deprecated_flags() {
  static const std::map<std::string, std::string> renamed = {
      {"seq", "seq_len"}, {"batch", "batch_size"}, {"out", "out_dir"}, {"new_tokens", "max_new_tokens"}};
  return renamed;
}

// A word where a command was expected that names none (`loom trian`): parse errors of their own
// (exit 2), with the nearest command's name when one is close.
struct UnknownCommand {
  std::string message;
};

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

UnknownCommand unknown_command(const CLI::App& parent, const std::string& word) {
  std::string nearest;
  size_t best = 3;  // suggest only within two edits
  for (const CLI::App* sub : parent.get_subcommands({})) {
    const size_t d = edit_distance(word, sub->get_name());
    if (d < best) best = d, nearest = sub->get_name();
  }
  const std::string where = parent.get_parent() ? " " + parent.get_name() : "";
  return {"loom" + where + ": unknown command '" + word + "'" +
          (nearest.empty() ? "" : " (did you mean '" + nearest + "'?)") + "; loom" + where +
          " --help lists the commands"};
}

// Rewrites every long flag of argv to the spelling its command registered, so each flag is
// accepted with dashes or underscores (--max-new-tokens = --max_new_tokens) without registering
// each twice, and a deprecated name (--seq) as its new one (--seq_len), with a notice. The command
// is followed through its subcommand words (a word that names none throws UnknownCommand);
// nothing after a bare "--" is touched (it is another command's argv, e.g. `loom launch ... --
// train ...`).
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
      std::string key = flag_key(name);
      const auto renamed = deprecated_flags().find(key);
      if (!spelling.contains(key) && renamed != deprecated_flags().end() &&
          spelling.contains(renamed->second)) {
        key = renamed->second;
        std::cerr << "loom: --" << name << " is deprecated; use --" << spelling[key] << std::endl;
      }
      const auto it = spelling.find(key);
      if (it != spelling.end()) a = "--" + it->second + (eq == std::string::npos ? "" : a.substr(eq));
    } else if (!a.empty() && a[0] != '-') {
      try {
        CLI::App* sub = current->get_subcommand(a);
        current = sub;
        learn(current);
      } catch (const CLI::OptionNotFound&) {
        // A command group (or loom itself) takes no values: the word was meant as a command.
        if (!current->get_subcommands({}).empty()) throw unknown_command(*current, a);
        // else a value or a positional argument of the command
      }
    }
  }
  return args;
}

// A flag given twice takes its last value, as argparse and torchrun do (a list option keeps
// collecting every value).
void take_last_value(CLI::App& app) {
  for (CLI::Option* opt : app.get_options())
    if (opt->get_expected_max() <= 1) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  for (CLI::App* sub : app.get_subcommands({})) take_last_value(*sub);
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
  app.set_version_flag("--version", "loom " LOOM_VERSION);

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

  take_last_value(app);
  app.footer("Every flag may be written with dashes or underscores (--max-new-tokens = --max_new_tokens);\n"
             "given twice, a flag takes its last value.");
  try {
    std::vector<std::string> args = normalise_flags(app, argc, argv);
    std::reverse(args.begin() + 1, args.end());  // CLI11 takes the arguments reversed
    args.erase(args.begin());
    app.parse(std::move(args));
  } catch (const UnknownCommand& e) {
    std::cerr << e.message << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // a usage error: with CLI11's hint to run --help
  } catch (const std::exception& e) {  // a check an option makes as it is read (--device cuda)
    std::cerr << "loom: error: " << e.what() << "\n";
    return 1;
  }
  for (auto& [sub, run] : runs) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const std::exception& e) {
      std::cerr << "loom " << names[sub] << ": error: " << e.what() << "\n";
      if (dynamic_cast<const comm::PeerFailure*>(&e)) return comm::kPeerFailureExitCode;
      return dynamic_cast<const comm::RankStartFailure*>(&e) ? comm::kRankStartFailureExitCode : 1;
    }
  }
  std::cerr << "loom: no command given (see loom --help)\n";
  return 2;
}

}  // namespace loom::cli
