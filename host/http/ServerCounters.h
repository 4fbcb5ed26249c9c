#pragma once

// The counters both HTTP servers (HttpServer, EventServer) keep about the
// connections they refuse, time out or cut, named clayhook_<name>_… after the
// server's name ("intake", "admin"). Resolved once, so a connection takes no
// registry lock to count.

#include <string>

namespace clayhook {

class Metrics;
class MetricValue;

struct ServerCounters {
    ServerCounters(Metrics& metrics, const std::string& name);

    MetricValue& refused_limit;        // at accept: past max_connections
    MetricValue& refused_peer;         // at accept: past max_connections_per_peer
    MetricValue& timeout_header;       // the head did not arrive in time
    MetricValue& timeout_body;         // the body did not arrive in time
    MetricValue& timeout_idle;         // no next request on a kept-alive connection
    MetricValue& incomplete;           // the peer closed before its body was whole
    MetricValue& refused_body_memory;  // 503: its body's bytes past max_body_memory (BodyBudget)
    MetricValue& body_memory_bytes;    // gauge: request bodies held now (BodyBudget)

    // A request refused for its framing or head, by the status answered.
    void bad_request(int status);

  private:
    Metrics& metrics_;
    std::string bad_requests_;
};

}  // namespace clayhook
