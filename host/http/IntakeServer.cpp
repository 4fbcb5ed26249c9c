#include "http/IntakeServer.h"

#include "http/EventServer.h"
#include "http/HttpServer.h"
#include "intake/JsonFields.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "routing/Routes.h"
#include "store/Store.h"
#include "text/Text.h"
#include "util/Clock.h"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

namespace clayhook {

// What the intake reads from a source's bodies, compiled once per config:
// the paths of the event type (when it comes from the body), of the
// idempotency fields and of the fan-out's ordering keys, in that order.
struct BodyPlan {
    static constexpr size_t kNone = static_cast<size_t>(-1);
    intake::FieldPaths paths;
    size_t type = kNone;   // the event type's path
    size_t key_first = 0;  // sources[].idempotency.fields
    size_t key_count = 0;
    size_t order_first = 0;  // Routes::order_paths()
    size_t order_count = 0;

    BodyPlan(const SourceConfig& c, const Routes* fanout) {
        if (c.event_type.from == EventTypeFrom::body_field) type = paths.add(c.event_type.field);
        key_first = paths.size();
        for (const auto& f : c.idempotency.fields)
            paths.add(f);
        key_count = paths.size() - key_first;
        order_first = paths.size();
        if (fanout != nullptr)
            for (const auto& p : fanout->order_paths())
                paths.add(p);
        order_count = paths.size() - order_first;
    }
};

struct IntakeSource {
    std::unique_ptr<SourceRuntime> runtime;
    BodyPlan plan;
};

// What a reload replaces: the sources (with their secrets) and the fan-out.
// Immutable once published; a request works on the one it started with.
struct IntakeRoutes {
    std::map<std::string, IntakeSource, std::less<>> sources;
    std::shared_ptr<const Routes> fanout;  // which plugins get a delivery; null: none
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

HttpReply json_answer(int status, std::string body) {
    return HttpReply(status, std::move(body));
}

// The idempotency key: the delivery-id header, else the configured body
// fields joined, else the body's hash. Prefixed by which one it is, so that
// a header value can never collide with a field combination.
std::string idempotency_key(const IdempotencyConfig& ic, const HttpRequest& req,
                            std::span<const intake::Field> fields, std::string_view body) {
    if (!ic.header.empty()) {
        const std::string* v = req.header(ic.header);
        if (v != nullptr && !v->empty()) return "h:" + *v;
    }
    if (!ic.fields.empty()) {
        std::string key = "f:";
        bool all = true;
        for (const intake::Field& f : fields) {
            if (!f.found || f.kind == intake::Kind::Null) {
                all = false;
                break;
            }
            // The JSON text, so that "42" and 42 stay different keys.
            std::string part = intake::canonical(body, f);
            // Length-prefixed so ("a|b","c") and ("a","b|c") stay apart.
            key += std::to_string(part.size()) + ":" + part + "|";
        }
        if (all) return key;
    }
    return "b:" + sha256_hex(body);
}

// What admit() decided for a request to a source, handed to handle(): the
// routes snapshot it started with, and when it started.
struct SourceRequest {
    std::shared_ptr<const IntakeRoutes> gen;
    const SourceRuntime* src = nullptr;
    const BodyPlan* plan = nullptr;
    std::chrono::steady_clock::time_point started;
};

}  // namespace

// The intake's HTTP application: routing, verification, classification,
// the durable insert.
class IntakeService final : public HttpService, public CommitListener {
  public:
    IntakeService(Store& store, Logger& log, Metrics& metrics, std::function<bool()> ready)
        : store_(store),
          log_(log),
          metrics_(metrics),
          ready_(std::move(ready)),
          batch_(&metrics.histogram("clayhook_store_commit_batch_size", "",
                                    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512})) {}

    // Answers the /metrics requests still queued, then ends the thread.
    ~IntakeService() override {
        {
            std::lock_guard lk(scrape_mu_);
            scrape_stop_ = true;
        }
        scrape_cv_.notify_all();
        if (scraper_.joinable()) scraper_.join();
    }

    void attach(const Listener* http) { http_ = http; }

    // CommitListener: the commit-batch-size histogram.
    void committed(size_t batch_size, std::vector<DeliveryRef>&) noexcept override {
        if (batch_size > 0) batch_->observe(static_cast<double>(batch_size));
    }
    std::shared_ptr<const IntakeRoutes> current() const {
        std::lock_guard lk(routes_mu_);
        return routes_;
    }
    void publish(std::shared_ptr<const IntakeRoutes> routes) noexcept {
        std::lock_guard lk(routes_mu_);
        routes_ = std::move(routes);
    }

