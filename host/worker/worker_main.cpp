// clayhook-plugin-worker: runs one plugin instance for the host
// (plugins[].isolation: process). Started by the host with its end of a
// socket pair on fd 3; speaks worker/WorkerProtocol.h and nothing else. Not
// meant to be run by hand.
//
// It loads the library through the host's own loader (the same checks, the
// same staged copy), creates the instance with a host API table whose
// functions forward to the host over the socket, answers `ready`, and runs
// calls on a small pool of threads. End of stream on the socket (the host
// stopped it, or died) ends it: the running calls return, the instance is
// destroyed, it exits.
#include "crash/FatalSignal.h"
#include "plugins/ConfigSchema.h"
#include "plugins/LoadedPlugin.h"
#include "plugins/PluginLibrary.h"
#include "worker/WorkerProtocol.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace clayhook;

constexpr int kFd = 3;

// The worker's side of the socket: frames out (any thread), service
// requests waiting for their reply.
class Channel {
  public:
    void send(const std::string& frame) {
        std::lock_guard lk(write_mu_);
        (void)wire::write_frame(kFd, frame);  // the host gone: the reader sees the end
    }

    // A service request: sends it and waits for the reply (or the end).
    int32_t request(wire::Op op, std::string_view key, std::string_view value, int64_t at_ms,
                    std::string* got) {
        int64_t id;
        Waiter w;
        {
            std::lock_guard lk(mu_);
            if (ended_) return CLAYHOOK_ERR_STORE;
            id = next_++;
            waiting_[id] = &w;
        }
        wire::Out f(wire::Type::request);
        f.i64(id).u8(static_cast<uint8_t>(op)).str(key).str(value).i64(at_ms);
        send(f.done());
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return w.done || ended_; });
        waiting_.erase(id);
        if (!w.done) return CLAYHOOK_ERR_STORE;
        if (got) *got = std::move(w.value);
        return w.rc;
    }

    void replied(int64_t id, int32_t rc, std::string_view value) {
        std::lock_guard lk(mu_);
        auto it = waiting_.find(id);
        if (it == waiting_.end()) return;
        it->second->rc = rc;
        it->second->value = value;
        it->second->done = true;
        cv_.notify_all();
    }

    void end() {
        std::lock_guard lk(mu_);
        ended_ = true;
        cv_.notify_all();
    }

  private:
    struct Waiter {
        bool done = false;
        int32_t rc = CLAYHOOK_ERR_STORE;
        std::string value;
    };
    std::mutex write_mu_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool ended_ = false;
    int64_t next_ = 1;
    std::map<int64_t, Waiter*> waiting_;
};

Channel g_channel;

std::string_view sv(clayhook_str s) {
    return {s.data ? s.data : "", s.len};
}

void cb_log(void*, int32_t level, clayhook_str message) {
    try {
        wire::Out f(wire::Type::log);
        f.i32(level).str(sv(message));
        g_channel.send(f.done());
    } catch (...) {
    }
}
int32_t metric(clayhook_str name, clayhook_str labels, double v, bool counter) {
    try {
        wire::Out f(wire::Type::metric);
        f.u8(counter ? 1 : 0).str(sv(name)).str(sv(labels)).f64(v);
        g_channel.send(f.done());
        return CLAYHOOK_OK;  // validated by the host, which drops a bad one
    } catch (...) {
        return CLAYHOOK_ERR_INVALID;
    }
}
int32_t cb_counter_add(void*, clayhook_str name, clayhook_str labels, double delta) {
    if (delta < 0) return CLAYHOOK_ERR_INVALID;
    return metric(name, labels, delta, true);
}
int32_t cb_gauge_set(void*, clayhook_str name, clayhook_str labels, double value) {
    return metric(name, labels, value, false);
}
int32_t cb_kv_get(void*, clayhook_str key, clayhook_value_sink sink, void* user) {
    try {
        if (sink == nullptr) return CLAYHOOK_ERR_INVALID;
        std::string got;
        int32_t rc = g_channel.request(wire::Op::kv_get, sv(key), {}, 0, &got);
        if (rc == CLAYHOOK_OK) sink(user, got.data(), got.size());
        return rc;
    } catch (...) {
        return CLAYHOOK_ERR_STORE;
    }
}
int32_t cb_kv_put(void*, clayhook_str key, clayhook_str value) {
    try {
        return g_channel.request(wire::Op::kv_put, sv(key), sv(value), 0, nullptr);
    } catch (...) {
        return CLAYHOOK_ERR_STORE;
    }
}
int32_t cb_kv_delete(void*, clayhook_str key) {
    try {
        return g_channel.request(wire::Op::kv_delete, sv(key), {}, 0, nullptr);
    } catch (...) {
        return CLAYHOOK_ERR_STORE;
    }
}
int32_t cb_deliver_again_at(void*, clayhook_str event_id, int64_t at_ms) {
    try {
        return g_channel.request(wire::Op::deliver_again_at, sv(event_id), {}, at_ms, nullptr);
    } catch (...) {
        return CLAYHOOK_ERR_STORE;
    }
}

