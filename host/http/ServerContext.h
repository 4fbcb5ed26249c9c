#pragma once

// What every connection of an HTTP server shares, in both servers
// (HttpServer, EventServer): the options, the application, the log and
// metrics, the per-peer cap, the counters, and the rules both apply the
// same way (keep-alive, refusals).

#include "http/BodyBudget.h"
#include "http/HttpServer.h"
#include "http/PeerLimiter.h"
#include "http/ServerCounters.h"
#include "log/LogThrottle.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"

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
    BodyBudget bodies;  // the request bodies held at once (opts.max_body_memory)
    // Its refusals come in floods under attack: a line a second at most.
    LogThrottle body_refusal_lines{std::chrono::seconds(1)};
    std::atomic<bool> stopping{false};
    std::atomic<int> in_flight{0};  // requests between their first byte and their answer

    ServerContext(HttpServerOptions o, HttpService& s, Logger& l, Metrics& m)
        : opts(std::move(o)),
          service(s),
          log(l),
          metrics(m),
          peers(opts.max_connections_per_peer),
          counters(m, opts.name),
          bodies(opts.max_body_memory, &counters.body_memory_bytes) {}

    // Whether the connection stays open after `reply` to a request whose
    // head asked for keep-alive (`wanted`).
    bool keep_alive(bool wanted, const HttpReply& reply) const {
        return opts.keep_alive && wanted && !reply.close && !stopping.load();
    }
    // Makes `lease` hold the `bytes` a request's body takes in memory so
    // far (BodyBudget::hold). False when that would pass max_body_memory:
    // the request is counted (and logged, a line a second at most, saying
    // how many it stands for), and the caller answers body_memory_full() and
    // closes, the rest of the body unread.
    bool hold_body(BodyBudget::Lease& lease, uint64_t bytes, const std::string& peer) {
        if (bodies.hold(lease, bytes)) return true;
        counters.refused_body_memory.add(1);
        const auto now = std::chrono::steady_clock::now().time_since_epoch();
        if (const uint64_t n = body_refusal_lines.admit(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()))
            log.warn(opts.name, "request refused",
                     {{"status", "503"},
                      {"reason", "request bodies in memory at listener.max_body_memory"},
                      {"bytes", std::to_string(bytes)},
                      {"remote", peer},
                      {"refused", std::to_string(n)}});
        return false;
    }
    static HttpReply body_memory_full() {
        HttpReply r(503, R"({"error":"too many request bodies in memory, try again later"})");
        r.set("Retry-After", "1");
        return r;
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
