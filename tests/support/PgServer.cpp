#include "support/PgServer.h"

#include "support/TempDir.h"
#include "support/Wait.h"

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

extern char** environ;

namespace clayhook::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kStartTimeout = 30s;     // postgres accepting connections
constexpr auto kPortBusyRetry = 5s;     // start(): the same port, briefly taken
constexpr auto kInitdbTimeout = 120s;   // initdb (about a second here)
constexpr auto kStopTimeout = 30s;      // stop(): fast shutdown
constexpr auto kDestructorGrace = 10s;  // ~PgServer: then SIGKILL
constexpr auto kRetryBackoff = 50ms;    // between start attempts (not a wait on a condition)
constexpr const char* kDefaultInitdbGlob = "/usr/lib/postgresql/*/bin/initdb";

std::chrono::milliseconds remaining(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return std::max(left, std::chrono::milliseconds(0));
}

std::string errno_text(int err) {
    return std::string(std::strerror(err));
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* name = ::sigdescr_np(sig);
        return "signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
    }
    return "status " + std::to_string(status);
}

// The last `lines` lines of `text` (and at most ~8 KB of them).
std::string tail_of(const std::string& text, std::size_t lines) {
    std::size_t pos = text.size();
    if (pos > 0 && text[pos - 1] == '\n') --pos;
    std::size_t n = 0;
    while (pos > 0 && n < lines) {
        auto nl = text.rfind('\n', pos - 1);
        if (nl == std::string::npos) {
            pos = 0;
            break;
        }
        pos = nl;
        ++n;
    }
    std::string out = text.substr(pos == 0 ? 0 : pos + 1);
    if (out.size() > 8192) out = "..." + out.substr(out.size() - 8192);
    return out;
}

std::string read_from(const std::string& path, std::uintmax_t offset) {
    std::string all = read_file(path);
    return offset < all.size() ? all.substr(offset) : std::string();
}

std::uintmax_t size_of(const std::string& path) {
    std::error_code ec;
    auto n = fs::file_size(path, ec);
    return ec ? 0 : n;
}

// A free TCP port on 127.0.0.1 right now (someone may take it before postgres
// binds it: the start loop notices and retries).
uint16_t free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) throw std::runtime_error("PgServer: socket() failed: " + errno_text(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    socklen_t len = sizeof addr;
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        int err = errno;
        ::close(s);
        throw std::runtime_error("PgServer: could not find a free port on 127.0.0.1: " +
                                 errno_text(err));
    }
    ::close(s);
    return ntohs(addr.sin_port);
}

// ---- processes ----------------------------------------------------------

// What a child reports through its close-on-exec pipe when it cannot exec.
struct ChildError {
    int stage;
    int err;
};
constexpr const char* kStages[] = {"setgroups", "setgid", "setuid",      "prctl",
                                   "chdir",     "dup2",   "close_range", "execve"};

struct SpawnSpec {
    std::vector<std::string> argv;
    std::string cwd;
    int out_fd = -1;  // the child's stdout and stderr
    bool drop_privileges = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string user;  // for messages
};

// The parent's environment without libpq/postgres settings (PGDATA, PGPORT,
// PGSSLMODE...) or a locale: the server's messages stay in English, and
// nothing of the developer's shell leaks into the test server.
std::vector<std::string> child_environment() {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (kv.rfind("PG", 0) == 0 || kv.rfind("LC_", 0) == 0 || kv.rfind("LANG=", 0) == 0 ||
            kv.rfind("LANGUAGE=", 0) == 0)
            continue;
        env.push_back(kv);
    }
    env.push_back("LC_ALL=C");
    return env;
}

[[noreturn]] void child_fail(int pipe_fd, int stage) {
    ChildError ce{stage, errno};
    [[maybe_unused]] auto n = ::write(pipe_fd, &ce, sizeof ce);
    ::_exit(127);
}