    Admission admit(const HttpRequest& req, BodyFraming, uint64_t content_length) override {
        const std::string& path = req.path;
        if (path == "/healthz" || path == "/readyz") {
            Admission a;
            a.answer = health(path);
            return a;
        }
        if (path == "/metrics") {
            // Rendered in handle(): it asks the store for its size (a
            // database round trip with PostgreSQL), which an event loop
            // must not wait for.
            Admission a;
            a.context = scrape_marker();
            return a;
        }
        // One snapshot for the whole request: a reload swapping the sources
        // or the plugins meanwhile does not change what this request sees.
        auto gen = current();
        auto route = gen->sources.find(path);
        Admission a;
        if (route == gen->sources.end()) {
            a.answer = reject(req.peer, "", 404, "not_found", R"({"error":"not found"})",
                              "no source at " + terminal_safe(path));
            return a;
        }
        const SourceRuntime& src = *route->second.runtime;
        if (req.method != "POST") {
            a.answer = reject(req.peer, src.config.name, 405, "bad_method",
                              R"({"error":"method not allowed"})", "method " + req.method);
            a.answer->set("Allow", "POST");
            return a;
        }
        // Size cap before reading: a declared length past the cap is refused
        // unread, and the connection closed so the body is never consumed.
        const uint64_t cap = src.config.max_body_bytes;
        if (content_length > cap) {
            a.answer =
                reject(req.peer, src.config.name, 413, "too_large", R"({"error":"body too large"})",
                       "content-length " + std::to_string(content_length));
            return a;
        }
        a.max_body = cap;
        a.context = std::make_shared<SourceRequest>(
            SourceRequest{gen, &src, &route->second.plan, std::chrono::steady_clock::now()});
        return a;
    }

    HttpReply too_large(const HttpRequest& req, uint64_t max_body) override {
        auto gen = current();
        auto route = gen->sources.find(req.path);
        std::string name = route == gen->sources.end() ? "" : route->second.runtime->config.name;
        // Chunked (or lying) sender: cut off at the cap.
        return reject(req.peer, name, 413, "too_large", R"({"error":"body too large"})",
                      "body past " + std::to_string(max_body) + " bytes");
    }

    HttpReply handle(const HttpRequest& req, std::string body,
                     const std::shared_ptr<const void>& context) override {
        if (context == scrape_marker()) return health("/metrics");
        std::optional<HttpReply> now;
        const auto p = begin(req, std::move(body), context, now);
        if (!p) return std::move(*now);
        try {
            return answered(*p, outcome(*p, store_.insert(p->event)));
        } catch (...) {
            answered(*p, {});  // the latency of a failed request counts too
            throw;
        }
    }

    // The event loop's way: verified and classified here, on the loop; the
    // answer once the store has committed (or refused) the delivery.
    void handle_async(const HttpRequest& req, std::string body,
                      const std::shared_ptr<const void>& context, Respond respond) override {
        if (context == scrape_marker()) return scrape(std::move(respond));
        std::optional<HttpReply> now;
        auto p = begin(req, std::move(body), context, now);
        if (!p) return respond(std::move(*now));
        // `p` keeps the event's bytes and the routes (plugin names) alive
        // until the store is done with them. On the store's thread: the
        // answer is owed whatever happens, or the connection would wait for
        // ever (and the server's stop() with it).
        store_.insert_async(p->event, [this, p, respond = std::move(respond)](InsertResult res) {
            HttpReply reply;
            try {
                reply = outcome(*p, res);
            } catch (...) {
                reply = HttpReply(500, R"({"error":"internal error"})");
            }
            respond(answered(*p, std::move(reply)));
        });
    }

  private:
    // The context that marks a /metrics request.
    static const std::shared_ptr<const void>& scrape_marker() {
        static const std::shared_ptr<const void> marker = std::make_shared<int>(0);
        return marker;
    }