// One call as received: the strings it points into live in `frame`.
struct Call {
    int64_t id = 0;
    std::string frame;
    std::vector<EventView> events;
};

class Pool {
  public:
    Pool(LoadedPlugin& plugin, const std::string& name, size_t threads)
        : plugin_(plugin), name_(name) {
        try {
            for (size_t i = 0; i < threads; ++i)
                threads_.emplace_back([this] { run(); });
        } catch (const std::exception& e) {
            // Threads already started cannot be unwound past.
            std::fprintf(stderr, "clayhook-plugin-worker: cannot start %zu threads: %s\n", threads,
                         e.what());
            std::fflush(nullptr);
            ::_exit(3);
        }
    }
    void push(std::unique_ptr<Call> c) {
        {
            std::lock_guard lk(mu_);
            queue_.push_back(std::move(c));
        }
        cv_.notify_one();
    }
    // Lets the queued calls finish, then joins.
    void finish() {
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_)
            t.join();
    }

  private:
    void run() {
        fatal::prepare_thread();
        for (;;) {
            std::unique_ptr<Call> c;
            {
                std::unique_lock lk(mu_);
                cv_.wait(lk, [&] { return done_ || !queue_.empty(); });
                if (queue_.empty()) return;
                c = std::move(queue_.front());
                queue_.pop_front();
            }
            std::vector<HandleOutcome> out;
            {
                fatal::CallScope scope(name_, {});
                out = plugin_.call(c->events);
            }
            wire::Out f(wire::Type::result);
            f.i64(c->id).u32(static_cast<uint32_t>(out.size()));
            for (const auto& o : out)
                f.i32(static_cast<int32_t>(o.status))
                    .u32(static_cast<uint32_t>(o.retry_after.count()))
                    .str(o.reason);
            g_channel.send(f.done());
        }
    }
    LoadedPlugin& plugin_;
    const std::string name_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Call>> queue_;
    bool done_ = false;
    std::vector<std::thread> threads_;
};

std::unique_ptr<Call> parse_call(std::string_view payload) {
    auto c = std::make_unique<Call>();
    c->frame.assign(payload);  // the views below point into this copy
    wire::In in(wire::Type::call, c->frame);
    c->id = in.i64();
    const uint32_t n = in.u32();
    if (n == 0 || n > 100'000)
        throw wire::ProtocolError("a call with " + std::to_string(n) + " events");
    c->events.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        EventView e;
        e.id = in.str();
        e.source = in.str();
        e.type = in.str();
        e.idempotency_key = in.str();
        e.body = in.str();
        e.received_at_ms = in.i64();
        e.attempt = in.u32();
        c->events.push_back(e);
    }
    in.end();
    return c;
}

