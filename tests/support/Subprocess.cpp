#include "support/Subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace clayhook::test {

Subprocess::Subprocess(const std::vector<std::string>& argv, const Options& options) {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe failed");
    // Build everything the child needs before fork: only async-signal-safe
    // calls are allowed between fork and exec in a threaded process.
    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& k : options.unset_env)
        env.erase(k);
    for (const auto& [k, v] : options.env)
        env[k] = v;
    if (options.listen_fd >= 0) {
        env["LISTEN_FDS"] = "1";
        env["LISTEN_FDNAMES"] = "intake";
        env.erase("LISTEN_PID");
    }
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env)
        env_strings.push_back(k + "=" + v);
    // Filled in by the child, which alone knows its pid.
    if (options.listen_fd >= 0) env_strings.push_back("LISTEN_PID=" + std::string(20, '\0'));
    std::vector<char*> envp, args;
    for (auto& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& s : argv_copy)
        args.push_back(s.data());
    args.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (options.listen_fd >= 0) {
            if (options.listen_fd == 3) {
                ::fcntl(3, F_SETFD, 0);
            } else if (::dup2(options.listen_fd, 3) != 3) {
                ::_exit(125);
            }
            // LISTEN_PID=<pid>, written without allocating (after fork).
            char* value = envp[envp.size() - 2] + std::strlen("LISTEN_PID=");
            char digits[20];
            int n = 0;
            for (long pid = ::getpid(); pid > 0 && n < 20; pid /= 10)
                digits[n++] = static_cast<char>('0' + pid % 10);
            for (int i = 0; i < n; ++i)
                value[i] = digits[n - 1 - i];
            value[n] = '\0';
        }
        if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) ::_exit(126);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_thread_ = std::thread(&Subprocess::reader, this, out_pipe[0], &out_);
    err_thread_ = std::thread(&Subprocess::reader, this, err_pipe[0], &err_);
}

void Subprocess::reader(int fd, std::string* sink) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        std::lock_guard lock(mu_);
        sink->append(buf, static_cast<size_t>(n));
        cv_.notify_all();
    }
    ::close(fd);
    std::lock_guard lock(mu_);
    --open_streams_;
    cv_.notify_all();
}

Subprocess::~Subprocess() {
    if (!exited_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        wait(std::chrono::seconds(30));
    }
    if (out_thread_.joinable()) out_thread_.join();
    if (err_thread_.joinable()) err_thread_.join();
}

void Subprocess::signal(int sig) const {
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

bool Subprocess::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
        return out_.find(text) != std::string::npos || err_.find(text) != std::string::npos ||
               open_streams_ == 0;
    }) && (out_.find(text) != std::string::npos || err_.find(text) != std::string::npos);
}

int Subprocess::wait(std::chrono::milliseconds timeout) {
    if (!exited_) {
        // Output streams close when the child exits (or hands them on);
        // wait for that, then reap without blocking forever.
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int st = 0;
            pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                break;
            }
            if (std::chrono::steady_clock::now() >= deadline) return -1;
            std::unique_lock lock(mu_);
            // Woken by output or stream close; the short bound covers a
            // child that exits without closing inherited streams.
            cv_.wait_for(lock, std::chrono::milliseconds(20));
        }
    }
    if (out_thread_.joinable()) out_thread_.join();
    if (err_thread_.joinable()) err_thread_.join();
    return status_;
}

std::string Subprocess::out() const {
    std::lock_guard lock(mu_);
    return out_;
}

std::string Subprocess::err() const {
    std::lock_guard lock(mu_);
    return err_;
}

RunResult run(const std::vector<std::string>& argv, const Subprocess::Options& options,
              std::chrono::milliseconds timeout) {
    Subprocess p(argv, options);
    RunResult r;
    r.code = p.wait(timeout);
    r.out = p.out();
    r.err = p.err();
    return r;
}

}  // namespace clayhook::test
