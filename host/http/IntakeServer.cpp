#include "http/IntakeServer.h"

#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "routing/Routes.h"
#include "store/Store.h"

#include <clayhook/json.hpp>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>

#include <chrono>
#include <istream>
#include <mutex>
#include <thread>
#include <vector>

namespace clayhook {

using Poco::Net::HTTPRequestHandler;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

// What a reload replaces: the sources (with their secrets) and the fan-out.
// Immutable once published; a request works on the one it started with.
struct IntakeRoutes {
    std::map<std::string, std::unique_ptr<SourceRuntime>, std::less<>> sources;
    std::shared_ptr<const Routes> fanout;  // which plugins get a delivery; null: none
};

struct IntakeServer::Shared {
    mutable std::mutex routes_mu;
    std::shared_ptr<const IntakeRoutes> routes;  // swapped whole by update()
    std::shared_ptr<const IntakeRoutes> current() const {
        std::lock_guard lk(routes_mu);
        return routes;
    }
    Store& store;
    Logger& log;
    Metrics& metrics;
    std::function<bool()> ready;
    std::atomic<bool> accepting{true};
    std::atomic<int> in_flight{0};  // requests between their first byte and their answer
    ListenerConfig listener;

    Shared(Store& s, Logger& l, Metrics& m, std::function<bool()> r)
        : store(s), log(l), metrics(m), ready(std::move(r)) {}
};

SourceRuntime::SourceRuntime(const SourceConfig& c, Metrics& metrics)
    : config(c), verifier(c.verify) {
    std::string src = "source=\"" + c.name + "\"";
    accepted = &metrics.counter("clayhook_intake_requests_total",
                                "outcome=\"accepted\"," + src + ",status=\"200\"");
    duplicates = &metrics.counter("clayhook_intake_duplicates_total", src);
    bytes = &metrics.counter("clayhook_intake_bytes_total", src);
    latency = &metrics.histogram("clayhook_intake_latency_seconds", src,
                                 {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
}

namespace {

void send(HTTPServerResponse& resp, HTTPResponse::HTTPStatus status, std::string_view body,
          const char* type = "application/json") {
    resp.setStatusAndReason(status);
    resp.setContentType(type);
    resp.sendBuffer(body.data(), body.size());
}

// The idempotency key: the delivery-id header, else the configured body
// fields joined, else the body's hash. Prefixed by which one it is, so that
// a header value can never collide with a field combination.
std::string idempotency_key(const IdempotencyConfig& ic, const HTTPServerRequest& req,
                            const json::Value& doc, std::string_view body) {
    if (!ic.header.empty()) {
        auto it = req.find(ic.header);
        if (it != req.end() && !it->second.empty()) return "h:" + it->second;
    }
    if (!ic.fields.empty()) {
        std::string key = "f:";
        bool all = true;
        for (const auto& f : ic.fields) {
            const json::Value* v = doc.at_path(f);
            if (v == nullptr || v->is_null()) {
                all = false;
                break;
            }
            // The JSON text, so that "42" and 42 stay different keys.
            std::string part = json::dump(*v);
            // Length-prefixed so ("a|b","c") and ("a","b|c") stay apart.
            key += std::to_string(part.size()) + ":" + part + "|";
        }
        if (all) return key;
    }
    return "b:" + sha256_hex(body);
}

class IntakeHandler : public HTTPRequestHandler {
  public:
    explicit IntakeHandler(std::shared_ptr<IntakeServer::Shared> s) : s_(std::move(s)) {}

    void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
        struct InFlight {
            std::atomic<int>& n;
            explicit InFlight(std::atomic<int>& c) : n(c) { n.fetch_add(1); }
            ~InFlight() { n.fetch_sub(1); }
        } in_flight{s_->in_flight};
        // Shutting down: this answer is the connection's last.
        if (!s_->accepting.load(std::memory_order_relaxed)) resp.setKeepAlive(false);
        try {
            handle(req, resp);
        } catch (const std::exception& e) {
            // Nothing may escape into Poco's thread: answer 500 if still possible.
            s_->log.error("intake", "request failed", {{"error", e.what()}});
            if (!resp.sent())
                send(resp, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR,
                     R"({"error":"internal error"})");
        }
    }

  private:
    void count(const std::string& source, const char* outcome, int status) {
        s_->metrics.counter_add("clayhook_intake_requests_total",
                                "outcome=\"" + std::string(outcome) + "\",source=\"" + source +
                                    "\",status=\"" + std::to_string(status) + "\"",
                                1);
    }

    void reject(HTTPServerRequest& req, HTTPServerResponse& resp, const std::string& source,
                HTTPResponse::HTTPStatus status, const char* outcome, std::string_view body,
                const std::string& reason) {
        count(source, outcome, status);
        s_->log.warn("intake", "request rejected",
                     {{"source", source},
                      {"status", std::to_string(status)},
                      {"reason", reason},
                      {"remote", req.clientAddress().toString()}});
        send(resp, status, body);
    }

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
        std::string_view uri = req.getURI();
        std::string_view path = uri.substr(0, uri.find('?'));
        if (path == "/healthz") return send(resp, HTTPResponse::HTTP_OK, "ok\n", "text/plain");
        if (path == "/readyz") {
            bool ok = s_->accepting && s_->store.writable() && s_->ready();
            return send(resp, ok ? HTTPResponse::HTTP_OK : HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                        ok ? "ready\n" : "not ready\n", "text/plain");
        }
        if (path == "/metrics") {
            s_->metrics.gauge_set("clayhook_store_queue_depth", "",
                                  static_cast<double>(s_->store.queue_depth()));
            return send(resp, HTTPResponse::HTTP_OK, s_->metrics.render(),
                        "text/plain; version=0.0.4");
        }
        // One snapshot for the whole request: a reload swapping the sources
        // or the plugins meanwhile does not change what this request sees.
        std::shared_ptr<const IntakeRoutes> gen = s_->current();
        auto route = gen->sources.find(path);
        if (route == gen->sources.end())
            return reject(req, resp, "", HTTPResponse::HTTP_NOT_FOUND, "not_found",
                          R"({"error":"not found"})", "no source at " + std::string(path));
        const SourceRuntime& src = *route->second;
        const std::string& name = src.config.name;
        auto started = std::chrono::steady_clock::now();
        struct Timer {  // observes the latency of every answer, whatever it was
            const SourceRuntime& s;
            std::chrono::steady_clock::time_point t0;
            ~Timer() {
                s.latency->observe(
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
        } timer{src, started};
        if (req.getMethod() != "POST") {
            resp.set("Allow", "POST");
            return reject(req, resp, name, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "bad_method",
                          R"({"error":"method not allowed"})", "method " + req.getMethod());
        }

        // Size cap before reading: a declared length past the cap is refused
        // unread, and the connection closed so the body is never consumed.
        const uint64_t cap = src.config.max_body_bytes;
        if (req.hasContentLength() && req.getContentLength64() > static_cast<int64_t>(cap)) {
            resp.setKeepAlive(false);
            return reject(req, resp, name, HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE, "too_large",
                          R"({"error":"body too large"})",
                          "content-length " + std::to_string(req.getContentLength64()));
        }
        std::string body;
        if (req.hasContentLength()) body.reserve(static_cast<size_t>(req.getContentLength64()));
        std::istream& in = req.stream();
        char buf[16384];
        while (in) {
            in.read(buf, sizeof buf);
            auto n = static_cast<size_t>(in.gcount());
            if (n == 0) break;
            if (body.size() + n > cap) {
                // Chunked (or lying) sender: cut off at the cap.
                resp.setKeepAlive(false);
                return reject(req, resp, name, HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "too_large", R"({"error":"body too large"})",
                              "body past " + std::to_string(cap) + " bytes");
            }
            body.append(buf, n);
        }
        src.bytes->add(static_cast<double>(body.size()));

        auto failure = src.verifier.verify(
            body,
            [&req](std::string_view h) -> const std::string* {
                auto it = req.find(std::string(h));
                return it == req.end() ? nullptr : &it->second;
            },
            std::chrono::system_clock::now());
        if (failure != VerifyFailure::none) {
            s_->metrics.counter_add(
                "clayhook_intake_verify_failures_total",
                "reason=\"" + std::string(failure_name(failure)) + "\",source=\"" + name + "\"", 1);
            return reject(req, resp, name, HTTPResponse::HTTP_UNAUTHORIZED, "unauthorized",
                          R"({"error":"verification failed"})", failure_name(failure));
        }

        json::Value doc;
        try {
            doc = json::parse(body);
        } catch (const json::ParseError& e) {
            return reject(req, resp, name, HTTPResponse::HTTP_BAD_REQUEST, "malformed",
                          R"({"error":"malformed JSON"})", e.what());
        }
        std::string type;
        const auto& et = src.config.event_type;
        if (et.from == EventTypeFrom::fixed) {
            type = et.value;
        } else if (et.from == EventTypeFrom::header) {
            auto it = req.find(et.header);
            if (it != req.end()) type = it->second;
        } else if (const json::Value* v = doc.at_path(et.field); v && v->is_string()) {
            type = v->as_string();
        }
        if (type.empty())
            return reject(req, resp, name, HTTPResponse::HTTP_BAD_REQUEST, "no_event_type",
                          R"({"error":"missing event type"})", "no event type");

        std::string key = idempotency_key(src.config.idempotency, req, doc, body);
        std::vector<NewDelivery> deliveries;
        if (gen->fanout) gen->fanout->deliveries_for(type, doc, deliveries);
        NewEvent ev{name,
                    type,
                    key,
                    body,
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count(),
                    deliveries};
        InsertResult r = s_->store.insert(ev);
        switch (r.status) {
            case InsertStatus::stored:
                src.accepted->add(1);
                return send(resp, HTTPResponse::HTTP_OK,
                            R"({"received":true,"id":)" + json::quote(r.id) + "}");
            case InsertStatus::duplicate:
                count(name, "duplicate", 200);
                src.duplicates->add(1);
                return send(resp, HTTPResponse::HTTP_OK,
                            R"({"received":true,"duplicate":true,"id":)" + json::quote(r.id) + "}");
            case InsertStatus::overloaded:
            case InsertStatus::unavailable:
                resp.set("Retry-After", "1");
                return reject(req, resp, name, HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                              r.status == InsertStatus::overloaded ? "overloaded" : "store_error",
                              R"({"error":"try again later"})",
                              r.status == InsertStatus::overloaded ? "store queue full" : r.error);
        }
    }

    std::shared_ptr<IntakeServer::Shared> s_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
  public:
    explicit Factory(std::shared_ptr<IntakeServer::Shared> s) : s_(std::move(s)) {}
    HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
        return new IntakeHandler(s_);
    }

  private:
    std::shared_ptr<IntakeServer::Shared> s_;
};

// listener.max_connections, and Poco's own bound (threads + max_queued): a
// connection past the limit gets a bare 503 with Retry-After and is closed
// at once, before any byte of its request is read. A flood of idle
// keep-alive connections cannot pin every worker thread and the queue, and a
// sender over the limit is told to come back rather than silently dropped
// (Poco alone would close a connection past its queue without a word).
class ConnectionLimit : public Poco::Net::TCPServerConnectionFilter {
  public:
    ConnectionLimit(int max, Metrics& metrics)
        : max_(max), refused_(metrics.counter("clayhook_intake_connections_refused_total")) {}
    void attach(const Poco::Net::TCPServer* server) { server_ = server; }
    bool accept(const Poco::Net::StreamSocket& socket) override {
        const Poco::Net::TCPServer* server = server_.load();
        if (server != nullptr &&
            server->currentConnections() + server->queuedConnections() >= max_) {
            refused_.add(1);
            static const std::string body = R"({"error":"too many connections"})";
            static const std::string busy =
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                "Content-Type: application/json\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
            try {
                // A fresh socket's send buffer is empty: this never blocks the acceptor.
                Poco::Net::StreamSocket s(socket);
                s.sendBytes(busy.data(), static_cast<int>(busy.size()));
                s.shutdownSend();
            } catch (...) {
            }
            return false;
        }
        return true;
    }

  private:
    int max_;
    MetricValue& refused_;
    std::atomic<const Poco::Net::TCPServer*> server_{nullptr};
};

}  // namespace

IntakeServer::IntakeServer(const Config& config, Store& store, Logger& log, Metrics& metrics,
                           std::function<bool()> ready, std::shared_ptr<const Routes> fanout)
    : shared_(std::make_shared<Shared>(store, log, metrics, std::move(ready))) {
    shared_->listener = config.listener;
    update(config, std::move(fanout));
    auto& batch = metrics.histogram("clayhook_store_commit_batch_size", "",
                                    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
    store.on_commit = [&batch](size_t n) { batch.observe(static_cast<double>(n)); };
    metrics.set_help("clayhook_intake_requests_total",
                     "Webhook requests by source, outcome and status.");
    metrics.set_help("clayhook_intake_latency_seconds",
                     "Time from a request's start to its answer.");
    metrics.set_help("clayhook_store_commit_batch_size", "Deliveries per store transaction.");
}

std::shared_ptr<const IntakeRoutes> IntakeServer::prepare(
    const Config& config, std::shared_ptr<const Routes> fanout) const {
    auto next = std::make_shared<IntakeRoutes>();
    for (const auto& s : config.sources)
        next->sources.emplace(s.path, std::make_unique<SourceRuntime>(s, shared_->metrics));
    next->fanout = std::move(fanout);
    return next;
}

void IntakeServer::publish(std::shared_ptr<const IntakeRoutes> routes) noexcept {
    std::lock_guard lk(shared_->routes_mu);
    shared_->routes = std::move(routes);
}

void IntakeServer::update(const Config& config, std::shared_ptr<const Routes> fanout) {
    publish(prepare(config, std::move(fanout)));
}

IntakeServer::~IntakeServer() {
    stop();
}

void IntakeServer::start() {
    const auto& l = shared_->listener;
    Poco::Net::SocketAddress at(l.address, l.port);
    std::unique_ptr<Poco::Net::ServerSocket> socket;
    if (l.tls.enabled()) {
        // For operators who expose the host directly: TLS 1.2 and up, the
        // certificate and key from the config; clients are not asked for one.
        Poco::Net::initializeSSL();
        Poco::Net::Context::Ptr ctx = new Poco::Net::Context(
            Poco::Net::Context::TLS_SERVER_USE, l.tls.key_file, l.tls.cert_file, "",
            Poco::Net::Context::VERIFY_NONE, 9, false, "HIGH:!aNULL:!MD5:!RC4");
        ctx->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 |
                              Poco::Net::Context::PROTO_TLSV1 | Poco::Net::Context::PROTO_TLSV1_1);
        socket = std::make_unique<Poco::Net::SecureServerSocket>(ctx);
    } else {
        socket = std::make_unique<Poco::Net::ServerSocket>();
    }
    // SO_REUSEADDR (a restart binds at once) but not SO_REUSEPORT, which
    // Poco's (address, backlog) constructor also sets: with it a second host
    // on the same port would start and silently take half the connections.
    socket->bind(at, true, false);
    socket->listen(1024);
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(l.threads);
    params->setMaxQueued(l.max_queued);
    params->setKeepAlive(l.keep_alive);
    params->setTimeout(Poco::Timespan(l.read_timeout.count() * 1000));
    pool_ = std::make_unique<Poco::ThreadPool>(2, l.threads + 1, 60, 256 * 1024);
    server_ =
        std::make_unique<Poco::Net::HTTPServer>(new Factory(shared_), *pool_, *socket, params);
    Poco::AutoPtr<ConnectionLimit> limit = new ConnectionLimit(
        std::min(l.max_connections, l.threads + l.max_queued), shared_->metrics);
    limit->attach(server_.get());
    server_->setConnectionFilter(limit);
    server_->start();
}

void IntakeServer::stop(std::chrono::milliseconds drain) {
    if (!server_) return;
    shared_->accepting = false;
    server_->stopAll(false);  // stop accepting; connections end after their current request
    // Requests already being read or committed finish and get their answer
    // (their deliveries are in the store by then). Idle keep-alive
    // connections would otherwise sit in their read until the keep-alive
    // timeout: once no request is in flight (or the bound passed) they are
    // shut down.
    auto until = std::chrono::steady_clock::now() + drain;
    while (shared_->in_flight.load() > 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    server_->stopAll(true);
    server_.reset();
    pool_->joinAll();  // running handlers finish
    pool_.reset();
}

uint16_t IntakeServer::port() const {
    return server_ ? server_->port() : 0;
}

}  // namespace clayhook