    // /metrics for the event loop: rendered on a thread of its own, one
    // scrape at a time; past a few waiting, 503 at once.
    void scrape(Respond respond) {
        static constexpr size_t kMaxWaiting = 8;
        {
            std::lock_guard lk(scrape_mu_);
            if (!scrape_stop_ && scrapes_.size() < kMaxWaiting) {
                if (!scraper_.joinable()) scraper_ = std::thread([this] { scrape_loop(); });
                scrapes_.push_back(std::move(respond));
                scrape_cv_.notify_one();
                return;
            }
        }
        HttpReply busy(503, R"({"error":"too many metrics requests"})");
        busy.set("Retry-After", "1");
        respond(std::move(busy));
    }
    void scrape_loop() {
        pthread_setname_np(pthread_self(), "intake-metrics");
        std::unique_lock lk(scrape_mu_);
        for (;;) {
            scrape_cv_.wait(lk, [&] { return scrape_stop_ || !scrapes_.empty(); });
            if (scrapes_.empty()) return;  // stopping, nothing owed
            Respond r = std::move(scrapes_.front());
            scrapes_.pop_front();
            lk.unlock();
            try {
                HttpReply reply;
                try {
                    reply = health("/metrics");
                } catch (...) {
                    reply = HttpReply(500, R"({"error":"internal error"})");
                }
                r(std::move(reply));
            } catch (...) {
                // Out of memory handing the answer over: the connection is
                // the server's to close; this thread goes on.
            }
            lk.lock();
        }
    }

    HttpReply health(const std::string& path) {
        if (path == "/healthz") return HttpReply(200, "ok\n", "text/plain");
        if (path == "/readyz") {
            bool ok = !(http_ != nullptr && http_->stopping()) && store_.writable() && ready_();
            return HttpReply(ok ? 200 : 503, ok ? "ready\n" : "not ready\n", "text/plain");
        }
        metrics_.gauge_set("clayhook_store_queue_depth", "",
                           static_cast<double>(store_.queue_depth()));
        const Store::Usage u = store_.usage();
        if (u.bytes >= 0)
            metrics_.gauge_set("clayhook_store_bytes", "", static_cast<double>(u.bytes));
        if (u.free_bytes >= 0)
            metrics_.gauge_set("clayhook_store_free_bytes", "", static_cast<double>(u.free_bytes));
        if (u.journal_backlog >= 0) {
            metrics_.gauge_set("clayhook_journal_backlog", "",
                               static_cast<double>(u.journal_backlog));
            metrics_.gauge_set("clayhook_journal_syncs", "", static_cast<double>(u.journal_syncs));
            metrics_.gauge_set("clayhook_journal_synced_records", "",
                               static_cast<double>(u.journal_synced_records));
            metrics_.gauge_set("clayhook_journal_sync_seconds", "",
                               static_cast<double>(u.journal_sync_us) / 1e6);
            static constexpr const char* kOver[] = {"over=\"1ms\"", "over=\"5ms\"",
                                                    "over=\"20ms\""};
            for (size_t i = 0; i < u.journal_slow_syncs.size(); ++i)
                metrics_.gauge_set("clayhook_journal_slow_syncs", kOver[i],
                                   static_cast<double>(u.journal_slow_syncs[i]));
        }
        if (u.checkpoints >= 0) {
            metrics_.gauge_set("clayhook_store_checkpoints", "",
                               static_cast<double>(u.checkpoints));
            metrics_.gauge_set("clayhook_store_checkpoint_restarts", "",
                               static_cast<double>(u.checkpoint_restarts));
            metrics_.gauge_set("clayhook_store_checkpoint_failures", "",
                               static_cast<double>(u.checkpoint_failures));
        }
        if (u.oldest_pending_ms >= 0)
            metrics_.gauge_set("clayhook_delivery_oldest_pending_age_seconds", "",
                               u.oldest_pending_ms == 0
                                   ? 0.0
                                   : std::max(0.0, static_cast<double>(SystemClock::unix_ms() -
                                                                       u.oldest_pending_ms) /
                                                       1000.0));
        return HttpReply(200, metrics_.render(), "text/plain; version=0.0.4");
    }

    void count(const std::string& source, const char* outcome, int status) {
        metrics_.counter_add("clayhook_intake_requests_total",
                             "outcome=\"" + std::string(outcome) + "\",source=\"" + source +
                                 "\",status=\"" + std::to_string(status) + "\"",
                             1);
    }

    HttpReply reject(const std::string& peer, const std::string& source, int status,
                     const char* outcome, std::string body, const std::string& reason) {
        count(source, outcome, status);
        log_.warn("intake", "request rejected",
                  {{"source", source},
                   {"status", std::to_string(status)},
                   {"reason", reason},
                   {"remote", peer}});
        return json_answer(status, std::move(body));
    }

