#pragma once
// Durable file writing for checkpoints: write, fsync the file, rename, fsync the directory.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom {

// The whole file; errors name the path.
std::vector<uint8_t> read_file(const std::string& path);

// A file being written: create/truncate, write, then close() fsyncs and closes it. Errors name
// the path. Destroying an unclosed file closes it without fsync (the caller is failing anyway).
class SyncedFile {
 public:
  explicit SyncedFile(const std::string& path);
  ~SyncedFile();
  SyncedFile(const SyncedFile&) = delete;
  SyncedFile& operator=(const SyncedFile&) = delete;
  void write(const void* data, size_t n);
  void close();

 private:
  std::string path_;
  int fd_ = -1;
};

void fsync_dir(const std::string& dir);

// Replaces `path` with `content` atomically: writes "<path>.tmp", fsyncs, renames, fsyncs the
// parent directory. A crash leaves either the old or the new file, never a partial one.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace loom
