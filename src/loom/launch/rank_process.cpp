#include "loom/launch/rank_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "loom/core/check.hpp"

namespace loom::launch {
namespace {

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the launcher's own output is gone: nothing left to tell
    done += static_cast<size_t>(n);
  }
}

}  // namespace

RankProcess spawn_rank(int rank, const std::string& program, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env) {
  int out[2], err[2];
  LOOM_CHECK(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0,
             "launch: pipe failed: ", std::strerror(errno));
  // Build everything the child needs before fork: only async-signal-safe calls after it.
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (!env.count(kv.substr(0, kv.find('=')))) env_s.push_back(kv);
  }
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  LOOM_CHECK(pid >= 0, "launch: fork failed: ", std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the launcher died before prctl took effect
    // Its own process group: a terminal's Ctrl-C reaches the launcher alone, which passes it on
    // once (a rank that got it twice would take the second as "stop now").
    setpgid(0, 0);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    execve(program.c_str(), argv.data(), envp.data());
    const char msg[] = "loom launch: exec failed\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  RankProcess p;
  p.rank = rank;
  p.pid = pid;
  p.running = true;
  p.out_fd = out[0];
  p.err_fd = err[0];
  return p;
}

void forward_output(RankProcess& p, int& fd, std::string& partial, int target_fd) {
  char buf[65536];
  const ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  // Rank 0 speaks for the job and prints plainly; other ranks' lines (mostly errors) say who.
  const std::string prefix = p.rank == 0 ? "" : "[rank " + std::to_string(p.rank) + "] ";
  if (n <= 0) {
    if (!partial.empty()) write_all(target_fd, prefix + partial + "\n");
    partial.clear();
    close(fd);
    fd = -1;
    return;
  }
  partial.append(buf, static_cast<size_t>(n));
  std::string lines;
  size_t start = 0;
  for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
    lines += prefix + partial.substr(start, nl + 1 - start);
  partial.erase(0, start);
  if (!lines.empty()) write_all(target_fd, lines);  // whole lines in one write
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "ended with status " + std::to_string(status);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace loom::launch
