#include "plugins/PluginWorker.h"

#include "plugins/ConfigSchema.h"

#include "config/Config.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/HostServices.h"
#include "worker/WorkerProtocol.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

extern char** environ;

namespace fs = std::filesystem;

namespace clayhook {

namespace {

using Clock = std::chrono::steady_clock;

// How often the supervisor looks at deadlines and the worker's memory while
// nothing arrives.
constexpr std::chrono::milliseconds kTick{100};
// A worker that lived this long before it died starts the backoff afresh.
constexpr std::chrono::seconds kHealthyRun{10};

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string mib(uint64_t bytes) {
    return std::to_string(bytes / (1024 * 1024)) + " MiB";
}

// The resident set of `pid` in bytes (0 when it cannot be read).
uint64_t rss_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
    uint64_t size = 0, resident = 0;
    if (!(in >> size >> resident)) return 0;
    return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::vector<HandleOutcome> retry_all(size_t n, const std::string& reason) {
    return std::vector<HandleOutcome>(n, HandleOutcome{CLAYHOOK_RETRY, {}, reason});
}

}  // namespace

std::string find_worker_executable(std::string& why) {
    constexpr const char* kName = "clayhook-plugin-worker";
    if (const char* env = std::getenv("CLAYHOOK_PLUGIN_WORKER"); env && *env) {
        if (::access(env, X_OK) == 0) return env;
        why = std::string("$CLAYHOOK_PLUGIN_WORKER (") + env + ") is not an executable file";
        return "";
    }
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    std::vector<fs::path> candidates;
    if (!ec) {
        candidates.push_back(self.parent_path() / kName);
        candidates.push_back(self.parent_path().parent_path() / CLAYHOOK_INSTALL_LIBDIR /
                             "clayhook" / kName);
    }
    std::string looked;
    for (const auto& c : candidates) {
        if (::access(c.c_str(), X_OK) == 0) return c.string();
        looked += (looked.empty() ? "" : ", ") + c.string();
    }
    why = std::string(kName) + " not found (looked in: " + (looked.empty() ? "nowhere" : looked) +
          "; set CLAYHOOK_PLUGIN_WORKER to its path)";
    return "";
}

struct PluginWorker::Pending {
    size_t events = 0;
    Clock::time_point deadline;
    bool done = false;
    std::vector<HandleOutcome> outcomes;
};

PluginWorker::PluginWorker(const PluginConfig& config, const WorkerSettings& settings,
                           HostServices& services, Logger& log, Metrics& metrics)
    : name_(config.name),
      library_(config.library_path),
      config_context_(encode_config_context(config)),
      memory_limit_(config.memory_limit),
      settings_(settings),
      services_(services),
      log_(log),
      restarts_(metrics.counter("clayhook_plugin_worker_restarts_total",
                                "plugin=\"" + config.name + "\"")),
      kills_(
          metrics.counter("clayhook_plugin_worker_kills_total", "plugin=\"" + config.name + "\"")) {
    metrics.set_help("clayhook_plugin_worker_restarts_total",
                     "Plugin worker processes started again after one died");
    metrics.set_help("clayhook_plugin_worker_kills_total",
                     "Plugin worker processes the host killed (a call past call_timeout and "
                     "the grace, memory_limit, a protocol error)");
}

std::unique_ptr<PluginWorker> PluginWorker::start(const PluginConfig& config,
                                                  const WorkerSettings& settings,
                                                  HostServices& services, Logger& log,
                                                  Metrics& metrics) {
    auto refuse = [&](const std::string& why) {
        throw PluginError("plugin '" + config.name + "' (" + config.library_path +
                          ", isolation: process) refused: " + why);
    };
    if (settings.executable.empty()) refuse("no plugin worker executable");
    std::unique_ptr<PluginWorker> w(new PluginWorker(config, settings, services, log, metrics));
    w->supervisor_ = std::thread([p = w.get()] { p->supervise(); });
    std::string result;
    {
        std::unique_lock lk(w->mu_);
        w->cv_.wait(lk, [&] { return w->first_result_.has_value(); });
        result = *w->first_result_;
    }
    if (!result.empty()) {
        w->supervisor_.join();  // it returned after a first launch that failed
        refuse(result);
    }
    return w;
}

PluginWorker::~PluginWorker() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        // End of stream: the worker lets its calls return, destroys the
        // instance and exits; serve() kills it after the grace.
        if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
    }
    cv_.notify_all();
    if (supervisor_.joinable()) supervisor_.join();
}

