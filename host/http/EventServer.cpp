#include "http/EventServer.h"

#include "http/ServerContext.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

namespace clayhook {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr uint64_t kWakeId = 0;    // the loop's eventfd
constexpr uint64_t kListenId = 1;  // the listening socket (first loop only)
constexpr uint64_t kFirstConnId = 2;
constexpr size_t kReadChunk = 64 * 1024;
constexpr int64_t kSweepNs = 100'000'000;     // deadlines are checked this often
constexpr int64_t kLingerNs = 1'000'000'000;  // reading and discarding after an early answer
constexpr size_t kLingerBytes = 256 * 1024;   // at most this much of it
constexpr int kAcceptsPerWake = 64;
// Requests one connection may start in one turn: a client pipelining
// requests answered at once (/healthz, 404) must not keep its loop from the
// others. Past it the connection waits for the loop's next turn.
constexpr int kBurst = 16;

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}
int64_t ns(milliseconds m) {
    return static_cast<int64_t>(m.count()) * 1'000'000;
}
std::runtime_error sys_error(const std::string& what) {
    return std::runtime_error(what + ": " + std::strerror(errno));
}

// What a connection waits for, as its deadline counts it.
enum class Phase { none, header, idle, body, io, linger };
// Where a connection is in its current request.
enum class State { idle, head, body, handling, linger };
enum class Io { got, again, eof };

struct Conn {
    uint64_t id = 0;
    int fd = -1;
    std::string peer;       // host:port, for logs
    std::string peer_host;  // host, for the service
    State state = State::idle;
    bool first = true;         // no request read yet
    bool readable = true;      // bytes may be waiting: no short read since the last edge
    bool peer_closed = false;  // the peer's FIN (or an error) was seen: read until recv says 0
    bool head_tried = false;   // the head of this request was parsed at least once
    int burst = 0;             // requests started in turn `burst_turn` (kBurst)
    uint64_t burst_turn = 0;
    bool queued = false;     // in its loop's `ready` list
    bool in_flight = false;  // counted in Core::in_flight
    bool closed = false;     // its socket is closed; the loop forgets it
    // After what is in `out` has gone: keep reading, close, or linger.
    // idle: the request is over once it has gone (Loop::to_idle).
    enum class After { keep, idle, close, linger } after = After::keep;
    std::string in;      // received, not yet consumed
    size_t scanned = 0;  // head: bytes already searched for a line end
    std::string out;     // to send
    size_t out_off = 0;
    int64_t started = 0;        // ns: the connection's start
    int64_t wait_limit = 0;     // ns: the first byte of the next request is due by then
    int64_t head_deadline = 0;  // ns
    int64_t body_start = 0;     // ns
    int64_t deadline = 0;       // ns; 0: none (the service has the request)
    Phase phase = Phase::none;
    size_t discarded = 0;  // lingering
    RequestHead head;
    HttpService::Admission admission;
    std::string body;
    std::optional<ChunkedDecoder> chunked;
    // The body's memory as it arrives, until the answer or the connection's
    // end (ServerContext::hold_body).
    BodyBudget::Lease body_lease;
};

// handle_async()'s answer, once: a service that throws after (or instead
// of) answering leaves the connection one answer, never two.
struct Owed {
    std::atomic<bool> settled{false};
};

}  // namespace

struct Loop;

struct EventServer::Core : ServerContext, std::enable_shared_from_this<EventServer::Core> {
    std::atomic<bool> started{false};  // until stop() has finished: port() and local_host()
    std::atomic<bool> stop_called{false};
    std::atomic<int> open{0};  // connections open (and counted by the peer limiter)
    int listen_fd = -1;
    uint16_t port = 0;
    std::string host;
    std::vector<std::unique_ptr<Loop>> loops;
    std::atomic<size_t> next_loop{0};

    std::mutex owed_mu;
    std::condition_variable owed_cv;
    int64_t owed = 0;  // answers handle_async() still owes; under owed_mu

    Core(HttpServerOptions o, HttpService& s, Logger& l, Metrics& m)
        : ServerContext(std::move(o), s, l, m) {}
    ~Core();

