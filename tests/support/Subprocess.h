#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace clayhook::test {

// A real child process (fork/exec) with its stdout and stderr captured by
// reader threads, so tests can wait on what it prints instead of sleeping.
// The destructor SIGKILLs a child still running and reaps it.
class Subprocess {
  public:
    struct Options {
        std::string cwd;
        std::map<std::string, std::string> env;  // added to / overriding the parent's
        std::vector<std::string> unset_env;
        // Socket activation as systemd does it: this descriptor becomes the
        // child's fd 3, with LISTEN_FDS=1, LISTEN_FDNAMES=intake and
        // LISTEN_PID set to the child's own pid. -1: none.
        int listen_fd = -1;
    };

    Subprocess(const std::vector<std::string>& argv, const Options& options);
    ~Subprocess();
    Subprocess(const Subprocess&) = delete;
    Subprocess& operator=(const Subprocess&) = delete;

    int pid() const { return pid_; }
    void signal(int sig) const;

    // Waits until the combined output contains `text`; false on timeout or
    // when the process ended without printing it.
    bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);
    // Waits for exit; returns the exit code (128+signal when killed), or -1 on timeout.
    int wait(std::chrono::milliseconds timeout);

    std::string out() const;
    std::string err() const;

  private:
    void reader(int fd, std::string* sink);
    int pid_ = -1;
    int status_ = -1;
    bool exited_ = false;
    int open_streams_ = 2;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string out_, err_;
    std::thread out_thread_, err_thread_;
};

// Runs a command to completion (bounded by timeout) and returns its exit code
// and output.
struct RunResult {
    int code = -1;
    std::string out;
    std::string err;
};
RunResult run(const std::vector<std::string>& argv, const Subprocess::Options& options,
              std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace clayhook::test
