#pragma once
// Reading a text corpus for `loom tokenize`: which files are text, and how a file is cut into
// documents.
//
// Files: an input named explicitly is always read; a directory is walked recursively in name
// order, skipping hidden entries (".*"), symbolic links (the fortunes package's *.u8 files are
// links to files already in the directory) and binary files (a NUL byte in the first 8 KiB, e.g.
// strfile's *.dat indexes).
// Documents (`loom tokenize --doc_sep`, default auto): a file with a line that is exactly "%" (the
// fortune/strfile convention) is cut at those lines; any other file at blank lines (paragraphs;
// a blank line is empty or only whitespace). --doc_sep blank cuts every file at blank lines,
// --doc_sep file keeps each file whole, and any other value cuts at lines exactly equal to it. A
// trailing '\r' is ignored when lines are compared. ANSI escape sequences (ESC [ ... final byte),
// which fortunes-zh uses for colour, are removed: they are terminal markup, not text. Documents
// that are only whitespace are dropped.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

struct CorpusFiles {
  std::vector<std::string> files;    // to read, in order
  std::vector<std::string> skipped;  // found in directories but not text (see above)
  uint64_t total_bytes = 0;          // sum of the sizes of `files`
};

// Errors name the input that does not exist.
CorpusFiles list_text_files(const std::vector<std::string>& inputs);

std::string read_text_file(const std::string& path);

std::string strip_ansi_escapes(std::string_view text);

// Where documents end (see above).
struct DocumentSeparator {
  enum class Kind { Auto, BlankLines, Line, WholeFile };
  Kind kind = Kind::Auto;
  std::string line;  // Kind::Line: the separator line's text
};

// --doc_sep's value: "auto", "blank", "file", or any other non-empty text: that line.
DocumentSeparator parse_document_separator(const std::string& value);

// A description of the rule for meta.json, e.g. "lines that are exactly '%'".
std::string describe(const DocumentSeparator& sep);

// Documents of one file's text (after strip_ansi_escapes), in order.
std::vector<std::string> split_documents(std::string_view text, const DocumentSeparator& sep = {});

}  // namespace loom
