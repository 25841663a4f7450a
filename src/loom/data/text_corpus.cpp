#include "loom/data/text_corpus.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "loom/core/check.hpp"

namespace loom {
namespace fs = std::filesystem;
namespace {

bool looks_binary(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[8192];
  in.read(buf, sizeof(buf));
  return std::find(buf, buf + in.gcount(), '\0') != buf + in.gcount();
}

void walk(const fs::path& dir, CorpusFiles& out) {
  std::vector<fs::directory_entry> entries{fs::directory_iterator(dir), fs::directory_iterator()};
  std::sort(entries.begin(), entries.end());
  for (const auto& e : entries) {
    if (e.path().filename().string().starts_with(".")) continue;
    if (e.is_symlink()) {
      out.skipped.push_back(e.path().string());
    } else if (e.is_directory()) {
      walk(e.path(), out);
    } else if (e.is_regular_file()) {
      if (looks_binary(e.path())) {
        out.skipped.push_back(e.path().string());
      } else {
        out.files.push_back(e.path().string());
        out.total_bytes += e.file_size();
      }
    }
  }
}

bool only_whitespace(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

}  // namespace

CorpusFiles list_text_files(const std::vector<std::string>& inputs) {
  LOOM_CHECK(!inputs.empty(), "--input: no files or directories given");
  CorpusFiles out;
  for (const auto& input : inputs) {
    std::error_code ec;
    const auto status = fs::status(input, ec);
    LOOM_CHECK(fs::exists(status), "--input ", input, ": no such file or directory");
    if (fs::is_directory(status)) {
      walk(input, out);
    } else {
      out.files.push_back(input);
      out.total_bytes += fs::file_size(input);
    }
  }
  LOOM_CHECK(!out.files.empty(), "--input: no text files found (", out.skipped.size(),
             " skipped as links or binary)");
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "cannot read ", path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LOOM_CHECK(!in.bad(), "error while reading ", path);
  return text;
}

std::string strip_ansi_escapes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      // CSI: parameter and intermediate bytes 0x20-0x3f, then one final byte 0x40-0x7e.
      size_t j = i + 2;
      while (j < text.size() && text[j] >= 0x20 && text[j] <= 0x3f) ++j;
      if (j < text.size() && text[j] >= 0x40 && text[j] <= 0x7e) {
        i = j;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

DocumentSeparator parse_document_separator(const std::string& value) {
  using Kind = DocumentSeparator::Kind;
  LOOM_CHECK(!value.empty(), "--doc_sep: empty; give auto, blank, file or a separator line");
  if (value == "auto") return {Kind::Auto, ""};
  if (value == "blank") return {Kind::BlankLines, ""};
  if (value == "file") return {Kind::WholeFile, ""};
  LOOM_CHECK(value.find('\n') == std::string::npos, "--doc_sep: a separator is one line, got '",
             value, "'");
  return {Kind::Line, value};
}

std::string describe(const DocumentSeparator& sep) {
  switch (sep.kind) {
    case DocumentSeparator::Kind::Auto:
      return "files with a line that is exactly '%' cut at those lines, other files at blank lines";
    case DocumentSeparator::Kind::BlankLines: return "files cut at blank lines";
    case DocumentSeparator::Kind::WholeFile: return "one document per file";
    case DocumentSeparator::Kind::Line: return "files cut at lines that are exactly '" + sep.line + "'";
  }
  return "";
}

std::vector<std::string> split_documents(std::string_view text, const DocumentSeparator& sep) {
  const std::string clean = strip_ansi_escapes(text);
  const std::string_view all(clean);
  // Every line of the text, without its '\n' and a trailing '\r': (begin offset, text).
  std::vector<std::pair<size_t, std::string_view>> lines;
  for (size_t line_begin = 0; line_begin < all.size();) {
    size_t line_end = all.find('\n', line_begin);
    line_end = line_end == std::string_view::npos ? all.size() : line_end;
    std::string_view line = all.substr(line_begin, line_end - line_begin);
    if (line.ends_with('\r')) line.remove_suffix(1);
    lines.emplace_back(line_begin, line);
    line_begin = std::min(line_end + 1, all.size());
  }
  using Kind = DocumentSeparator::Kind;
  Kind kind = sep.kind;
  std::string_view separator = sep.line;
  if (kind == Kind::Auto) {
    const bool fortunes =
        std::any_of(lines.begin(), lines.end(), [](const auto& l) { return l.second == "%"; });
    kind = fortunes ? Kind::Line : Kind::BlankLines;
    separator = "%";
  }
  auto is_separator = [&](std::string_view line) {
    return (kind == Kind::Line && line == separator) ||
           (kind == Kind::BlankLines && only_whitespace(line));
  };
  std::vector<std::string> docs;
  size_t doc_begin = 0;
  auto finish = [&](size_t doc_end) {
    const auto doc = all.substr(doc_begin, doc_end - doc_begin);
    if (!only_whitespace(doc)) docs.emplace_back(doc);
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!is_separator(lines[i].second)) continue;
    finish(lines[i].first);
    doc_begin = i + 1 < lines.size() ? lines[i + 1].first : all.size();
  }
  finish(all.size());
  return docs;
}

}  // namespace loom