pid_t PluginWorker::pid() const {
    std::lock_guard lk(mu_);
    return up_ ? pid_ : 0;
}

void PluginWorker::send(const std::string& frame) noexcept {
    std::lock_guard w(write_mu_);
    int fd;
    {
        std::lock_guard lk(mu_);
        fd = fd_;
    }
    // fd_ is closed only under write_mu_: it stays this worker's socket here.
    if (fd >= 0) (void)wire::write_frame(fd, frame);
}

std::vector<HandleOutcome> PluginWorker::call(std::span<const EventView> events) noexcept {
    try {
        uint64_t id;
        {
            std::lock_guard lk(mu_);
            id = next_call_++;
        }
        // Built before the call is registered: nothing after that can throw.
        wire::Out f(wire::Type::call);
        f.i64(static_cast<int64_t>(id)).u32(static_cast<uint32_t>(events.size()));
        for (const auto& e : events)
            f.str(e.id)
                .str(e.source)
                .str(e.type)
                .str(e.idempotency_key)
                .str(e.body)
                .i64(e.received_at_ms)
                .u32(e.attempt);
        const std::string& frame = f.done();
        auto down = [&] {
            return retry_all(events.size(), "plugin process is down (" + last_death_ +
                                                "); it is being started again");
        };
        {
            std::unique_lock lk(mu_);
            // Claimed just as the worker died: wait for the next one rather
            // than spend the attempt (the lease is renewed meanwhile).
            const auto until = Clock::now() + settings_.backoff_max + settings_.start_timeout;
            cv_.wait_until(lk, until, [&] { return up_ || stopping_; });
            if (!up_) return down();
        }
        Pending p;
        p.events = events.size();
        {
            // Registered and sent under write_mu_: the socket cannot be
            // closed, nor a new worker's put in its place, in between. A
            // worker that dies after this fails the call (fail_pending).
            std::lock_guard w(write_mu_);
            int fd;
            {
                std::lock_guard lk(mu_);
                if (!up_) return down();
                p.deadline = Clock::now() + settings_.call_timeout + settings_.grace;
                calls_[id] = &p;
                fd = fd_;
            }
            (void)wire::write_frame(fd, frame);
        }
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return p.done; });
        return std::move(p.outcomes);
    } catch (const std::exception& e) {
        return retry_all(events.size(), std::string("plugin process call failed: ") + e.what());
    }
}

void PluginWorker::fail_pending(const std::string& reason) {
    {
        std::lock_guard lk(mu_);
        for (auto& [id, p] : calls_) {
            p->outcomes = retry_all(p->events, reason);
            p->done = true;
        }
        calls_.clear();
    }
    cv_.notify_all();
}