    void owe() {
        std::lock_guard lk(owed_mu);
        ++owed;
    }
    void paid() {
        std::lock_guard lk(owed_mu);
        if (--owed == 0) owed_cv.notify_all();
    }
};

// Pays one answer owed (Core::paid) when it goes out of scope.
struct PaidOnExit {
    EventServer::Core& core;
    ~PaidOnExit() { core.paid(); }
};

// One event loop: its thread, its epoll set, the connections it owns, and
// what other threads hand it (accepted sockets, answers).
struct Loop {
    EventServer::Core& core;
    const size_t index;
    int ep = -1;
    int wake = -1;
    std::thread thread;
    std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
    uint64_t next_id = kFirstConnId;
    char scratch[kReadChunk];
    std::vector<uint64_t> ready;  // connections stopped at kBurst: driven next turn
    uint64_t turn = 1;            // iterations of run(): kBurst counts per turn
    bool listening = false;       // the first loop: the listener is in its set
    int64_t accept_retry = 0;     // ns: out of descriptors, accepting pauses until then

    std::mutex mu;  // what follows
    struct Adopted {
        int fd;
        std::string peer, peer_host;
    };
    std::vector<Adopted> adopted;
    std::vector<std::pair<uint64_t, HttpReply>> replies;
    bool signalled = false;
    bool quit = false;