void fail(const std::string& why) {
    wire::Out f(wire::Type::failed);
    f.str(why);
    g_channel.send(f.done());
    ::_exit(0);  // the reader thread is blocked in read(): nothing to wait for
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    // Dies with the host, however it ends (the thread that started it,
    // its supervisor, outlives it unless the whole host dies).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (argc < 3 || ::fcntl(kFd, F_GETFD) < 0) {
        std::fprintf(stderr,
                     "clayhook-plugin-worker: started by the clayhook host for plugins with "
                     "isolation: process; not meant to be run by hand\n");
        return 2;
    }
    if (std::to_string(::getppid()) != argv[2]) return 0;  // the host died already
    // Not inherited by processes the plugin starts: they must not keep the
    // host's end from seeing this process end.
    ::fcntl(kFd, F_SETFD, FD_CLOEXEC);
    fatal::install("", "", "plugin-worker");
    try {
        wire::Reader reader(kFd);
        wire::Type type;
        std::string_view payload;
        if (!reader.next(type, payload) || type != wire::Type::hello) return 3;
        wire::In hello(type, payload);
        const std::string name(hello.str());
        const std::string path(hello.str());
        const std::string config_context(hello.str());
        const uint32_t threads = std::min<uint32_t>(hello.u32(), 1024);  // 0: not given
        const uint32_t workers = std::clamp<uint32_t>(hello.u32(), 1, 1024);
        hello.end();

        // From here one thread reads the socket: service replies (create()
        // may use the services already), then calls, until the end.
        std::mutex pool_mu;
        std::condition_variable pool_cv;
        Pool* pool = nullptr;
        bool ended = false;
        std::thread pump([&] {
            try {
                wire::Type t;
                std::string_view p;
                while (reader.next(t, p)) {
                    if (t == wire::Type::reply) {
                        wire::In r(t, p);
                        const int64_t id = r.i64();
                        const int32_t rc = r.i32();
                        std::string_view v = r.str();
                        r.end();
                        g_channel.replied(id, rc, v);
                    } else if (t == wire::Type::call) {
                        auto c = parse_call(p);
                        std::lock_guard lk(pool_mu);
                        if (pool == nullptr) throw wire::ProtocolError("a call before ready");
                        pool->push(std::move(c));
                    } else {
                        throw wire::ProtocolError("an unexpected frame");
                    }
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "clayhook-plugin-worker: %s\n", e.what());
            }
            g_channel.end();
            std::lock_guard lk(pool_mu);
            ended = true;
            pool_cv.notify_all();
        });

        // From here an exception must not unwind past the running pump
        // thread (its destructor would terminate the process): it ends the
        // process directly.
        try {
            std::shared_ptr<PluginLibrary> lib;
            try {
                const std::string stage = make_stage_dir();
                try {
                    lib = PluginLibrary::load(name, path, stage);
                } catch (...) {
                    ::rmdir(stage.c_str());
                    throw;
                }
                ::rmdir(stage.c_str());
            } catch (const std::exception& e) {
                // PluginError names the plugin and the file; the host does too.
                std::string why = e.what();
                if (auto at = why.find(") refused: "); at != std::string::npos)
                    why = why.substr(at + 11);
                fail(why);
            }
            static clayhook_host_api api{};
            api.struct_size = sizeof api;
            api.host_ctx = nullptr;
            api.log = &cb_log;
            api.counter_add = &cb_counter_add;
            api.gauge_set = &cb_gauge_set;
            api.kv_get = &cb_kv_get;
            api.kv_put = &cb_kv_put;
            api.kv_delete = &cb_kv_delete;
            api.deliver_again_at = &cb_deliver_again_at;

            // The plugin's declared config, applied here where the library is.
            std::string config;
            try {
                config =
                    apply_config_schema(lib->config_keys(), decode_config_context(config_context),
                                        "plugins." + name + ".config");
            } catch (const std::exception& e) {
                fail(std::string("config: ") + e.what());
            }

            std::unique_ptr<LoadedPlugin> plugin;
            {
                std::string error;
                fatal::CallScope scope(name, {});
                plugin = LoadedPlugin::create(lib, &api, config, error);
                if (!plugin) fail("its create() failed: " + error);
            }
            const auto& d = lib->descriptor();
            // As many threads as the host's lane has (dispatch_targets).
            const uint32_t n =
                threads > 0
                    ? (d.max_concurrency > 0 ? std::min(threads, d.max_concurrency) : threads)
                    : (d.max_concurrency > 0 ? std::min<uint32_t>(d.max_concurrency, 1024)
                                             : workers);
            Pool calls(*plugin, name, n);
            {
                std::lock_guard lk(pool_mu);
                pool = &calls;
            }
            wire::Out ready(wire::Type::ready);
            ready.str(d.name).str(d.version).u32(d.abi_major).u32(d.abi_minor);
            ready.u32(d.max_batch_size).u32(d.max_concurrency);
            ready.u32(static_cast<uint32_t>(d.event_pattern_count));
            for (size_t i = 0; i < d.event_pattern_count; ++i)
                ready.str(d.event_patterns[i]);
            g_channel.send(ready.done());

            {
                std::unique_lock lk(pool_mu);
                pool_cv.wait(lk, [&] { return ended; });
                pool = nullptr;
            }
            pump.join();
            calls.finish();  // the calls queued and running return
            plugin.reset();  // destroy()
            // No static destructors or unloading while a thread the plugin
            // started may still run: the process ends here.
            std::fflush(nullptr);
            ::_exit(0);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "clayhook-plugin-worker: %s\n", e.what());
            std::fflush(nullptr);
            ::_exit(3);
        }
    } catch (const std::exception& e) {
        // Threads may still be joinable: no unwinding past them.
        std::fprintf(stderr, "clayhook-plugin-worker: %s\n", e.what());
        std::fflush(nullptr);
        ::_exit(3);
    }
}