void PluginWorker::supervise() {
    auto backoff = settings_.backoff_min;
    bool first = true;
    for (;;) {
        {
            std::lock_guard lk(mu_);
            if (stopping_) break;
        }
        const auto began = Clock::now();
        kill_reason_.clear();
        {
            std::lock_guard lk(mu_);
            answered_ = 0;
        }
        bool ready = false;
        std::string why;
        if (auto failed = launch(first); failed) {
            why = *failed;
        } else {
            why = serve();
            std::lock_guard lk(mu_);
            ready = !first || first_result_.has_value();
        }
        {
            std::scoped_lock lk(write_mu_, mu_);
            up_ = false;
            if (fd_ >= 0) ::close(fd_);
            fd_ = -1;
            pid_ = 0;
            last_death_ = why;
        }
        if (first && !ready) {
            std::lock_guard lk(mu_);
            first_result_ = why.empty() ? std::string("the plugin process ended") : why;
            cv_.notify_all();
            return;
        }
        first = false;
        {
            // A worker that answered calls (or ran a while) was healthy: its
            // death is one poison call, not a crash loop.
            std::lock_guard lk(mu_);
            if (answered_ > 0 || Clock::now() - began >= kHealthyRun)
                backoff = settings_.backoff_min;
        }
        // Until the next launch is ready: the dispatcher keeps its
        // deliveries instead of claiming them for a call that cannot run.
        down_until_ms_.store(unix_ms() + backoff.count() + settings_.start_timeout.count());
        fail_pending(why);
        std::unique_lock lk(mu_);
        if (stopping_) break;
        restarts_.add(1);
        log_.warn("plugins", "plugin process died; starting it again",
                  {{"plugin", name_}, {"reason", why}, {"in_ms", std::to_string(backoff.count())}});
        cv_.wait_for(lk, backoff, [&] { return stopping_; });
        backoff = std::min(backoff * 2, settings_.backoff_max);
    }
}

std::optional<std::string> PluginWorker::launch(bool first) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return std::string("cannot make the plugin process's socket: ") + std::strerror(errno);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawnattr_init(&at);
    ::posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    ::posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    // Its own process group: a Ctrl-C at the terminal stops the host, which
    // stops its workers in order; unblocked signals with default actions.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
        sigaddset(&defaults, s);
    ::posix_spawnattr_setsigmask(&at, &none);
    ::posix_spawnattr_setsigdefault(&at, &defaults);
    ::posix_spawnattr_setpgroup(&at, 0);
    ::posix_spawnattr_setflags(
        &at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    std::string arg0 = settings_.executable;
    std::string arg1 = name_;
    std::string arg2 = std::to_string(::getpid());
    char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, settings_.executable.c_str(), &fa, &at, argv, environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&at);
    ::close(sv[1]);
    if (rc != 0) {
        ::close(sv[0]);
        return "cannot start " + settings_.executable + ": " + std::strerror(rc);
    }
    {
        std::lock_guard lk(mu_);
        pid_ = pid;
        fd_ = sv[0];
    }
    wire::Out hello(wire::Type::hello);
    hello.str(name_)
        .str(library_)
        .str(config_context_)  // the config JSON and its positions
        .u32(settings_.threads)
        .u32(std::max<uint32_t>(settings_.workers, 1));
    send(hello.done());
    if (!first)
        log_.info("plugins", "plugin process started",
                  {{"plugin", name_}, {"pid", std::to_string(pid)}});
    return std::nullopt;
}