    Loop(EventServer::Core& c, size_t i) : core(c), index(i) {
        ep = ::epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0) throw sys_error("epoll_create1");
        wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake < 0) {
            ::close(ep);
            throw sys_error("eventfd");
        }
        watch(wake, kWakeId, EPOLLIN);
    }
    // Only once nothing can post to it any more (the Core goes with the last
    // answer owed): the eventfd is never closed under a poster.
    ~Loop() {
        for (auto& a : adopted)
            drop_fd(a.fd);
        for (auto& [id, c] : conns)
            if (!c->closed) close_conn(*c);
        ::close(wake);
        ::close(ep);
    }

    void watch(int fd, uint64_t id, uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = id;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) throw sys_error("epoll_ctl");
    }

    void signal() {
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake, &one, sizeof one);
    }
    // Runs `add` under the loop's lock (queueing something for it) and
    // wakes the loop unless a wake-up is already on its way.
    template <class Add>
    void post(Add&& add) {
        bool wake_it = false;
        {
            std::lock_guard lk(mu);
            add();
            wake_it = !signalled;
            signalled = true;
        }
        if (wake_it) signal();
    }
    void poke() {
        post([] {});
    }
    void post_reply(uint64_t id, HttpReply r) {
        post([&] { replies.emplace_back(id, std::move(r)); });
    }
    void post_adopt(Adopted a) {
        post([&] { adopted.push_back(std::move(a)); });
    }
    void finish() {
        post([&] { quit = true; });
    }

    // A socket given up before it became a connection of this loop.
    void drop_fd(int fd) {
        core.peers.release(fd);
        ::close(fd);
        core.open.fetch_sub(1);
    }

    void run() {
        const std::string name = core.opts.name + "-" + std::to_string(index);
        pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());  // top -H, perf
        epoll_event events[256];
        int64_t next_sweep = now_ns() + kSweepNs;
        for (;; ++turn) {
            const int64_t wait_ms =
                ready.empty() ? std::max<int64_t>(0, (next_sweep - now_ns()) / 1'000'000 + 1) : 0;
            const int n = ::epoll_wait(ep, events, 256, static_cast<int>(wait_ms));
            if (n < 0 && errno != EINTR) {
                core.log.error(core.opts.name, "epoll_wait failed",
                               {{"error", std::strerror(errno)}});
                std::this_thread::sleep_for(milliseconds(10));
            }
            bool woken = false;
            for (int i = 0; i < n; ++i) {
                const uint64_t id = events[i].data.u64;
                if (id == kWakeId) {
                    woken = true;
                } else if (id == kListenId) {
                    accept_ready();
                } else {
                    auto it = conns.find(id);
                    if (it == conns.end()) continue;
                    Conn& c = *it->second;
                    if ((events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)
                        c.readable = true;
                    // The FIN raises no edge of its own when it came with the
                    // last bytes: a short read must not end the reading then.
                    if ((events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)
                        c.peer_closed = true;
                    drive(it);
                }
            }
            if (woken && !take_posted()) return;
            if (!ready.empty()) {
                std::vector<uint64_t> due;
                due.swap(ready);
                for (uint64_t id : due)
                    if (auto it = conns.find(id); it != conns.end()) {
                        it->second->queued = false;
                        drive(it);
                    }
            }
            if (core.stopping.load()) stop_accepting_and_close_idle();
            const int64_t now = now_ns();
            if (now >= next_sweep) {
                sweep(now);
                next_sweep = now + kSweepNs;
            }
        }
    }

    // What other threads handed over. False: the loop is to end (every
    // connection closed).
    bool take_posted() {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake, &count, sizeof count);
        std::vector<Adopted> fds;
        std::vector<std::pair<uint64_t, HttpReply>> answers;
        bool ending = false;
        {
            std::lock_guard lk(mu);
            fds.swap(adopted);
            answers.swap(replies);
            signalled = false;
            ending = quit;
        }
        if (ending) {
            for (auto& a : fds)
                drop_fd(a.fd);
            for (auto& [id, c] : conns)
                if (!c->closed) close_conn(*c);
            conns.clear();
            return false;
        }
        for (auto& a : fds) {
            try {
                adopt(std::move(a));
            } catch (const std::exception& e) {
                core.log.warn(core.opts.name, "connection dropped", {{"error", e.what()}});
            }
        }
        for (auto& [id, reply] : answers) {
            try {
                complete(id, std::move(reply));
            } catch (const std::exception& e) {
                core.log.warn(core.opts.name, "answer dropped", {{"error", e.what()}});
                if (auto it = conns.find(id); it != conns.end()) {
                    if (!it->second->closed) close_conn(*it->second);
                    conns.erase(it);
                }
            }
        }
        return true;
    }

    // ---- accepting (the first loop) ------------------------------------

    void accept_ready() {
        for (int i = 0; i < kAcceptsPerWake; ++i) {
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            const int fd = ::accept4(core.listen_fd, reinterpret_cast<sockaddr*>(&ss), &len,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    // The listener stays readable: without a pause this loop
                    // would spin. Connections wait in the backlog meanwhile.
                    core.log.warn(core.opts.name, "accept failed, pausing 100 ms",
                                  {{"error", std::strerror(errno)}});
                    ::epoll_ctl(ep, EPOLL_CTL_DEL, core.listen_fd, nullptr);
                    listening = false;
                    accept_retry = now_ns() + kSweepNs;
                }
                return;  // EAGAIN: none left
            }
            admit_socket(fd, ss, len);
        }
    }

    void busy(int fd, const char* body) {
        const std::string bytes = busy_answer(body);
        // A fresh socket's send buffer is empty: this never blocks.
        [[maybe_unused]] ssize_t n =
            ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::shutdown(fd, SHUT_WR);
        ::close(fd);
    }

    void admit_socket(int fd, const sockaddr_storage& ss, socklen_t len) {
        if (core.stopping.load()) {
            ::close(fd);
            return;
        }
        if (core.open.load() >= core.opts.max_connections) {
            core.counters.refused_limit.add(1);
            busy(fd, R"({"error":"too many connections"})");
            return;
        }
        Adopted a{fd, {}, {}};
        std::string key;
        try {
            Poco::Net::SocketAddress addr(reinterpret_cast<const sockaddr*>(&ss), len);
            a.peer = addr.toString();
            a.peer_host = addr.host().toString();
            key = PeerLimiter::peer_key(addr.host());
        } catch (const Poco::Exception&) {
            ::close(fd);
            return;
        }
        if (!core.peers.acquire(fd, key)) {
            core.counters.refused_peer.add(1);
            busy(fd, R"({"error":"too many connections from this address"})");
            return;
        }
        core.open.fetch_add(1);
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Loop& to = *core.loops[core.next_loop.fetch_add(1) % core.loops.size()];
        if (&to == this)
            adopt(std::move(a));
        else
            to.post_adopt(std::move(a));
    }

    void adopt(Adopted a) {
        auto c = std::make_unique<Conn>();
        c->id = next_id++;
        c->fd = a.fd;
        c->peer = std::move(a.peer);
        c->peer_host = std::move(a.peer_host);
        c->started = now_ns();
        c->wait_limit = c->started + ns(core.opts.header_timeout);
        try {
            // Edge-triggered, both ways, once: no epoll_ctl per request.
            watch(c->fd, c->id, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
        } catch (const std::exception& e) {
            core.log.warn(core.opts.name, "connection dropped", {{"error", e.what()}});
            drop_fd(a.fd);
            return;
        }
        auto it = conns.emplace(c->id, std::move(c)).first;
        drive(it);
    }

    void stop_accepting_and_close_idle() {
        if (listening) {
            ::epoll_ctl(ep, EPOLL_CTL_DEL, core.listen_fd, nullptr);
            listening = false;
        }
        accept_retry = 0;
        for (auto it = conns.begin(); it != conns.end();) {
            Conn& c = *it->second;
            if (!c.closed && c.state == State::idle && c.in.empty() && c.out_off >= c.out.size())
                close_conn(c);
            it = c.closed ? conns.erase(it) : std::next(it);
        }
    }

    void sweep(int64_t now) {
        if (accept_retry != 0 && now >= accept_retry && !core.stopping.load()) {
            accept_retry = 0;
            try {
                watch(core.listen_fd, kListenId, EPOLLIN);
                listening = true;
            } catch (const std::exception& e) {
                core.log.error(core.opts.name, "cannot listen again", {{"error", e.what()}});
            }
        }
        for (auto it = conns.begin(); it != conns.end();) {
            Conn& c = *it->second;
            if (!c.closed && c.deadline != 0 && c.deadline < now) {
                switch (c.phase) {
                    case Phase::header:
                        core.counters.timeout_header.add(1);
                        break;
                    case Phase::idle:
                        core.counters.timeout_idle.add(1);
                        break;
                    case Phase::body:
                        core.counters.timeout_body.add(1);
                        break;
                    default:
                        break;  // a stalled send, the end of a linger: not a timeout
                }
                close_conn(c);
            }
            it = c.closed ? conns.erase(it) : std::next(it);
        }
    }

    // ---- one connection ----------------------------------------------

    using ConnIt = std::unordered_map<uint64_t, std::unique_ptr<Conn>>::iterator;

    void drive(ConnIt it) {
        Conn& c = *it->second;
        try {
            advance(c);
        } catch (const std::exception& e) {
            core.log.debug(core.opts.name, "connection ended", {{"error", e.what()}});
            if (!c.closed) close_conn(c);
        }
        if (c.closed) conns.erase(it);
    }

    void close_conn(Conn& c) {
        if (c.in_flight) core.in_flight.fetch_sub(1);
        c.in_flight = false;
        core.peers.release(c.fd);  // before the descriptor can be reused
        c.body_lease.release();    // before the peer can see the close
        ::close(c.fd);             // leaves the epoll set with it
        core.open.fetch_sub(1);
        c.closed = true;
        c.state = State::idle;
    }

    Io read_some(Conn& c) {
        if (!c.readable) return Io::again;
        for (;;) {
            const ssize_t n = ::recv(c.fd, scratch, sizeof scratch, 0);
            if (n > 0) {
                c.in.append(scratch, static_cast<size_t>(n));
                // A short read took everything there was; bytes arriving
                // later raise a new edge (a FIN already seen does not).
                if (static_cast<size_t>(n) < sizeof scratch && !c.peer_closed) c.readable = false;
                return Io::got;
            }
            if (n == 0) return Io::eof;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c.readable = false;
                return Io::again;
            }
            return Io::eof;  // reset: the peer is gone
        }
    }

    Io flush(Conn& c) {
        while (c.out_off < c.out.size()) {
            const ssize_t n =
                ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
            if (n > 0) {
                c.out_off += static_cast<size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Io::again;
            return Io::eof;
        }
        c.out.clear();
        c.out_off = 0;
        return Io::got;
    }

    // Waits for more bytes, until `limit` at most and `io_timeout` without
    // progress.
    void wait_read(Conn& c, Phase phase, int64_t limit) {
        c.phase = phase;
        c.deadline = std::min(limit, now_ns() + ns(core.opts.io_timeout));
    }

    bool keep_alive(const Conn& c, const HttpReply& r) const {
        return core.keep_alive(c.head.keep_alive, r);
    }

    void queue(Conn& c, const HttpReply& r, bool close, const HttpRequest* req) {
        c.out += serialize(r, reply_framing(req, close));
        if (close && c.after == Conn::After::keep) c.after = Conn::After::close;
    }

    void begin_in_flight(Conn& c) {
        if (!c.in_flight) core.in_flight.fetch_add(1);
        c.in_flight = true;
    }
    // The request is answered and the connection kept: the next one may come.
    void to_idle(Conn& c) {
        if (c.in_flight) core.in_flight.fetch_sub(1);
        c.in_flight = false;
        c.first = false;
        c.state = State::idle;
        c.admission = {};
        c.head = {};
        // A large body's buffer is not kept by an idle connection.
        if (c.in.capacity() > kReadChunk) c.in.shrink_to_fit();
        if (c.body.capacity() > kReadChunk) std::string().swap(c.body);
        c.wait_limit = now_ns() + ns(core.opts.idle_timeout);
    }

    void refuse(Conn& c, int status, const std::string& why) {
        core.log_refusal(status, why, c.peer);
        queue(c, HttpReply(status, json_error(why)), true, nullptr);
        c.after = Conn::After::linger;
    }

    // Runs the connection as far as it goes without waiting.
    void advance(Conn& c) {
        for (;;) {
            if (c.out_off < c.out.size()) {
                const Io w = flush(c);
                if (w == Io::again) {
                    c.phase = Phase::io;
                    c.deadline = now_ns() + ns(core.opts.io_timeout);
                    return;
                }
                if (w == Io::eof) return close_conn(c);
            }
            if (c.after == Conn::After::close) {
                ::shutdown(c.fd, SHUT_WR);
                return close_conn(c);
            }
            if (c.after == Conn::After::idle) {
                // Only now: stop() counts the request in flight until its
                // answer is out, and the idle time starts after it.
                c.after = Conn::After::keep;
                to_idle(c);
            }
            if (c.after == Conn::After::linger) start_linger(c);
            bool more = false;
            switch (c.state) {
                case State::idle:
                    more = begin_request(c);
                    break;
                case State::head:
                    more = read_head(c);
                    break;
                case State::body:
                    more = read_body(c);
                    break;
                case State::handling:
                    return;
                case State::linger:
                    more = linger(c);
                    break;
            }
            if (!more || c.closed) return;
        }
    }

    bool begin_request(Conn& c) {
        const HttpServerOptions& o = core.opts;
        if (core.stopping.load()) {
            close_conn(c);  // no new request once stopping, pipelined or not
            return false;
        }
        if (c.burst_turn != turn) {
            c.burst_turn = turn;
            c.burst = 0;
        }
        if (++c.burst > kBurst) {
            // Its bytes stay in its buffers; the next turn drives it, so no
            // deadline of an earlier wait may cut it meanwhile.
            c.deadline = 0;
            c.phase = Phase::none;
            if (!c.queued) ready.push_back(c.id);
            c.queued = true;
            return false;
        }
        if (c.in.empty()) {
            // Between requests (or before the first): idle until a byte comes.
            const Io r = read_some(c);
            if (r == Io::again) {
                wait_read(c, c.first ? Phase::header : Phase::idle, c.wait_limit);
                return false;
            }
            if (r == Io::eof) {
                close_conn(c);
                return false;
            }
        }  // else pipelined behind the last request, or the first one's bytes
        c.head_deadline =
            c.first ? c.started + ns(o.header_timeout) : now_ns() + ns(o.header_timeout);
        begin_in_flight(c);
        c.state = State::head;
        c.scanned = 0;
        c.head_tried = false;
        return true;
    }

    bool read_head(Conn& c) {
        const HttpServerOptions& o = core.opts;
        for (;;) {
            // The head is parsed again only when a line was completed (or it
            // outgrew its limit): a client sending one byte per packet costs
            // one scan per line, not one per byte.
            if (!c.head_tried || c.in.find('\n', c.scanned) != std::string::npos ||
                c.in.size() > o.head.max_head_bytes) {
                c.head_tried = true;
                HeadParse hp = parse_head(c.in, o.head);
                if (hp.state == HeadParse::State::done) return start_request(c, hp);
                if (hp.state == HeadParse::State::error) {
                    refuse(c, hp.status, hp.error);
                    return true;
                }
            }
            c.scanned = c.in.size();
            const Io r = read_some(c);
            if (r == Io::again) {
                wait_read(c, Phase::header, c.head_deadline);
                return false;
            }
            if (r == Io::eof) {
                close_conn(c);
                return false;
            }
        }
    }

    bool start_request(Conn& c, HeadParse& hp) {
        c.in.erase(0, hp.consumed);
        c.head = std::move(hp.head);
        HttpRequest& req = c.head.request;
        req.peer = c.peer_host;
        const bool body_announced =
            c.head.framing == BodyFraming::chunked ||
            (c.head.framing == BodyFraming::length && c.head.content_length > 0);
        c.admission = core.service.admit(req, c.head.framing, c.head.content_length);
        if (c.admission.answer) {
            const bool keep = !body_announced && keep_alive(c, *c.admission.answer);
            queue(c, *c.admission.answer, !keep, &req);
            if (keep) {
                c.after = Conn::After::idle;
                return true;
            }
            if (body_announced) c.after = Conn::After::linger;
            return true;
        }
        if (c.head.framing == BodyFraming::length && c.head.content_length > c.admission.max_body) {
            queue(c, core.service.too_large(req, c.admission.max_body), true, nullptr);
            c.after = Conn::After::linger;
            return true;
        }
        // `100 Continue` only now that the request passed its checks, and
        // only when the client is waiting for it. Never to HTTP/1.0.
        if (c.head.expect_continue && req.minor_version == 1 && body_announced && c.in.empty())
            c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.state = State::body;
        c.body.clear();
        c.body_start = now_ns();
        c.chunked.reset();
        if (c.head.framing == BodyFraming::chunked) c.chunked.emplace(c.admission.max_body);
        return true;
    }

    int64_t body_deadline(const Conn& c, uint64_t bytes) const {
        const auto& o = core.opts;
        return c.body_start + ns(o.body_timeout) +
               static_cast<int64_t>(bytes * 1'000'000'000ull /
                                    std::max<uint64_t>(o.body_min_rate, 1));
    }

    // The peer closed its side before the body was whole: 400, never
    // processed.
    void incomplete(Conn& c) {
        core.counters.incomplete.add(1);
        queue(c, HttpReply(400, R"({"error":"incomplete body"})"), true, nullptr);
    }

    // A request that ends unanswered by the service (refused, lingering):
    // its bytes and their share of max_body_memory go back.
    void drop_body(Conn& c) {
        std::string().swap(c.in);
        std::string().swap(c.body);
        c.chunked.reset();
        c.body_lease.release();
    }

    // Counts what the body holds so far towards max_body_memory; past it,
    // 503 and close.
    bool hold_body(Conn& c, uint64_t bytes) {
        if (core.hold_body(c.body_lease, bytes, c.peer)) return true;
        drop_body(c);  // before the answer goes: nothing of it is kept
        queue(c, ServerContext::body_memory_full(), true, nullptr);
        c.after = Conn::After::linger;
        return false;
    }

    bool read_body(Conn& c) {
        if (c.head.framing == BodyFraming::length) {
            const uint64_t n = c.head.content_length;
            for (;;) {
                // Bytes past n are the next request's (pipelined).
                if (!hold_body(c, std::min<uint64_t>(c.in.size(), n))) return true;
                if (c.in.size() >= n) {
                    if (c.in.size() == n) {
                        c.body.swap(c.in);  // the usual case: nothing pipelined behind it
                        c.in.clear();
                    } else {
                        c.body.assign(c.in, 0, n);
                        c.in.erase(0, n);
                    }
                    return dispatch(c);
                }
                const Io r = read_some(c);
                if (r == Io::again) {
                    wait_read(c, Phase::body, body_deadline(c, n));
                    return false;
                }
                if (r == Io::eof) {
                    incomplete(c);
                    return true;
                }
            }
        }
        if (c.head.framing == BodyFraming::chunked) {
            for (;;) {
                size_t used = 0;
                const auto status = c.chunked->feed(c.in, used, c.body);
                c.in.erase(0, used);
                // What is left in c.in once done is the next request's.
                if (status == ChunkedDecoder::Status::done)
                    return hold_body(c, c.body.size()) ? dispatch(c) : true;
                if (status == ChunkedDecoder::Status::error) {
                    refuse(c, 400, c.chunked->error());
                    return true;
                }
                if (status == ChunkedDecoder::Status::too_large) {
                    queue(c, core.service.too_large(c.head.request, c.admission.max_body), true,
                          nullptr);
                    c.after = Conn::After::linger;
                    return true;
                }
                // After its own answers: a 503 would invite a retry that can
                // never succeed.
                if (!hold_body(c, c.body.size() + c.in.size())) return true;
                const Io r = read_some(c);
                if (r == Io::again) {
                    wait_read(c, Phase::body, body_deadline(c, c.chunked->decoded()));
                    return false;
                }
                if (r == Io::eof) {
                    incomplete(c);
                    return true;
                }
            }
        }
        return dispatch(c);  // no body
    }

    // The request is whole: the service has it until it answers (on any
    // thread; the answer comes back through post_reply).
    bool dispatch(Conn& c) {
        c.state = State::handling;
        c.deadline = 0;
        c.phase = Phase::none;
        auto owed = std::make_shared<Owed>();
        std::shared_ptr<EventServer::Core> keep = core.shared_from_this();
        core.owe();
        const uint64_t id = c.id;
        Loop* self = this;
        try {
            core.service.handle_async(c.head.request, std::move(c.body), c.admission.context,
                                      [keep, self, id, owed](HttpReply r) {
                                          if (owed->settled.exchange(true)) return;
                                          // Paid even if the hand-over throws:
                                          // stop() must not wait for ever.
                                          const PaidOnExit paid{*keep};
                                          self->post_reply(id, std::move(r));
                                      });
        } catch (const std::exception& e) {
            if (!owed->settled.exchange(true)) {
                core.log.error(core.opts.name, "request failed", {{"error", e.what()}});
                const PaidOnExit paid{core};
                post_reply(id, HttpReply(500, R"({"error":"internal error"})"));
            }
        }
        c.body = std::string();
        return false;  // the answer wakes the connection
    }

    void complete(uint64_t id, HttpReply reply) {
        auto it = conns.find(id);
        if (it == conns.end()) return;  // closed meanwhile (stop)
        Conn& c = *it->second;
        if (c.closed || c.state != State::handling) return;
        c.body_lease.release();  // the service is done with the body
        const bool keep = keep_alive(c, reply);
        queue(c, reply, !keep, &c.head.request);
        if (keep) c.after = Conn::After::idle;
        c.state = State::idle;  // nothing more is owed
        drive(it);
    }

    // After an answer sent before the whole request was read: stop sending,
    // then read and discard for a moment, so that closing with unread bytes
    // does not reset the connection before the peer has read the answer.
    void start_linger(Conn& c) {
        c.after = Conn::After::keep;
        c.state = State::linger;
        ::shutdown(c.fd, SHUT_WR);
        // Nothing read from now on is kept: the memory and its share of
        // max_body_memory go back at once, not when the linger ends.
        drop_body(c);
        c.discarded = 0;
        c.phase = Phase::linger;
        c.deadline = now_ns() + kLingerNs;
    }

    bool linger(Conn& c) {
        for (;;) {
            const Io r = read_some(c);
            if (r == Io::again) return false;  // the linger deadline stands
            if (r == Io::eof) {
                close_conn(c);
                return false;
            }
            c.discarded += c.in.size();
            c.in.clear();
            if (c.discarded >= kLingerBytes) {
                close_conn(c);
                return false;
            }
        }
    }
};

