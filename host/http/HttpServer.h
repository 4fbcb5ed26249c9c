#pragma once

// A strict HTTP/1.1 server on Poco's TCPServer (its acceptor, thread pool,
// queue and TLS sockets), with its own request framing (RequestParser) and
// deadlines. Both the public intake and the admin API run on it.
//
// Per connection, in one pool thread:
//   - the request head must arrive within `header_timeout` (from the
//     connection's start, or from the first byte of a keep-alive request);
//   - the body within `body_timeout` + its size / `body_min_rate` (a chunked
//     body: the size received so far), counted from the end of the head;
//   - between keep-alive requests the connection may idle `idle_timeout`;
//   - each single wait for the socket (a read or a send) at most `io_timeout`.
// Past any of these the connection is closed without an answer and counted.
// The deadlines are enforced by one watchdog thread, which every 100 ms
// shuts down the sockets past theirs (so a wait inside TLS cannot outlive
// one either); the socket's own timeout, set once per connection, is
// `io_timeout`.
//
// At accept: connections being served plus queued are capped
// (`max_connections`, and `threads` + `max_queued`), and so are connections
// from one peer (`max_connections_per_peer`; IPv6 peers by /64); past either
// the connection gets a bare 503 with Retry-After: 1 and is closed.

#include "config/Config.h"
#include "http/HttpMessage.h"
#include "http/Listener.h"
#include "http/RequestParser.h"

#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace clayhook {

class Logger;
class Metrics;

struct HttpServerOptions {
    std::string name = "intake";  // metric names (clayhook_<name>_…) and log component
    std::string address = "127.0.0.1";
    uint16_t port = 0;
    TlsConfig tls;
    int threads = 64;  // HttpServer: connections served at once
    int loops = 0;     // EventServer: event loops (threads); 0: one per CPU
    int max_queued = 256;
    int max_connections = 1024;
    int max_connections_per_peer = 0;  // 0: no cap
    bool keep_alive = true;
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds body_timeout{10'000};
    uint64_t body_min_rate = 64 * 1024;  // bytes per second
    uint64_t max_body_memory = 0;        // request bodies held at once (BodyBudget); 0: no cap
    std::chrono::milliseconds idle_timeout{15'000};
    std::chrono::milliseconds io_timeout{10'000};
    HeadLimits head;
    // A listening TCP socket handed over (systemd socket activation): used
    // as it is, `address` and `port` ignored. The server owns it from start().
    int inherited_fd = -1;
};

// The options of the public listener, from its config section.
HttpServerOptions intake_http_options(const ListenerConfig& listener);

// What the server asks of the application, per request. Called from pool
// threads, concurrently.
class HttpService {
  public:
    virtual ~HttpService() = default;

    struct Admission {
        std::optional<HttpReply> answer;      // set: sent at once, the body left unread
        uint64_t max_body = 0;                // else: the body is read up to this size
        std::shared_ptr<const void> context;  // handed to handle(): what admit() decided on
    };
    // After the head, before any of the body is read (and before a
    // `100 Continue` is sent). An answer given here for a request that
    // announced a body closes the connection after it.
    virtual Admission admit(const HttpRequest& request, BodyFraming framing,
                            uint64_t content_length) = 0;
    // The body passed `max_body` while being read (chunked, or a declared
    // length past it when admit() let it through). The connection closes.
    virtual HttpReply too_large(const HttpRequest& request, uint64_t max_body) = 0;
    // The whole request, its body complete.
    virtual HttpReply handle(const HttpRequest& request, std::string body,
                             const std::shared_ptr<const void>& context) = 0;

    // Hands the answer back: called exactly once, from any thread, possibly
    // before handle_async() returns.
    using Respond = std::function<void(HttpReply)>;
    // handle() for a server whose thread must not wait (EventServer): what
    // would block (the store's commit) goes on elsewhere, and `respond` is
    // called once the answer is known. `request` is valid only until this
    // returns. The default answers with handle(), on the calling thread.
    virtual void handle_async(const HttpRequest& request, std::string body,
                              const std::shared_ptr<const void>& context, Respond respond) {
        respond(handle(request, std::move(body), context));
    }
};

class HttpServer final : public Listener {
  public:
    // `service`, `log` and `metrics` must outlive the server.
    HttpServer(HttpServerOptions options, HttpService& service, Logger& log, Metrics& metrics);
    ~HttpServer() override;
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds (without SO_REUSEPORT: a second host on the port fails instead
    // of splitting the traffic) and starts accepting. Throws when it cannot.
    void start() override;
    // Listener::stop; waits for every connection's thread.
    void stop(std::chrono::milliseconds drain) override;
    uint16_t port() const override;
    std::string local_host() const override;
    bool stopping() const override;

    struct Core;  // shared with the connections; defined in the .cpp

  private:
    HttpServerOptions options_;
    std::shared_ptr<Core> core_;
    std::unique_ptr<Poco::ThreadPool> pool_;  // outlives server_
    std::unique_ptr<Poco::Net::TCPServer> server_;
};

}  // namespace clayhook