    // A delivery on its way through the intake: the request's bytes it keeps,
    // and the event handed to the store, whose views point into them.
    struct Pending {
        std::shared_ptr<const IntakeRoutes> gen;  // keeps src, plan and plugin names alive
        const SourceRuntime& src;
        const BodyPlan& plan;
        std::chrono::steady_clock::time_point started;
        std::string peer;
        std::string body, type, key;
        std::vector<NewDelivery> deliveries;
        NewEvent event;
        Pending(const SourceRequest& r, std::string from, std::string b)
            : gen(r.gen),
              src(*r.src),
              plan(*r.plan),
              started(r.started),
              peer(std::move(from)),
              body(std::move(b)) {}
    };

    // Both ways' start: the delivery verified and classified, ready for the
    // store; or nullptr with the answer in `now` (404, or a refusal).
    std::shared_ptr<Pending> begin(const HttpRequest& req, std::string body,
                                   const std::shared_ptr<const void>& context,
                                   std::optional<HttpReply>& now) {
        if (!context) {
            now = json_answer(404, R"({"error":"not found"})");
            return nullptr;
        }
        const auto& r = *static_cast<const SourceRequest*>(context.get());
        auto p = std::make_shared<Pending>(r, req.peer, std::move(body));
        try {
            if (auto refused = prepare(req, *p)) {
                now = answered(*p, std::move(*refused));
                return nullptr;
            }
        } catch (...) {
            answered(*p, {});  // the latency of a failed request counts too
            throw;
        }
        return p;
    }

    // Every answer to a source's request: its latency observed.
    static HttpReply answered(const Pending& p, HttpReply reply) {
        p.src.latency->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - p.started).count());
        return reply;
    }

    // Verifies and classifies the request. An answer when it is refused (401,
    // 400); else `p.event` is ready for the store.
    std::optional<HttpReply> prepare(const HttpRequest& req, Pending& p) {
        const SourceRuntime& src = p.src;
        const BodyPlan& plan = p.plan;
        const std::string& body = p.body;
        const std::string& name = src.config.name;
        src.bytes->add(static_cast<double>(body.size()));

        // Header bytes exactly as sent: no decoding of any kind.
        auto failure = src.verifier.verify(
            body, [&req](std::string_view h) { return req.header(h); },
            std::chrono::system_clock::now());
        if (failure != VerifyFailure::none) {
            metrics_.counter_add(
                "clayhook_intake_verify_failures_total",
                "reason=\"" + std::string(failure_name(failure)) + "\",source=\"" + name + "\"", 1);
            return reject(p.peer, name, 401, "unauthorized", R"({"error":"verification failed"})",
                          failure_name(failure));
        }

        // The whole body is checked as JSON (the SDK's rules: plugins parse
        // it again), and the few fields the intake reads are found on the way.
        std::vector<intake::Field> fields;
        intake::JsonError bad;
        if (!intake::extract(body, plan.paths, fields, bad))
            return reject(p.peer, name, 400, "malformed", R"({"error":"malformed JSON"})",
                          bad.what());
        const std::span<const intake::Field> found(fields);
        std::string& type = p.type;
        const auto& et = src.config.event_type;
        if (et.from == EventTypeFrom::fixed) {
            type = et.value;
        } else if (et.from == EventTypeFrom::header) {
            if (const std::string* v = req.header(et.header)) type = *v;
        } else if (plan.type < fields.size() && fields[plan.type].found &&
                   fields[plan.type].kind == intake::Kind::String) {
            type = intake::string_value(body, fields[plan.type]);
        }
        if (type.empty())
            return reject(p.peer, name, 400, "no_event_type", R"({"error":"missing event type"})",
                          "no event type");
        // A type is a name: it is stored, routed on, shown in JSON and on
        // terminals. Bytes that are not UTF-8, control characters and
        // runaway lengths are refused, not cleaned up.
        if (!clean_label(type))
            return reject(p.peer, name, 400, "bad_event_type", R"({"error":"invalid event type"})",
                          "event type not printable UTF-8 (or over 256 bytes)");
        const auto& ic = src.config.idempotency;
        if (!ic.header.empty()) {
            const std::string* id = req.header(ic.header);
            if (id != nullptr && !id->empty() && !clean_label(*id))
                return reject(p.peer, name, 400, "bad_delivery_id",
                              R"({"error":"invalid delivery id"})",
                              "delivery id not printable UTF-8 (or over 256 bytes)");
        }

        p.key = idempotency_key(ic, req, found.subspan(plan.key_first, plan.key_count), body);
        if (p.gen->fanout)
            p.gen->fanout->deliveries_for(
                type, body, found.subspan(plan.order_first, plan.order_count), p.deliveries);
        p.event = NewEvent{name,
                           type,
                           p.key,
                           body,
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count(),
                           p.deliveries};
        return std::nullopt;
    }

    // The answer to what the store made of the delivery.
    HttpReply outcome(const Pending& p, const InsertResult& r) {
        const std::string& name = p.src.config.name;
        switch (r.status) {
            case InsertStatus::stored:
                p.src.accepted->add(1);
                return json_answer(200, R"({"received":true,"id":)" + intake::quote(r.id) + "}");
            case InsertStatus::duplicate:
                count(name, "duplicate", 200);
                p.src.duplicates->add(1);
                return json_answer(
                    200, R"({"received":true,"duplicate":true,"id":)" + intake::quote(r.id) + "}");
            case InsertStatus::overloaded:
            case InsertStatus::unavailable:
            default: {
                HttpReply busy =
                    reject(p.peer, name, 503,
                           r.status == InsertStatus::overloaded ? "overloaded" : "store_error",
                           R"({"error":"try again later"})",
                           r.status == InsertStatus::overloaded ? "store queue full" : r.error);
                busy.set("Retry-After", "1");
                return busy;
            }
        }
    }

    Store& store_;
    Logger& log_;
    Metrics& metrics_;
    std::function<bool()> ready_;
    Histogram* batch_;
    const Listener* http_ = nullptr;
    std::mutex scrape_mu_;
    std::condition_variable scrape_cv_;
    std::deque<Respond> scrapes_;
    bool scrape_stop_ = false;
    std::thread scraper_;
    mutable std::mutex routes_mu_;
    std::shared_ptr<const IntakeRoutes> routes_;  // swapped whole by publish()
};