EventServer::Core::~Core() = default;

EventServer::EventServer(HttpServerOptions options, HttpService& service, Logger& log,
                         Metrics& metrics) {
    if (options.tls.enabled())
        throw std::runtime_error("the event-loop server does not serve TLS (use HttpServer)");
    core_ = std::make_shared<Core>(std::move(options), service, log, metrics);
}

EventServer::~EventServer() {
    stop(milliseconds(0));
}

void EventServer::start() {
    Core& c = *core_;
    const HttpServerOptions& o = c.opts;
    int fd = -1;
    if (o.inherited_fd >= 0) {
        fd = o.inherited_fd;
        const int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
            throw sys_error("the inherited listening socket");
    } else {
        Poco::Net::SocketAddress at(o.address, o.port);
        fd = ::socket(at.family() == Poco::Net::AddressFamily::IPv6 ? AF_INET6 : AF_INET,
                      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) throw sys_error("socket");
        const int one = 1;
        // SO_REUSEADDR (a restart binds at once) but not SO_REUSEPORT: a
        // second host on the port fails instead of splitting the traffic.
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, at.addr(), at.length()) != 0) {
            auto e = sys_error("bind " + at.toString());
            ::close(fd);
            throw e;
        }
        if (::listen(fd, 1024) != 0) {
            auto e = sys_error("listen " + at.toString());
            ::close(fd);
            throw e;
        }
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        auto e = sys_error("getsockname");
        ::close(fd);
        throw e;
    }
    Poco::Net::SocketAddress bound(reinterpret_cast<const sockaddr*>(&ss), len);
    c.listen_fd = fd;
    c.port = bound.port();
    const Poco::Net::IPAddress ip = bound.host();
    c.host = ip.isWildcard() ? (ip.family() == Poco::Net::IPAddress::IPv6 ? "::1" : "127.0.0.1")
                             : ip.toString();
    const size_t n = o.loops > 0 ? static_cast<size_t>(o.loops)
                                 : std::max(1u, std::thread::hardware_concurrency());
    try {
        for (size_t i = 0; i < n; ++i)
            c.loops.push_back(std::make_unique<Loop>(c, i));
        c.loops[0]->watch(fd, kListenId, EPOLLIN);
        c.loops[0]->listening = true;
    } catch (...) {
        c.loops.clear();
        ::close(fd);
        c.listen_fd = -1;
        throw;
    }
    try {
        for (auto& l : c.loops) {
            Loop* loop = l.get();
            loop->thread = std::thread([loop] { loop->run(); });
        }
    } catch (...) {
        for (auto& l : c.loops) {
            l->finish();
            if (l->thread.joinable()) l->thread.join();
        }
        c.loops.clear();
        ::close(fd);
        c.listen_fd = -1;
        throw;
    }
    c.started = true;
}

void EventServer::stop(milliseconds drain) {
    Core& c = *core_;
    if (!c.started.load() || c.stop_called.exchange(true)) return;
    c.stopping = true;
    for (auto& l : c.loops)
        l->poke();  // stop accepting, close the idle connections
    const auto until = Clock::now() + drain;
    while (c.in_flight.load() > 0 && Clock::now() < until) {
        std::this_thread::sleep_for(milliseconds(5));
        for (auto& l : c.loops)
            l->poke();  // ones that finished their request meanwhile
    }
    for (auto& l : c.loops)
        l->finish();
    for (auto& l : c.loops)
        if (l->thread.joinable()) l->thread.join();
    ::close(c.listen_fd);
    c.listen_fd = -1;
    // The service's answers still owed (a commit in progress) must come
    // back before it may go: they call into it.
    std::unique_lock lk(c.owed_mu);
    c.owed_cv.wait(lk, [&] { return c.owed == 0; });
    c.started = false;
}

uint16_t EventServer::port() const {
    return core_->started ? core_->port : 0;
}

std::string EventServer::local_host() const {
    return core_->started ? core_->host : "";
}

bool EventServer::stopping() const {
    return core_->stopping.load();
}

}  // namespace clayhook