// fork + exec, in the calling thread. Between fork and exec only
// async-signal-safe calls: everything is prepared before.
pid_t spawn_here(const SpawnSpec& spec) {
    std::vector<std::string> env_strings = child_environment();
    std::vector<char*> envp, args;
    for (auto& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv = spec.argv;
    for (auto& s : argv)
        args.push_back(s.data());
    args.push_back(nullptr);

    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) throw std::runtime_error("PgServer: open /dev/null: " + errno_text(errno));
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(devnull);
        throw std::runtime_error("PgServer: pipe2: " + errno_text(errno));
    }
    const pid_t parent = ::getpid();
    const gid_t groups[1] = {spec.gid};

    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(devnull);
        ::close(err_pipe[0]);
        ::close(err_pipe[1]);
        throw std::runtime_error("PgServer: fork: " + errno_text(err));
    }
    if (pid == 0) {
        int ep = err_pipe[1];
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig = 1; sig < NSIG; ++sig)
            ::signal(sig, SIG_DFL);  // fails harmlessly for SIGKILL, SIGSTOP
        // Its own session: a Ctrl-C meant for the test run does not reach it.
        ::setsid();
        if (spec.drop_privileges) {
            if (::setgroups(1, groups) != 0) child_fail(ep, 0);
            if (::setgid(spec.gid) != 0) child_fail(ep, 1);
            if (::setuid(spec.uid) != 0) child_fail(ep, 2);
        }
        // After setuid: a credential change clears the parent-death signal.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(ep, 3);
        if (::getppid() != parent) ::_exit(126);  // the test process is already gone
        if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) child_fail(ep, 4);
        if (::dup2(spec.out_fd, 1) < 0 || ::dup2(spec.out_fd, 2) < 0 || ::dup2(devnull, 0) < 0)
            child_fail(ep, 5);
        // No other descriptor of the test process (a listening socket of
        // another test, say) may live on in the server.
        if (ep != 3) {
            if (::dup2(ep, 3) < 0) child_fail(ep, 5);
            ep = 3;
        }
        ::fcntl(ep, F_SETFD, FD_CLOEXEC);
        if (::close_range(4, ~0U, 0) != 0) child_fail(ep, 6);
        ::execve(args[0], args.data(), envp.data());
        child_fail(ep, 7);
    }
    ::close(devnull);
    ::close(err_pipe[1]);
    ChildError ce{};
    ssize_t n;
    do {
        n = ::read(err_pipe[0], &ce, sizeof ce);
    } while (n < 0 && errno == EINTR);
    ::close(err_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof ce)) {
        ::waitpid(pid, nullptr, 0);
        std::string who = spec.drop_privileges ? " as user " + spec.user : "";
        throw std::runtime_error("PgServer: could not run " + spec.argv[0] + who + ": " +
                                 kStages[ce.stage] + " failed: " + errno_text(ce.err));
    }
    return pid;
}

// Every fork happens on this one thread, which lives as long as the process:
// PR_SET_PDEATHSIG fires when the *thread* that forked exits, so a server
// first started from a test's worker thread must not die with that thread.
class Spawner {
  public:
    static Spawner& instance() {
        static Spawner* spawner = new Spawner;  // never destroyed: the thread runs until exit
        return *spawner;
    }

    pid_t spawn(const SpawnSpec& spec) {
        std::packaged_task<pid_t()> task([&spec] { return spawn_here(spec); });
        auto result = task.get_future();
        {
            std::lock_guard lock(mu_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
        return result.get();
    }

  private:
    Spawner() {
        std::thread([this] { run(); }).detach();
    }
    [[noreturn]] void run() {
        for (;;) {
            std::packaged_task<pid_t()> task;
            {
                std::unique_lock lock(mu_);
                cv_.wait(lock, [&] { return !tasks_.empty(); });
                task = std::move(tasks_.front());
                tasks_.pop_front();
            }
            task();
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::packaged_task<pid_t()>> tasks_;
};

// Reaps `pid` if it exited; true (and its status) when it has.
bool reaped(pid_t pid, int* status) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == ECHILD) {  // reaped elsewhere (or SIGCHLD ignored)
        *status = 0;
        return true;
    }
    return false;
}

bool wait_exit(pid_t pid, std::chrono::milliseconds timeout, int* status) {
    return wait_until([&] { return reaped(pid, status); }, timeout);
}

// /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold anything.
bool proc_stat(pid_t pid, char* state, pid_t* ppid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) return false;
    std::istringstream in(stat.substr(close + 1));
    long parent = 0;
    if (!(in >> *state >> parent)) return false;
    *ppid = static_cast<pid_t>(parent);
    return true;
}

std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> kids;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() ||
            !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;
        pid_t pid = static_cast<pid_t>(std::stol(name));
        char state = 0;
        pid_t ppid = 0;
        if (proc_stat(pid, &state, &ppid) && ppid == parent) kids.push_back(pid);
    }
    return kids;
}

