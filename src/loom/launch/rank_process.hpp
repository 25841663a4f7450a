#pragma once
// One launched rank: its process and the pipes carrying its stdout/stderr, which are forwarded
// line by line, other ranks' than rank 0's with a "[rank r] " prefix.
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace loom::launch {

struct RankProcess {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;  // waitpid status once it ended
  int out_fd = -1, err_fd = -1;
  std::string out_partial, err_partial;  // bytes after the last newline
};

// fork + exec of `program args...` with `env` added to the environment; stdout and stderr go to
// pipes. The child dies with the launcher (PR_SET_PDEATHSIG).
RankProcess spawn_rank(int rank, const std::string& program, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env);

// Reads what is available on `fd` (one of p's pipes) and writes the complete lines, prefixed, to
// `target_fd`. At end of file flushes the partial line and closes the pipe.
void forward_output(RankProcess& p, int& fd, std::string& partial, int target_fd);

// "exited with code 3" / "was killed by signal 9 (Killed)".
std::string describe_status(int status);
// The launcher's exit code for a rank that ended with `status`.
int exit_code_of(int status);

}  // namespace loom::launch
