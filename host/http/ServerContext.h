#pragma once

// What every connection of an HTTP server shares, in both servers
// (HttpServer, EventServer): the options, the application, the log and
// metrics, the per-peer cap, the counters, and the rules both apply the
// same way (keep-alive, refusals).

#include "http/HttpServer.h"
#include "http/PeerLimiter.h"
#include "http/ServerCounters.h"
#include "log/Logger.h"

#include <atomic>
#include <string>

namespace clayhook {

struct ServerContext {
    const HttpServerOptions opts;
    HttpService& service;
    Logger& log;
    Metrics& metrics;
    PeerLimiter peers;
    ServerCounters counters;
    std::atomic<bool> stopping{false};
    std::atomic<int> in_flight{0};  // requests between their first byte and their answer

    ServerContext(HttpServerOptions o, HttpService& s, Logger& l, Metrics& m)
        : opts(std::move(o)),
          service(s),
          log(l),
          metrics(m),
          peers(opts.max_connections_per_peer),
          counters(m, opts.name) {}

    // Whether the connection stays open after `reply` to a request whose
    // head asked for keep-alive (`wanted`).
    bool keep_alive(bool wanted, const HttpReply& reply) const {
        return opts.keep_alive && wanted && !reply.close && !stopping.load();
    }
    // A request refused by the server itself (framing, deadlines): counted
    // and logged; the caller answers and closes.
    void log_refusal(int status, const std::string& why, const std::string& peer) {
        counters.bad_request(status);
        log.warn(opts.name, "request refused",
                 {{"status", std::to_string(status)}, {"reason", why}, {"remote", peer}});
    }
};

}  // namespace clayhook