// Gone, or a zombie (which holds no shared memory any more). When the test
// process is PID 1 (a container), orphans become its children: reap them.
bool process_gone(pid_t pid) {
    ::waitpid(pid, nullptr, WNOHANG);
    char state = 0;
    pid_t ppid = 0;
    if (!proc_stat(pid, &state, &ppid)) return true;
    return state == 'Z' || state == 'X';
}

std::vector<pid_t> still_running(const std::vector<pid_t>& pids) {
    std::vector<pid_t> left;
    for (pid_t p : pids)
        if (!process_gone(p)) left.push_back(p);
    return left;
}

std::string join_pids(const std::vector<pid_t>& pids) {
    std::string s;
    for (pid_t p : pids)
        s += (s.empty() ? "" : ", ") + std::to_string(p);
    return s;
}

// SIGKILLs the postmaster, reaps it and waits for the children it had;
// returns those still alive after `timeout`.
std::vector<pid_t> kill_postmaster(pid_t pid, std::chrono::milliseconds timeout) {
    auto kids = children_of(pid);
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    wait_until([&] { return still_running(kids).empty(); }, timeout);
    return still_running(kids);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

void set_owner_and_mode(const std::string& path, bool chown_it, uid_t uid, gid_t gid, mode_t mode) {
    if (chown_it && ::chown(path.c_str(), uid, gid) != 0)
        throw std::runtime_error("PgServer: chown " + path + ": " + errno_text(errno));
    if (::chmod(path.c_str(), mode) != 0)
        throw std::runtime_error("PgServer: chmod " + path + ": " + errno_text(errno));
}

using Conn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

std::string trimmed(const char* message) {
    std::string s = message ? message : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

}  // namespace

// ---- finding the binaries -------------------------------------------------

namespace detail {

std::string find_pg_bin_dir(const std::string& initdb_glob) {
    std::vector<std::pair<std::vector<long>, std::string>> found;
    glob_t g{};
    if (::glob(initdb_glob.c_str(), 0, nullptr, &g) == 0) {
        for (std::size_t i = 0; i < g.gl_pathc; ++i) {
            fs::path initdb = g.gl_pathv[i];
            fs::path bin = initdb.parent_path();
            if (::access(initdb.c_str(), X_OK) != 0 ||
                ::access((bin / "postgres").c_str(), X_OK) != 0)
                continue;
            // /usr/lib/postgresql/<N>/bin: order by N ("9.6" < "15").
            std::vector<long> version;
            std::istringstream in(bin.parent_path().filename().string());
            for (std::string part; std::getline(in, part, '.');)
                version.push_back(std::strtol(part.c_str(), nullptr, 10));
            found.emplace_back(version, bin.string());
        }
    }
    ::globfree(&g);
    if (found.empty())
        throw std::runtime_error("PostgreSQL server binaries not found under " +
                                 fs::path(initdb_glob).parent_path().string() +
                                 ": install Debian's postgresql package");
    return std::max_element(found.begin(), found.end())->second;
}

}  // namespace detail

// ---- PgServer ---------------------------------------------------------------

PgServer::PgServer() : PgServer(Options{}) {}

PgServer::PgServer(Options options) : options_(std::move(options)) {
    try {
        bin_dir_ = detail::find_pg_bin_dir(kDefaultInitdbGlob);
        if (options_.ssl_cert_file.empty() != options_.ssl_key_file.empty())
            throw std::runtime_error(
                "PgServer: TLS needs both ssl_cert_file and ssl_key_file (got one)");
        if (::geteuid() == 0) {
            // initdb and postgres refuse to run as root.
            const passwd* pw = ::getpwnam("postgres");
            if (pw == nullptr)
                throw std::runtime_error(
                    "PgServer: running as root, and initdb/postgres refuse to run as root, but "
                    "there is no 'postgres' system user to run them as (getpwnam(\"postgres\") "
                    "found none): install Debian's postgresql package, or run the tests as a "
                    "non-root user");
            as_postgres_ = true;
            uid_ = pw->pw_uid;
            gid_ = pw->pw_gid;
        } else {
            uid_ = ::getuid();
            gid_ = ::getgid();
        }

        // /tmp, not $TMPDIR: the postgres user must reach it, and the socket
        // path must stay short.
        std::string t = "/tmp/clayhook-pg-XXXXXX";
        if (::mkdtemp(t.data()) == nullptr)
            throw std::runtime_error("PgServer: mkdtemp " + t + ": " + errno_text(errno));
        dir_ = t;
        set_owner_and_mode(dir_, as_postgres_, uid_, gid_, 0700);
        data_dir_ = dir_ + "/data";
        if (::mkdir(data_dir_.c_str(), 0700) != 0)
            throw std::runtime_error("PgServer: mkdir " + data_dir_ + ": " + errno_text(errno));
        set_owner_and_mode(data_dir_, as_postgres_, uid_, gid_, 0700);
        log_file_ = dir_ + "/server.log";
        {
            int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0)
                throw std::runtime_error("PgServer: create " + log_file_ + ": " +
                                         errno_text(errno));
            ::close(fd);
        }
        set_owner_and_mode(log_file_, as_postgres_, uid_, gid_, 0600);

        if (!options_.ssl_cert_file.empty()) {
            for (auto [from, to, mode] :
                 {std::tuple{options_.ssl_cert_file, dir_ + "/server.crt", mode_t{0644}},
                  std::tuple{options_.ssl_key_file, dir_ + "/server.key", mode_t{0600}}}) {
                std::error_code ec;
                fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
                if (ec)
                    throw std::runtime_error("PgServer: copy " + from + " to " + to + ": " +
                                             ec.message());
                set_owner_and_mode(to, as_postgres_, uid_, gid_, mode);
            }
        }

        initdb();
        port_ = free_port();
        std::lock_guard lock(mu_);
        launch(/*may_change_port=*/true);
    } catch (...) {
        cleanup();
        throw;
    }
}

