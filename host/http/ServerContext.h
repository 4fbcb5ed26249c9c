#pragma once

// What every connection of an HTTP server shares, in both servers
// (HttpServer, EventServer): the options, the application, the log and
// metrics, the per-peer cap and the counters.

#include "http/HttpServer.h"
#include "http/PeerLimiter.h"
#include "http/ServerCounters.h"

namespace clayhook {

struct ServerContext {
    const HttpServerOptions opts;
    HttpService& service;
    Logger& log;
    Metrics& metrics;
    PeerLimiter peers;
    ServerCounters counters;

    ServerContext(HttpServerOptions o, HttpService& s, Logger& l, Metrics& m)
        : opts(std::move(o)),
          service(s),
          log(l),
          metrics(m),
          peers(opts.max_connections_per_peer),
          counters(m, opts.name) {}
};

}  // namespace clayhook
