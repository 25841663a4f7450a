#pragma once
// Reading a text corpus for `loom tokenize`: which files are text, and how a file is cut into
// documents.
//
// Files: an input named explicitly is always read; a directory is walked recursively in name
// order, skipping hidden entries (".*"), symbolic links (the fortunes package's *.u8 files are
// links to files already in the directory) and binary files (a NUL byte in the first 8 KiB, e.g.
// strfile's *.dat indexes).
// Documents: a file is cut at lines that are exactly "%" (the fortune/strfile convention; a file
// without such lines is one document). ANSI escape sequences (ESC [ ... final byte), which
// fortunes-zh uses for colour, are removed: they are terminal markup, not text. Documents that are
// only whitespace are dropped.
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

// Documents of one file's text (after strip_ansi_escapes), in order.
std::vector<std::string> split_documents(std::string_view text);

}  // namespace loom
