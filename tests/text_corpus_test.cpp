#include "loom/data/text_corpus.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "loom/core/check.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

TEST(TextCorpus, SplitsAtPercentLinesAndDropsBlankDocuments) {
  EXPECT_EQ(split_documents("one\nline\n%\ntwo\n%\n\n%\r\nthree 50%\n%\n"),
            (std::vector<std::string>{"one\nline\n", "two\n", "three 50%\n"}));
  EXPECT_EQ(split_documents("no separators\n% not alone\n"),
            std::vector<std::string>{"no separators\n% not alone\n"});
  EXPECT_TRUE(split_documents("").empty());
}

TEST(TextCorpus, OrdinaryTextIsCutIntoParagraphsAtBlankLines) {
  const std::string text = "First para,\nline two.\n\nSecond.\n \t\r\n\n\nThird\r\n\nlast";
  EXPECT_EQ(split_documents(text),
            (std::vector<std::string>{"First para,\nline two.\n", "Second.\n", "Third\r\n", "last"}));
  // A file with '%' lines keeps the fortunes rule: its blank lines stay inside documents.
  EXPECT_EQ(split_documents("a\n\nb\n%\nc\n"), (std::vector<std::string>{"a\n\nb\n", "c\n"}));
}

TEST(TextCorpus, DocSepChoosesTheRule) {
  const std::string text = "a\n\nb\n%\nc\n===\nd\n";
  EXPECT_EQ(split_documents(text, parse_document_separator("blank")),
            (std::vector<std::string>{"a\n", "b\n%\nc\n===\nd\n"}));
  EXPECT_EQ(split_documents(text, parse_document_separator("file")), std::vector<std::string>{text});
  EXPECT_EQ(split_documents(text, parse_document_separator("===")),
            (std::vector<std::string>{"a\n\nb\n%\nc\n", "d\n"}));
  EXPECT_EQ(split_documents(text, parse_document_separator("auto")), split_documents(text));
  EXPECT_THROW(parse_document_separator(""), Error);
  EXPECT_NE(describe(parse_document_separator("===")).find("'==='"), std::string::npos);
}

TEST(TextCorpus, RemovesAnsiColourEscapesOnly) {
  EXPECT_EQ(strip_ansi_escapes("\x1b[33m    -- Debian\x1b[32m 诗\x1b[m end"), "    -- Debian 诗 end");
  EXPECT_EQ(strip_ansi_escapes("lone \x1b escape, unfinished \x1b[12"),
            "lone \x1b escape, unfinished \x1b[12");
  EXPECT_EQ(strip_ansi_escapes("\x1b[1;31mred\x1b[0m\x1b[2J"), "red");
}

TEST(TextCorpus, WalksDirectoriesSkippingLinksHiddenAndBinaryFiles) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "sub");
  std::ofstream(dir / "b.txt") << "bee";
  std::ofstream(dir / "sub/a") << "ay";
  std::ofstream(dir / ".hidden") << "no";
  std::ofstream(dir / "index.dat", std::ios::binary) << std::string("\0\0\x02", 3);
  std::filesystem::create_symlink(dir / "b.txt", dir / "b.u8");
  const auto found = list_text_files({dir.path()});
  EXPECT_EQ(found.files, (std::vector<std::string>{dir / "b.txt", dir / "sub/a"}));
  EXPECT_EQ(found.skipped, (std::vector<std::string>{dir / "b.u8", dir / "index.dat"}));
  EXPECT_EQ(found.total_bytes, 5u);
  EXPECT_THROW(list_text_files({dir / "missing"}), Error);
}

}  // namespace
}  // namespace loom