std::string PluginWorker::serve() {
    int fd;
    pid_t pid;
    {
        std::lock_guard lk(mu_);
        fd = fd_;
        pid = pid_;
    }
    wire::Reader reader(fd);
    const auto ready_by = Clock::now() + settings_.start_timeout;
    std::optional<Clock::time_point> stop_by;
    auto kill_it = [&](const std::string& why) {
        if (!kill_reason_.empty()) return;
        kill_reason_ = why;
        kills_.add(1);
        ::kill(pid, SIGKILL);
    };
    bool up = false;
    // Reads what arrived and serves it; false at end of stream or on a
    // frame that breaks the protocol (then the worker is being killed).
    auto drain = [&]() -> bool {
        try {
            if (!reader.fill()) return false;
            wire::Type type;
            std::string_view payload;
            while (reader.ready() && reader.next(type, payload))
                handle_frame(static_cast<uint8_t>(type), payload);
            return true;
        } catch (const wire::ProtocolError& e) {
            kill_it(std::string("it broke the worker protocol (") + e.what() + ")");
        } catch (const std::exception& e) {
            kill_it(std::string("the host could not serve its frames (") + e.what() + ")");
        }
        return false;
    };
    exit_status_.reset();
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(kTick.count()));
        if (n < 0 && errno != EINTR) {
            kill_it(std::string("the host cannot watch it (poll: ") + std::strerror(errno) + ")");
            break;
        }
        if (n > 0 && !drain()) break;
        if (!kill_reason_.empty()) break;
        // Exited while something else (a process it started) keeps the
        // socket open: no end of stream comes, the exit is seen here.
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            exit_status_ = status;
            pollfd q{fd, POLLIN, 0};
            while (::poll(&q, 1, 0) > 0 && drain()) {
            }
            break;
        }
        const auto now = Clock::now();
        {
            std::lock_guard lk(mu_);
            up = up_;
            if (stopping_ && !stop_by) {
                stop_by = now + settings_.grace;
                ::shutdown(fd, SHUT_WR);  // also when the stop came during the launch
            }
            for (const auto& [id, c] : calls_)
                if (now > c->deadline) {
                    kill_it("a call ran past dispatch.call_timeout (" +
                            std::to_string(settings_.call_timeout.count()) +
                            " ms) and the grace (" + std::to_string(settings_.grace.count()) +
                            " ms)");
                    break;
                }
        }
        if (!up && now > ready_by)
            kill_it("it was not ready within " + std::to_string(settings_.start_timeout.count()) +
                    " ms (loading the library and create())");
        if (stop_by && now > *stop_by)
            kill_it("it did not exit within " + std::to_string(settings_.grace.count()) +
                    " ms of being stopped");
        if (memory_limit_ > 0) {
            const uint64_t rss = rss_of(pid);
            if (rss > memory_limit_)
                kill_it("its memory (RSS " + mib(rss) + ") exceeded memory_limit (" +
                        mib(memory_limit_) + ")");
        }
        if (!kill_reason_.empty()) break;
    }
    return reap();
}

std::string PluginWorker::reap() {
    pid_t pid;
    {
        std::lock_guard lk(mu_);
        pid = pid_;
    }
    int status = 0;
    pid_t r = pid;
    if (exit_status_) {
        status = *exit_status_;
    } else {
        do {
            r = ::waitpid(pid, &status, 0);
        } while (r < 0 && errno == EINTR);
    }
    if (!kill_reason_.empty()) return "plugin process killed: " + kill_reason_;
    {
        std::lock_guard lk(mu_);
        if (!up_ && !last_death_.empty() && last_death_.rfind("refused: ", 0) == 0)
            return last_death_.substr(9);
    }
    if (r < 0) return std::string("plugin process lost: ") + std::strerror(errno);
    if (WIFSIGNALED(status))
        return "plugin process killed by " + signal_name(WTERMSIG(status)) +
               (WCOREDUMP(status) ? " (core dumped)" : "");
    if (WIFEXITED(status))
        return "plugin process exited with status " + std::to_string(WEXITSTATUS(status));
    return "plugin process ended (wait status " + std::to_string(status) + ")";
}

