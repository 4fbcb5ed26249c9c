#include "http/HttpServer.h"

#include "http/ServerContext.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/ServerSocketImpl.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Net/TCPServerParams.h>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_set>

namespace clayhook {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

HttpServerOptions intake_http_options(const ListenerConfig& l) {
    HttpServerOptions o;
    o.name = "intake";
    o.address = l.address;
    o.port = l.port;
    o.tls = l.tls;
    o.threads = l.threads;
    o.loops = l.loops;
    o.max_queued = l.max_queued;
    o.max_connections = l.max_connections;
    o.max_connections_per_peer = l.max_connections_per_peer;
    o.keep_alive = l.keep_alive;
    o.header_timeout = l.header_timeout;
    o.body_timeout = l.body_timeout;
    o.body_min_rate = l.body_min_rate;
    o.max_body_memory = l.max_body_memory;
    o.idle_timeout = l.idle_timeout;
    o.io_timeout = l.read_timeout;
    return o;
}

namespace {

// A listening socket systemd opened (socket activation), wrapped so that
// Poco's TCPServer accepts on it. Poco has no public way to adopt a
// descriptor; its protected ones are used here.
class InheritedSocketImpl final : public Poco::Net::ServerSocketImpl {
  public:
    explicit InheritedSocketImpl(int fd) { reset(fd); }
};
class InheritedServerSocket final : public Poco::Net::ServerSocket {
  public:
    explicit InheritedServerSocket(int fd) : ServerSocket(new InheritedSocketImpl(fd), true) {}
};

// One connection as the watchdog sees it: its socket, the deadline of what
// it waits for now, and whether it is between requests.
struct Watch {
    int fd = -1;
    std::atomic<int64_t> deadline{0};  // steady clock, ns since epoch; 0: none
    std::atomic<bool> idle{true};
    std::atomic<bool> cut{false};  // shut down by the watchdog or by stop()
};

int64_t ticks(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

struct HttpServer::Core : ServerContext {
    std::atomic<const Poco::Net::TCPServer*> server{nullptr};

    std::mutex mu;
    std::unordered_set<Watch*> watches;
    std::condition_variable cv;
    bool watchdog_stop = false;
    std::thread watchdog;

    Core(HttpServerOptions o, HttpService& s, Logger& l, Metrics& m)
        : ServerContext(std::move(o), s, l, m) {}

    void add(Watch* w) {
        std::lock_guard lk(mu);
        watches.insert(w);
    }
    void remove(Watch* w) {
        std::lock_guard lk(mu);
        watches.erase(w);
    }
    // Shuts down the connections that match (all, or the idle ones): their
    // blocked read returns at once.
    void cut(bool idle_only) {
        std::lock_guard lk(mu);
        for (Watch* w : watches) {
            if (idle_only && !w->idle.load()) continue;
            w->cut = true;
            ::shutdown(w->fd, SHUT_RDWR);
        }
    }
    void watchdog_loop() {
        std::unique_lock lk(mu);
        while (!watchdog_stop) {
            cv.wait_for(lk, milliseconds(100));
            int64_t now = ticks(Clock::now());
            for (Watch* w : watches) {
                int64_t d = w->deadline.load();
                if (d != 0 && d < now && !w->cut.exchange(true)) ::shutdown(w->fd, SHUT_RDWR);
            }
        }
    }
};

namespace {

enum class Read { ok, timeout, eof };

class Connection : public Poco::Net::TCPServerConnection {
  public:
    Connection(const Poco::Net::StreamSocket& socket, std::shared_ptr<HttpServer::Core> core)
        : TCPServerConnection(socket), core_(std::move(core)) {}

    void run() override {
        Poco::Net::StreamSocket& s = socket();
        watch_.fd = s.impl()->sockfd();
        struct Registration {  // both end before the socket is closed
            HttpServer::Core& c;
            Watch& w;
            Registration(HttpServer::Core& core, Watch& watch) : c(core), w(watch) { c.add(&w); }
            ~Registration() {
                c.remove(&w);
                c.peers.release(w.fd);
            }
        } registration(*core_, watch_);
        try {
            peer_ = s.peerAddress().toString();
            peer_host_ = s.peerAddress().host().toString();
            s.setNoDelay(true);
            const Poco::Timespan io(core_->opts.io_timeout.count() * 1000);
            s.setReceiveTimeout(io);  // each single wait; deadlines: the watchdog
            s.setSendTimeout(io);
            serve();
        } catch (const std::exception& e) {
            core_->log.debug(core_->opts.name, "connection ended", {{"error", e.what()}});
        } catch (...) {
        }
    }

  private:
    struct InFlight {
        std::atomic<int>* n = nullptr;
        void begin(std::atomic<int>& c) {
            if (n == nullptr) (n = &c)->fetch_add(1);
        }
        void end() {
            if (n != nullptr) n->fetch_sub(1);
            n = nullptr;
        }
        ~InFlight() { end(); }
    };

    // Reads what is there (at least one byte) into buf_, waiting until
    // `deadline` at most.
    // The deadline is the watchdog's to enforce (it shuts the socket down);
    // the socket's own timeout, set once, bounds each single wait.
    Read read_more(Clock::time_point deadline) {
        if (deadline <= Clock::now() || watch_.cut) return Read::timeout;
        watch_.deadline = ticks(deadline);
        char tmp[16384];
        int n = 0;
        try {
            n = socket().receiveBytes(tmp, sizeof tmp);
        } catch (const Poco::TimeoutException&) {
            watch_.deadline = 0;
            return Read::timeout;
        } catch (const Poco::Exception&) {
            watch_.deadline = 0;
            return watch_.cut ? Read::timeout : Read::eof;
        }
        watch_.deadline = 0;
        if (n <= 0) return watch_.cut ? Read::timeout : Read::eof;
        buf_.append(tmp, static_cast<size_t>(n));
        return Read::ok;
    }

    bool write(std::string_view bytes) {
        watch_.deadline = ticks(Clock::now() + core_->opts.io_timeout);
        try {
            size_t sent = 0;
            while (sent < bytes.size()) {
                int n = socket().sendBytes(bytes.data() + sent, static_cast<int>(std::min<size_t>(
                                                                    bytes.size() - sent, 1 << 20)));
                if (n <= 0) break;
                sent += static_cast<size_t>(n);
            }
            watch_.deadline = 0;
            return sent == bytes.size();
        } catch (const Poco::Exception&) {
            watch_.deadline = 0;
            return false;
        }
    }

    void answer(const HttpReply& r, bool close, const HttpRequest* req = nullptr) {
        write(serialize(r, reply_framing(req, close)));
    }

    // More of a body. False when the connection is done for: the deadline
    // passed (closed unanswered), or the peer closed its side before the
    // body was whole (400, never processed).
    bool read_body(Clock::time_point deadline) {
        switch (read_more(deadline)) {
            case Read::ok:
                return true;
            case Read::timeout:
                core_->counters.timeout_body.add(1);
                return false;
            case Read::eof:
                core_->counters.incomplete.add(1);
                answer(HttpReply(400, R"({"error":"incomplete body"})"), true);
                return false;
        }
        return false;
    }

    // After an answer sent before the whole request was read: stop sending,
    // then read and discard for a moment, so that closing with unread bytes
    // does not reset the connection before the peer has read the answer.
    void linger_close() {
        try {
            socket().shutdownSend();
        } catch (const Poco::Exception&) {
            return;
        }
        auto until = Clock::now() + milliseconds(1000);
        size_t discarded = 0;
        while (discarded < 256 * 1024) {
            buf_.clear();
            if (read_more(until) != Read::ok) break;
            discarded += buf_.size();
        }
    }

    void refuse(int status, const std::string& why) {
        core_->log_refusal(status, why, peer_);
        answer(HttpReply(status, json_error(why)), true);
        linger_close();
    }

    void serve() {
        const HttpServerOptions& o = core_->opts;
        bool first = true;
        auto started = Clock::now();
        while (!core_->stopping) {
            InFlight in_flight;
            Clock::time_point head_deadline = started + o.header_timeout;
            if (buf_.empty()) {
                // Between requests (or before the first): idle until a byte comes.
                watch_.idle = true;
                if (core_->stopping) return;
                Read r = read_more(first ? head_deadline : Clock::now() + o.idle_timeout);
                watch_.idle = false;
                if (r != Read::ok) {
                    if (r == Read::timeout)
                        (first ? core_->counters.timeout_header : core_->counters.timeout_idle)
                            .add(1);
                    return;
                }
                if (!first) head_deadline = Clock::now() + o.header_timeout;
            } else if (!first) {
                head_deadline = Clock::now() + o.header_timeout;  // pipelined
            }
            watch_.idle = false;
            in_flight.begin(core_->in_flight);

            // The head is parsed again only when a line was completed (or the
            // head outgrew its limit): a client sending one byte per packet
            // costs one scan per line, not one per byte.
            HeadParse hp = parse_head(buf_, o.head);
            while (hp.state == HeadParse::State::incomplete) {
                const size_t before = buf_.size();
                Read r = read_more(head_deadline);
                if (r == Read::timeout) core_->counters.timeout_header.add(1);
                if (r != Read::ok) return;
                if (buf_.find('\n', before) != std::string::npos ||
                    buf_.size() > o.head.max_head_bytes)
                    hp = parse_head(buf_, o.head);
            }
            if (hp.state == HeadParse::State::error) return refuse(hp.status, hp.error);
            buf_.erase(0, hp.consumed);
            RequestHead& head = hp.head;
            HttpRequest& req = head.request;
            req.peer = peer_host_;
            const bool body_announced =
                head.framing == BodyFraming::chunked ||
                (head.framing == BodyFraming::length && head.content_length > 0);

            HttpService::Admission admission =
                core_->service.admit(req, head.framing, head.content_length);
            if (admission.answer) {
                bool keep = !body_announced && keep_alive(head, *admission.answer);
                answer(*admission.answer, !keep, &req);
                if (keep) {
                    first = false;
                    continue;
                }
                if (body_announced) linger_close();
                return;
            }
            if (head.framing == BodyFraming::length && head.content_length > admission.max_body) {
                answer(core_->service.too_large(req, admission.max_body), true);
                return linger_close();
            }
            // `100 Continue` only now that the request passed its checks, and
            // only when the client is waiting for it.
            // Never to HTTP/1.0 (RFC 9110 §10.1.1).
            if (head.expect_continue && req.minor_version == 1 && body_announced && buf_.empty() &&
                !write("HTTP/1.1 100 Continue\r\n\r\n"))
                return;

            std::string body;
            // What the body holds as it arrives, until it is answered; past
            // max_body_memory, 503.
            BodyBudget::Lease body_lease;
            // A refused body: given back before the linger, which keeps none
            // of it.
            auto drop_body = [&] {
                std::string().swap(body);
                std::string().swap(buf_);
                body_lease.release();
            };
            auto hold = [&](uint64_t bytes) {
                if (core_->hold_body(body_lease, bytes, peer_)) return true;
                drop_body();  // before the answer goes: nothing of it is kept
                answer(ServerContext::body_memory_full(), true);
                linger_close();
                return false;
            };
            auto body_start = Clock::now();
            auto body_deadline = [&](uint64_t bytes) {
                return body_start + o.body_timeout +
                       milliseconds(bytes * 1000 / std::max<uint64_t>(o.body_min_rate, 1));
            };
            if (head.framing == BodyFraming::length) {
                const uint64_t n = head.content_length;
                for (;;) {
                    // Bytes past n are the next request's (pipelined).
                    if (!hold(std::min<uint64_t>(buf_.size(), n))) return;
                    if (buf_.size() >= n) break;
                    if (!read_body(body_deadline(n))) return;
                }
                if (buf_.size() == n) {
                    body.swap(buf_);  // the usual case: nothing pipelined behind it
                } else {
                    body.assign(buf_, 0, n);
                    buf_.erase(0, n);
                }
            } else if (head.framing == BodyFraming::chunked) {
                ChunkedDecoder decoder(admission.max_body);
                while (true) {
                    size_t used = 0;
                    auto status = decoder.feed(buf_, used, body);
                    buf_.erase(0, used);
                    // What is left in buf_ once done is the next request's.
                    if (status == ChunkedDecoder::Status::done) {
                        if (!hold(body.size())) return;
                        break;
                    }
                    // Its own answers first: a 503 would invite a retry that
                    // can never succeed.
                    if (status == ChunkedDecoder::Status::error) {
                        drop_body();
                        return refuse(400, decoder.error());
                    }
                    if (status == ChunkedDecoder::Status::too_large) {
                        answer(core_->service.too_large(req, admission.max_body), true);
                        drop_body();
                        return linger_close();
                    }
                    if (!hold(body.size() + buf_.size())) return;
                    if (!read_body(body_deadline(decoder.decoded()))) return;
                }
            }

            HttpReply resp;
            try {
                resp = core_->service.handle(req, std::move(body), admission.context);
            } catch (const std::exception& e) {
                core_->log.error(o.name, "request failed", {{"error", e.what()}});
                resp = HttpReply(500, R"({"error":"internal error"})");
            }
            body_lease.release();  // the service is done with the body
            bool keep = keep_alive(head, resp);
            if (!write(serialize(resp, reply_framing(&req, !keep))) || !keep) {
                try {
                    socket().shutdownSend();
                } catch (const Poco::Exception&) {
                }
                return;
            }
            first = false;
        }
    }

    bool keep_alive(const RequestHead& head, const HttpReply& resp) const {
        return core_->keep_alive(head.keep_alive, resp);
    }

    std::shared_ptr<HttpServer::Core> core_;
    Watch watch_;
    std::string buf_;
    std::string peer_;       // host:port, for logs
    std::string peer_host_;  // host, for the service
};

class Factory : public Poco::Net::TCPServerConnectionFactory {
  public:
    explicit Factory(std::shared_ptr<HttpServer::Core> core) : core_(std::move(core)) {}
    Poco::Net::TCPServerConnection* createConnection(
        const Poco::Net::StreamSocket& socket) override {
        return new Connection(socket, core_);
    }

  private:
    std::shared_ptr<HttpServer::Core> core_;
};

// At accept, before any byte is read: the limit on connections (served +
// queued) and the per-peer cap. A connection past either gets a bare 503
// with Retry-After and is closed, so a sender over the limit is told to come
// back rather than silently dropped.
class AcceptFilter : public Poco::Net::TCPServerConnectionFilter {
  public:
    explicit AcceptFilter(std::shared_ptr<HttpServer::Core> core) : core_(std::move(core)) {}

    bool accept(const Poco::Net::StreamSocket& socket) override {
        const auto& o = core_->opts;
        const Poco::Net::TCPServer* server = core_->server.load();
        int limit = std::min(o.max_connections, o.threads + o.max_queued);
        if (server != nullptr &&
            server->currentConnections() + server->queuedConnections() >= limit) {
            core_->counters.refused_limit.add(1);
            busy(socket, R"({"error":"too many connections"})");
            return false;
        }
        std::string peer;
        try {
            peer = PeerLimiter::peer_key(socket.peerAddress().host());
        } catch (const Poco::Exception&) {
            return false;  // already gone
        }
        if (!core_->peers.acquire(socket.impl()->sockfd(), peer)) {
            core_->counters.refused_peer.add(1);
            busy(socket, R"({"error":"too many connections from this address"})");
            return false;
        }
        return true;
    }

  private:
    void busy(const Poco::Net::StreamSocket& socket, const std::string& body) {
        // With TLS the first write would run the handshake, blocking the
        // acceptor on a client that never sends one: close unanswered.
        if (core_->opts.tls.enabled()) return;
        std::string bytes = busy_answer(body);
        try {
            // A fresh socket's send buffer is empty: this never blocks the acceptor.
            Poco::Net::StreamSocket s(socket);
            s.sendBytes(bytes.data(), static_cast<int>(bytes.size()));
            s.shutdownSend();
        } catch (...) {
        }
    }

    std::shared_ptr<HttpServer::Core> core_;
};

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpService& service, Logger& log,
                       Metrics& metrics)
    : options_(options), core_(std::make_shared<Core>(std::move(options), service, log, metrics)) {}

HttpServer::~HttpServer() {
    stop(milliseconds(0));
}

void HttpServer::start() {
    const auto& o = options_;
    if (o.inherited_fd >= 0 && o.tls.enabled())
        throw std::runtime_error(
            "listener.tls cannot be used with socket activation (a socket passed by systemd); "
            "terminate TLS in front of the host or start it without the .socket unit");
    Poco::Net::SocketAddress at(o.address, o.port);
    std::unique_ptr<Poco::Net::ServerSocket> socket;
    if (o.tls.enabled()) {
        // For operators who expose the host directly: TLS 1.2 and up, the
        // certificate and key from the config; clients are not asked for one.
        Poco::Net::initializeSSL();
        Poco::Net::Context::Ptr ctx = new Poco::Net::Context(
            Poco::Net::Context::TLS_SERVER_USE, o.tls.key_file, o.tls.cert_file, "",
            Poco::Net::Context::VERIFY_NONE, 9, false, "HIGH:!aNULL:!MD5:!RC4");
        ctx->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 |
                              Poco::Net::Context::PROTO_TLSV1 | Poco::Net::Context::PROTO_TLSV1_1);
        socket = std::make_unique<Poco::Net::SecureServerSocket>(ctx);
    } else if (o.inherited_fd >= 0) {
        socket = std::make_unique<InheritedServerSocket>(o.inherited_fd);
    } else {
        socket = std::make_unique<Poco::Net::ServerSocket>();
    }
    if (o.inherited_fd < 0) {
        // SO_REUSEADDR (a restart binds at once) but not SO_REUSEPORT.
        socket->bind(at, true, false);
        socket->listen(1024);
    }
    auto* params = new Poco::Net::TCPServerParams;
    params->setMaxThreads(o.threads);
    params->setMaxQueued(o.max_queued);
    pool_ = std::make_unique<Poco::ThreadPool>(2, o.threads + 1, 60, 1024 * 1024);
    server_ = std::make_unique<Poco::Net::TCPServer>(new Factory(core_), *pool_, *socket, params);
    core_->server = server_.get();
    server_->setConnectionFilter(new AcceptFilter(core_));
    core_->watchdog = std::thread([core = core_] { core->watchdog_loop(); });
    server_->start();
}

void HttpServer::stop(milliseconds drain) {
    if (!server_) return;
    core_->stopping = true;
    server_->stop();   // no more accepts; queued connections are dropped
    core_->cut(true);  // idle connections end now
    auto until = Clock::now() + drain;
    while (core_->in_flight.load() > 0 && Clock::now() < until) {
        std::this_thread::sleep_for(milliseconds(5));
        core_->cut(true);  // ones that finished their request meanwhile
    }
    core_->cut(false);
    pool_->joinAll();
    {
        std::lock_guard lk(core_->mu);
        core_->watchdog_stop = true;
    }
    core_->cv.notify_all();
    if (core_->watchdog.joinable()) core_->watchdog.join();
    core_->server = nullptr;
    server_.reset();
    pool_.reset();
}

uint16_t HttpServer::port() const {
    return server_ ? server_->port() : 0;
}

std::string HttpServer::local_host() const {
    if (!server_) return "";
    const Poco::Net::IPAddress ip = server_->socket().address().host();
    if (ip.isWildcard()) return ip.family() == Poco::Net::IPAddress::IPv6 ? "::1" : "127.0.0.1";
    return ip.toString();
}

bool HttpServer::stopping() const {
    return core_->stopping.load();
}

}  // namespace clayhook