PgServer::~PgServer() {
    cleanup();
}

void PgServer::cleanup() noexcept {
    try {
        std::lock_guard lock(mu_);
        reap_locked();
        if (pid_ > 0) {
            auto kids = children_of(pid_);
            ::kill(pid_, SIGINT);  // fast shutdown: disconnects clients, then exits
            int status = 0;
            if (!wait_exit(pid_, kDestructorGrace, &status)) kill_postmaster(pid_, 10s);
            wait_until([&] { return still_running(kids).empty(); }, 10s);
            pid_ = -1;
        }
    } catch (...) {
    }
    if (!dir_.empty()) {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
}

void PgServer::initdb() {
    const std::string log = dir_ + "/initdb.log";
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("PgServer: create " + log + ": " + errno_text(errno));
    SpawnSpec spec{{bin_dir_ + "/initdb", "-D", data_dir_, "-A", "trust", "-U", "postgres", "-E",
                    "UTF8", "--no-locale", "--no-sync"},
                   dir_,
                   fd,
                   as_postgres_,
                   uid_,
                   gid_,
                   "postgres"};
    pid_t pid;
    try {
        pid = Spawner::instance().spawn(spec);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    int status = 0;
    if (!wait_exit(pid, kInitdbTimeout, &status)) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        throw std::runtime_error(
            "PgServer: initdb did not finish within 120 s; its output ends:\n" +
            tail_of(read_file(log), 30));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("PgServer: " + spec.argv[0] + " failed (" +
                                 describe_status(status) +
                                 (as_postgres_ ? ", as user postgres" : "") +
                                 "); its output ends:\n" + tail_of(read_file(log), 30));
}

// Starts postgres and waits until it accepts connections. Called with mu_ held.
void PgServer::launch(bool may_change_port) {
    const auto started = Clock::now();
    const auto deadline = started + kStartTimeout;
    const auto port_busy_deadline = started + kPortBusyRetry;
    int attempts = 0;
    for (;;) {
        ++attempts;
        std::vector<std::string> settings{"listen_addresses=127.0.0.1",
                                          "port=" + std::to_string(port_),
                                          "unix_socket_directories=" + dir_,
                                          "fsync=on",
                                          "max_connections=200",
                                          "shared_buffers=32MB",
                                          "logging_collector=off",
                                          "log_destination=stderr"};
        if (!options_.ssl_cert_file.empty()) {
            settings.push_back("ssl=on");
            settings.push_back("ssl_cert_file=" + dir_ + "/server.crt");
            settings.push_back("ssl_key_file=" + dir_ + "/server.key");
        }
        std::vector<std::string> argv{bin_dir_ + "/postgres", "-D", data_dir_};
        for (const auto& setting : settings) {
            argv.push_back("-c");
            argv.push_back(setting);
        }
        const auto log_offset = size_of(log_file_);
        int fd = ::open(log_file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            throw std::runtime_error("PgServer: open " + log_file_ + ": " + errno_text(errno));
        SpawnSpec spec{argv, dir_, fd, as_postgres_, uid_, gid_, "postgres"};
        pid_t pid;
        try {
            pid = Spawner::instance().spawn(spec);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
        pid_ = pid;

        const std::string pid_file = data_dir_ + "/postmaster.pid";
        const std::string ping = "host=127.0.0.1 port=" + std::to_string(port_) +
                                 " user=postgres dbname=postgres connect_timeout=2";
        int status = 0;
        bool exited = false;
        // Ready: postmaster.pid names our process and says "ready" (so it
        // bound the port: nobody else answers there), and a ping is answered.
        bool ready = wait_until(
            [&] {
                if (reaped(pid, &status)) return exited = true;
                auto lines = lines_of(read_file(pid_file));
                return lines.size() >= 8 && lines[0] == std::to_string(pid) &&
                       lines[7].rfind("ready", 0) == 0 && ::PQping(ping.c_str()) == PQPING_OK;
            },
            remaining(deadline));
        if (ready && !exited) return;
        const std::string where = "127.0.0.1:" + std::to_string(port_);
        if (!exited) {
            auto left = kill_postmaster(pid, 10s);
            pid_ = -1;
            throw std::runtime_error(
                "PgServer: postgres (pid " + std::to_string(pid) +
                ") did not accept connections on " + where + " within 30 s; killed it" +
                (left.empty() ? "" : " (children still running: " + join_pids(left) + ")") +
                ". Server log ends:\n" + log_tail());
        }
        pid_ = -1;
        const std::string this_run = read_from(log_file_, log_offset);
        const bool port_busy = this_run.find("Address already in use") != std::string::npos;
        // After kill9(): backends of the old postmaster still attached to its
        // shared memory, or (rarely) its pid still alive.
        const bool old_server =
            this_run.find("pre-existing shared memory block") != std::string::npos ||
            this_run.find("lock file \"postmaster.pid\" already exists") != std::string::npos;
        const auto now = Clock::now();
        if (port_busy && may_change_port && attempts < 20) {
            port_ = free_port();
            continue;
        }
        if ((port_busy && !may_change_port && now < port_busy_deadline) ||
            (old_server && now < deadline)) {
            std::this_thread::sleep_for(
                std::min<std::chrono::milliseconds>(kRetryBackoff, remaining(deadline)));
            continue;
        }
        throw std::runtime_error("PgServer: postgres exited (" + describe_status(status) +
                                 ") while starting on " + where + " (attempt " +
                                 std::to_string(attempts) +
                                 (as_postgres_ ? ", as user postgres" : "") +
                                 "). Server log ends:\n" + tail_of(this_run, 30));
    }
}

void PgServer::reap_locked() const {
    int status = 0;
    if (pid_ > 0 && reaped(pid_, &status)) pid_ = -1;
}

std::string PgServer::url(const std::string& db, const std::string& extra) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db +
           (extra.empty() ? "" : "?" + extra);
}

std::string PgServer::create_database() {
    std::string name = "clayhook_test_" + std::to_string(++next_db_);
    query(url(), "CREATE DATABASE " + name);
    return url(name);
}

std::string PgServer::query(const std::string& db_url, const std::string& sql) {
    Conn conn(::PQconnectdb(db_url.c_str()), &PQfinish);
    if (!conn) throw std::runtime_error("PgServer: out of memory connecting to " + db_url);
    if (::PQstatus(conn.get()) != CONNECTION_OK)
        throw std::runtime_error("PgServer: cannot connect to " + db_url + ": " +
                                 trimmed(::PQerrorMessage(conn.get())));
    Result res(::PQexec(conn.get(), sql.c_str()), &PQclear);
    const auto st = res ? ::PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY)
        throw std::runtime_error("PgServer: query failed on " + db_url + ": " +
                                 trimmed(::PQerrorMessage(conn.get())) + "\nSQL: " + sql);
    std::string out;
    if (st != PGRES_TUPLES_OK) return out;
    const int rows = ::PQntuples(res.get()), cols = ::PQnfields(res.get());
    for (int r = 0; r < rows; ++r) {
        if (r > 0) out += '\n';
        for (int c = 0; c < cols; ++c) {
            if (c > 0) out += '|';
            if (!::PQgetisnull(res.get(), r, c)) out += ::PQgetvalue(res.get(), r, c);
        }
    }
    return out;
}

void PgServer::stop() {
    std::lock_guard lock(mu_);
    reap_locked();
    if (pid_ <= 0) return;
    const pid_t pid = pid_;
    ::kill(pid, SIGINT);  // fast shutdown; the postmaster exits after its children
    int status = 0;
    if (wait_exit(pid, kStopTimeout, &status)) {
        pid_ = -1;
        return;
    }
    auto left = kill_postmaster(pid, 10s);
    pid_ = -1;
    throw std::runtime_error(
        "PgServer: postgres (pid " + std::to_string(pid) +
        ") did not stop within 30 s of SIGINT; SIGKILLed it" +
        (left.empty() ? "" : " (children still running: " + join_pids(left) + ")") +
        ". Server log ends:\n" + log_tail());
}

void PgServer::start() {
    std::lock_guard lock(mu_);
    reap_locked();
    if (pid_ > 0) return;
    launch(/*may_change_port=*/false);
}

void PgServer::kill9() {
    std::lock_guard lock(mu_);
    reap_locked();
    if (pid_ <= 0) return;
    const pid_t pid = pid_;
    auto left = kill_postmaster(pid, kStartTimeout);
    pid_ = -1;
    if (!left.empty())
        throw std::runtime_error("PgServer: the children of the SIGKILLed postmaster (pid " +
                                 std::to_string(pid) +
                                 ") still run after 30 s: " + join_pids(left));
}

bool PgServer::running() const {
    std::lock_guard lock(mu_);
    reap_locked();
    return pid_ > 0;
}

pid_t PgServer::pid() const {
    std::lock_guard lock(mu_);
    reap_locked();
    return pid_;
}

std::string PgServer::log() const {
    return read_file(log_file_);
}

std::string PgServer::log_tail(std::size_t lines) const {
    return tail_of(log(), lines);
}

PgServer& shared_pg_server() {
    static std::mutex mu;
    static std::unique_ptr<PgServer> server;
    static std::string error;
    std::lock_guard lock(mu);
    if (server) return *server;
    if (!error.empty()) throw std::runtime_error(error);
    try {
        server = std::make_unique<PgServer>();
    } catch (const std::exception& e) {
        error = std::string("the shared PostgreSQL test server could not start: ") + e.what();
        throw std::runtime_error(error);
    }
    return *server;
}

}  // namespace clayhook::test