void PluginWorker::handle_frame(uint8_t type, std::string_view payload) {
    const clayhook_host_api* api = services_.api();
    wire::In in(static_cast<wire::Type>(type), payload);
    switch (static_cast<wire::Type>(type)) {
        case wire::Type::ready: {
            PluginInfo info;
            info.kind = in.str();
            info.version = in.str();
            const uint32_t major = in.u32(), minor = in.u32();
            info.abi = std::to_string(major) + "." + std::to_string(minor);
            info.path = library_;
            info.max_batch_size = in.u32();
            info.max_concurrency = in.u32();
            const uint32_t n = in.u32();
            if (n > 1024) throw wire::ProtocolError("too many event patterns");
            for (uint32_t i = 0; i < n; ++i)
                info.patterns.emplace_back(in.str());
            in.end();
            std::lock_guard lk(mu_);
            if (up_) throw wire::ProtocolError("a second ready frame");
            if (!first_result_) {
                info_ = std::move(info);
                first_result_ = "";
            } else if (info.kind != info_.kind || info.max_batch_size != info_.max_batch_size) {
                // The file changed under a running generation: a reload
                // brings new code in, a restart must not.
                throw wire::ProtocolError("the restarted plugin is " + info.kind + " " +
                                          info.version + ", not " + info_.kind + " " +
                                          info_.version + " (reload to load a new build)");
            }
            up_ = true;
            down_until_ms_.store(0);
            cv_.notify_all();
            return;
        }
        case wire::Type::failed: {
            std::string why(in.str());
            in.end();
            std::lock_guard lk(mu_);
            last_death_ = "refused: " + why;
            return;
        }
        case wire::Type::result: {
            const uint64_t id = static_cast<uint64_t>(in.i64());
            const uint32_t n = in.u32();
            {
                // Checked before anything is allocated for it.
                std::lock_guard lk(mu_);
                auto it = calls_.find(id);
                if (it == calls_.end()) throw wire::ProtocolError("a result for no call");
                if (it->second->events != n)
                    throw wire::ProtocolError("a result with " + std::to_string(n) +
                                              " outcomes for " +
                                              std::to_string(it->second->events) + " events");
            }
            std::vector<HandleOutcome> out;
            out.reserve(n);
            for (uint32_t i = 0; i < n; ++i) {
                HandleOutcome o;
                const int32_t status = in.i32();
                o.status = status == CLAYHOOK_DONE   ? CLAYHOOK_DONE
                           : status == CLAYHOOK_FAIL ? CLAYHOOK_FAIL
                                                     : CLAYHOOK_RETRY;
                o.retry_after = std::chrono::milliseconds(in.u32());
                o.reason = std::string(in.str().substr(0, CLAYHOOK_REASON_MAX));
                out.push_back(std::move(o));
            }
            in.end();
            {
                std::lock_guard lk(mu_);
                auto it = calls_.find(id);  // only the supervisor removes calls: still there
                it->second->outcomes = std::move(out);
                it->second->done = true;
                calls_.erase(it);
                ++answered_;
            }
            cv_.notify_all();
            return;
        }
        case wire::Type::log: {
            const int32_t level = in.i32();
            std::string_view msg = in.str();
            in.end();
            api->log(api->host_ctx, level, clayhook_str{msg.data(), msg.size()});
            return;
        }
        case wire::Type::metric: {
            const bool counter = in.u8() != 0;
            std::string_view name = in.str(), labels = in.str();
            const double value = in.f64();
            in.end();
            clayhook_str n{name.data(), name.size()}, l{labels.data(), labels.size()};
            if (counter)
                api->counter_add(api->host_ctx, n, l, value);
            else
                api->gauge_set(api->host_ctx, n, l, value);
            return;
        }
        case wire::Type::request: {
            const int64_t id = in.i64();
            const auto op = static_cast<wire::Op>(in.u8());
            std::string_view key = in.str(), value = in.str();
            const int64_t at_ms = in.i64();
            in.end();
            clayhook_str k{key.data(), key.size()}, v{value.data(), value.size()};
            int32_t rc = CLAYHOOK_ERR_INVALID;
            std::string got;
            switch (op) {
                case wire::Op::kv_get:
                    rc = api->kv_get(
                        api->host_ctx, k,
                        [](void* user, const char* data, size_t len) {
                            static_cast<std::string*>(user)->assign(data, len);
                        },
                        &got);
                    break;
                case wire::Op::kv_put:
                    rc = api->kv_put(api->host_ctx, k, v);
                    break;
                case wire::Op::kv_delete:
                    rc = api->kv_delete(api->host_ctx, k);
                    break;
                case wire::Op::deliver_again_at:
                    rc = api->deliver_again_at(api->host_ctx, k, at_ms);
                    break;
                default:
                    throw wire::ProtocolError("an unknown service request");
            }
            wire::Out reply(wire::Type::reply);
            reply.i64(id).i32(rc).str(got);
            send(reply.done());
            return;
        }
        default:
            throw wire::ProtocolError("an unknown frame type " + std::to_string(type));
    }
}

}  // namespace clayhook