std::shared_ptr<const IntakeRoutes> build_intake_routes(const Config& config,
                                                        std::shared_ptr<const Routes> fanout,
                                                        Metrics& metrics) {
    auto next = std::make_shared<IntakeRoutes>();
    for (const auto& s : config.sources)
        next->sources.emplace(s.path, IntakeSource{std::make_unique<SourceRuntime>(s, metrics),
                                                   BodyPlan(s, fanout.get())});
    next->fanout = std::move(fanout);
    return next;
}

IntakeServer::IntakeServer(const ListenerConfig& listener,
                           std::shared_ptr<const IntakeRoutes> sources, Store& store, Logger& log,
                           Metrics& metrics, std::function<bool()> ready, int inherited_fd)
    : store_(store),
      service_(std::make_unique<IntakeService>(store, log, metrics, std::move(ready))),
      http_([&]() -> std::unique_ptr<Listener> {
          HttpServerOptions o = intake_http_options(listener);
          o.inherited_fd = inherited_fd;
          if (listener.event_loops())
              return std::make_unique<EventServer>(std::move(o), *service_, log, metrics);
          return std::make_unique<HttpServer>(std::move(o), *service_, log, metrics);
      }()) {
    service_->attach(http_.get());
    publish(std::move(sources));
    store.subscribe(service_.get());
    metrics.set_help("clayhook_store_bytes",
                     "The store's size on disk (SQLite: file and WAL; PostgreSQL: the database)");
    metrics.set_help("clayhook_store_free_bytes",
                     "Space left on the SQLite store's filesystem for the host");
    metrics.set_help("clayhook_delivery_oldest_pending_age_seconds",
                     "Age of the event of the oldest pending delivery (0: nothing pending)");
    metrics.set_help("clayhook_intake_requests_total",
                     "Webhook requests by source, outcome and status.");
    metrics.set_help("clayhook_intake_latency_seconds",
                     "Time from a request's start to its answer.");
    metrics.set_help("clayhook_store_commit_batch_size", "Deliveries per store transaction.");
}

void IntakeServer::publish(std::shared_ptr<const IntakeRoutes> routes) noexcept {
    service_->publish(std::move(routes));
}

IntakeServer::~IntakeServer() {
    stop();
    store_.unsubscribe(service_.get());
}

void IntakeServer::start() {
    http_->start();
}

void IntakeServer::stop(std::chrono::milliseconds drain) {
    // Requests already being read or committed finish and get their answer
    // (their deliveries are in the store by then); idle keep-alive
    // connections are closed at once.
    http_->stop(drain);
}

uint16_t IntakeServer::port() const {
    return http_->port();
}

std::string IntakeServer::local_host() const {
    return http_->local_host();
}

}  // namespace clayhook
