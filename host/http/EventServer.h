#pragma once

// The intake's HTTP/1.1 server on epoll: a few event loops (one thread each,
// one per CPU by default) own the connections, on non-blocking sockets. It
// frames, times and caps requests exactly as HttpServer does (RequestParser,
// the same deadlines, limits, answers and counters), but no thread waits for
// a request: the service's handle_async() starts the store's commit and
// returns, and the answer comes back to the connection's loop when the commit
// is done. A thread per connection cost two context switches per delivery
// (blocked on the commit, woken by it); here a loop answers every request a
// commit covered in one wake-up.
//
// Per connection, in its loop:
//   - the request head must arrive within `header_timeout` (from the
//     connection's start, or from the first byte of a keep-alive request);
//   - the body within `body_timeout` + its size / `body_min_rate`;
//   - between keep-alive requests the connection may idle `idle_timeout`;
//   - a read or a send may make no progress for at most `io_timeout`.
// Each loop checks its connections' deadlines every 100 ms and closes those
// past theirs without an answer (counted as HttpServer counts them). While
// a request is with the service the connection reads nothing more (a
// pipelining client waits in its socket buffer) and has no deadline: the
// service (the store's queue and its commit) bounds that time.
//
// At accept (the first loop accepts and hands connections round the loops):
// open connections are capped (`max_connections`), and so are connections
// from one peer (`max_connections_per_peer`, IPv6 peers by /64); past either
// the connection gets a bare 503 with Retry-After: 1 and is closed.
//
// No TLS: the host serves TLS with HttpServer (see IntakeServer).

#include "http/HttpServer.h"
#include "http/Listener.h"

#include <memory>

namespace clayhook {

class Logger;
class Metrics;

class EventServer final : public Listener {
  public:
    // `service`, `log` and `metrics` must outlive the server. Throws when
    // `options.tls` is set.
    EventServer(HttpServerOptions options, HttpService& service, Logger& log, Metrics& metrics);
    ~EventServer() override;
    EventServer(const EventServer&) = delete;
    EventServer& operator=(const EventServer&) = delete;

    // Binds (without SO_REUSEPORT, as HttpServer) and starts the loops.
    void start() override;
    // Listener::stop. Then waits until every answer the service still owes
    // has come back (a store commit in progress), so the service is not
    // called after it returns.
    void stop(std::chrono::milliseconds drain) override;
    uint16_t port() const override;
    std::string local_host() const override;
    bool stopping() const override;

    struct Core;  // shared with the loops and the answers owed; in the .cpp

  private:
    std::shared_ptr<Core> core_;
};

}  // namespace clayhook
