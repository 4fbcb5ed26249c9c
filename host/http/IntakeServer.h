#pragma once

#include "config/Config.h"
#include "verify/Verifier.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace clayhook {

class Logger;
class Metrics;
class Store;

class Histogram;
class MetricValue;
class Routes;
struct IntakeRoutes;

// One configured source as the data plane uses it: immutable after start,
// with its hot-path metrics resolved once so a request takes no registry lock.
struct SourceRuntime {
    SourceConfig config;
    Verifier verifier;
    MetricValue* accepted = nullptr;
    MetricValue* duplicates = nullptr;
    MetricValue* bytes = nullptr;
    Histogram* latency = nullptr;  // seconds, from the request's start to the answer
    SourceRuntime(const SourceConfig& c, Metrics& metrics);
};

class Listener;
class IntakeService;

// The public listener: one POST route per source, plus /healthz, /readyz and
// /metrics, served by the strict EventServer (HttpServer with TLS or with
// listener.server: threads): framing, deadlines, per-peer cap. Per request,
// in this order: method and path; the size cap before reading
// (Content-Length) and while reading (chunked); the body read whole;
// verification on the raw bytes; parse and classify; idempotency key;
// durable insert; 200 only after the commit.
// The sources (with their verifiers and metrics) and the fan-out of one
// config: what a reload swaps in whole. Building it may throw (a verifier
// refusing its secrets); publishing it never does.
std::shared_ptr<const IntakeRoutes> build_intake_routes(const Config& config,
                                                        std::shared_ptr<const Routes> fanout,
                                                        Metrics& metrics);

class IntakeServer {
  public:
    // `ready` tells /readyz whether the rest of the host is (plugins loaded).
    // `inherited_fd`: a listening socket from systemd, used instead of
    // binding listener.address:port (HttpServerOptions::inherited_fd).
    IntakeServer(const ListenerConfig& listener, std::shared_ptr<const IntakeRoutes> sources,
                 Store& store, Logger& log, Metrics& metrics, std::function<bool()> ready,
                 int inherited_fd = -1);
    ~IntakeServer();
    IntakeServer(const IntakeServer&) = delete;
    IntakeServer& operator=(const IntakeServer&) = delete;

    void start();
    // A reload: these sources and fan-out replace the current ones at once;
    // requests already running finish with what they started with. The
    // listener's own settings are not touched (they need a restart).
    void publish(std::shared_ptr<const IntakeRoutes> sources) noexcept;
    // Stops accepting, lets requests in flight finish (up to `drain`), then
    // closes the remaining (idle) connections and waits for their threads.
    void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(10'000));
    uint16_t port() const;           // the bound port (useful with port: 0)
    std::string local_host() const;  // Listener::local_host

  private:
    Store& store_;
    std::unique_ptr<IntakeService> service_;  // outlives http_
    std::unique_ptr<Listener> http_;          // EventServer, or HttpServer for TLS
};

}  // namespace clayhook
