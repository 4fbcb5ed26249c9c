#include "http/ServerCounters.h"

#include "metrics/Metrics.h"

namespace clayhook {

namespace {
std::string metric(const std::string& name, const char* suffix) {
    return "clayhook_" + name + "_" + suffix;
}
}  // namespace

ServerCounters::ServerCounters(Metrics& m, const std::string& name)
    : refused_limit(
          m.counter(metric(name, "connections_refused_total"), "reason=\"max_connections\"")),
      refused_peer(m.counter(metric(name, "connections_refused_total"), "reason=\"per_peer\"")),
      timeout_header(m.counter(metric(name, "connections_timed_out_total"), "phase=\"header\"")),
      timeout_body(m.counter(metric(name, "connections_timed_out_total"), "phase=\"body\"")),
      timeout_idle(m.counter(metric(name, "connections_timed_out_total"), "phase=\"idle\"")),
      incomplete(m.counter(metric(name, "incomplete_requests_total"))),
      refused_body_memory(m.counter(metric(name, "body_memory_refused_total"))),
      body_memory_bytes(m.gauge(metric(name, "body_memory_bytes"))),
      metrics_(m),
      bad_requests_(metric(name, "bad_requests_total")) {
    m.set_help(metric(name, "connections_refused_total"),
               "Connections answered 503 and closed at accept, by reason.");
    m.set_help(metric(name, "connections_timed_out_total"),
               "Connections closed unanswered because a deadline passed, by phase.");
    m.set_help(metric(name, "incomplete_requests_total"),
               "Requests whose body ended (the peer closed) before it was whole.");
    m.set_help(bad_requests_, "Requests refused for their framing or head, by status.");
    m.set_help(metric(name, "body_memory_refused_total"),
               "Requests answered 503 while their body was read: its next bytes would have "
               "taken the request bodies held at once past listener.max_body_memory.");
    m.set_help(metric(name, "body_memory_bytes"),
               "The bytes of request bodies held in memory now, received and not yet "
               "answered.");
}

void ServerCounters::bad_request(int status) {
    metrics_.counter_add(bad_requests_, "status=\"" + std::to_string(status) + "\"", 1);
}

}  // namespace clayhook
