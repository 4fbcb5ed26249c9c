#include "admin/AdminServer.h"

#include "dispatch/Dispatcher.h"
#include "http/HttpServer.h"
#include "log/Logger.h"
#include "reload/Reloader.h"
#include "store/Store.h"
#include "text/Text.h"
#include "verify/Verifier.h"

#include <clayhook/json.hpp>

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/URI.h>
#include <openssl/crypto.h>

#include <charconv>
#include <istream>
#include <map>

namespace clayhook {

struct AdminServer::Shared {
    Store& store;
    Dispatcher& dispatcher;
    Logger& log;
    Reloader* reloader = nullptr;
    std::string token_digest;  // sha256 hex of the token: compared in constant time
    Shared(Store& s, Dispatcher& d, Logger& l) : store(s), dispatcher(d), log(l) {}
};

namespace {

// A client mistake: 400 (or the given status) with this message.
struct HttpError : std::runtime_error {
    int status;
    std::string allow;  // 405: the methods allowed
    HttpError(int s, const std::string& m, std::string a = "")
        : std::runtime_error(m), status(s), allow(std::move(a)) {}
};

std::string iso(int64_t ms) {
    if (ms <= 0) return "";
    return Poco::DateTimeFormatter::format(Poco::Timestamp(ms * 1000), "%Y-%m-%dT%H:%M:%S.%iZ");
}

json::Value time_or_null(int64_t ms) {
    return ms > 0 ? json::Value(iso(ms)) : json::Value(nullptr);
}

// Unix ms, or an ISO 8601 / RFC 3339 time.
int64_t parse_time(const std::string& name, const std::string& v) {
    int64_t ms = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (ec == std::errc() && p == v.data() + v.size()) return ms;
    Poco::DateTime dt;
    int tzd = 0;
    if (Poco::DateTimeParser::tryParse(v, dt, tzd)) {
        dt.makeUTC(tzd);
        return dt.timestamp().epochMicroseconds() / 1000;
    }
    throw HttpError(400,
                    name + ": expected unix milliseconds or an ISO 8601 time, got '" + v + "'");
}

int64_t parse_int(const std::string& name, const std::string& v, int64_t min, int64_t max) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n < min || n > max)
        throw HttpError(400, name + ": expected a whole number from " + std::to_string(min) +
                                 " to " + std::to_string(max) + ", got '" + v + "'");
    return n;
}

DeliveryState parse_state(const std::string& name, const std::string& v) {
    auto s = parse_delivery_state(v);
    if (!s) throw HttpError(400, name + ": expected pending, done or dead, got '" + v + "'");
    return *s;
}

json::Value attempt_json(const AttemptRecord& a) {
    return json::Value::object()
        .set("attempt", a.attempt)
        .set("started_at", iso(a.started_ms))
        .set("duration_ms", static_cast<double>(a.duration_us) / 1000.0)
        .set("outcome", a.outcome)
        .set("reason", a.reason);
}

json::Value delivery_json(const DeliveryInfo& d, bool with_history) {
    auto v = json::Value::object()
                 .set("id", d.id)
                 .set("event_id", d.event_id)
                 .set("event_type", d.event_type)
                 .set("plugin", d.plugin)
                 .set("state", delivery_state_name(d.state))
                 .set("attempts", d.attempts)
                 .set("received_at", iso(d.received_at_ms))
                 .set("due_at", d.state == DeliveryState::pending ? time_or_null(d.due_ms)
                                                                  : json::Value(nullptr))
                 .set("finished_at", time_or_null(d.finished_ms))
                 .set("last_error",
                      d.last_error.empty() ? json::Value(nullptr) : json::Value(d.last_error));
    if (!d.order_key.empty()) v.set("ordering_key", d.order_key);
    // Who is handling it now: the host whose claim's lease still runs.
    v.set("claimed_by", d.claimed_by.empty() ? json::Value(nullptr) : json::Value(d.claimed_by));
    v.set("lease_until", d.state == DeliveryState::pending ? time_or_null(d.lease_until_ms)
                                                           : json::Value(nullptr));
    if (with_history) {
        auto h = json::Value::array();
        for (const auto& a : d.history)
            h.push_back(attempt_json(a));
        v.set("attempts_history", std::move(h));
    }
    return v;
}

}  // namespace

class AdminService final : public HttpService {
  public:
    explicit AdminService(std::shared_ptr<AdminServer::Shared> s) : s_(std::move(s)) {}

    // The token is checked before any of the body is read.
    Admission admit(const HttpRequest& req, BodyFraming, uint64_t content_length) override {
        Admission a;
        if (!authorized(req)) {
            s_->log.warn("admin", "unauthorized request",
                         {{"method", terminal_safe(req.method)},
                          {"path", terminal_safe(req.path)},
                          {"peer", req.peer}});
            a.answer =
                reply(401, error_json("a valid 'Authorization: Bearer <admin token>' is required"));
            a.answer->set("WWW-Authenticate", "Bearer");
            return a;
        }
        if (content_length > kMaxBody) {
            a.answer = reply(413, error_json("body over 1 MiB"));
            return a;
        }
        a.max_body = kMaxBody;
        return a;
    }

    HttpReply too_large(const HttpRequest&, uint64_t) override {
        return reply(413, error_json("body over 1 MiB"));
    }

    HttpReply handle(const HttpRequest& req, std::string body,
                     const std::shared_ptr<const void>&) override {
        try {
            return route(req, body);
        } catch (const HttpError& e) {
            HttpReply r = reply(e.status, error_json(e.what()));
            if (!e.allow.empty()) r.set("Allow", e.allow);
            return r;
        } catch (const json::ParseError& e) {
            return reply(400, error_json(std::string("body: ") + e.what()));
        } catch (const std::exception& e) {
            s_->log.error("admin", std::string("request failed: ") + e.what(),
                          {{"path", terminal_safe(req.path)}});
            return reply(503, error_json(e.what()));
        }
    }

  private:
    static json::Value error_json(const std::string& m) {
        return json::Value::object().set("error", m);
    }
    static constexpr uint64_t kMaxBody = 1024 * 1024;

    // JSON out is always valid UTF-8: strings stored before the intake
    // checked them, or a plugin's error text, may hold bytes that are not.
    static HttpReply reply(int status, const json::Value& v) {
        return HttpReply(status, to_valid_utf8(json::dump(v)) + "\n");
    }

    bool authorized(const HttpRequest& req) const {
        const std::string* header = req.header("authorization");
        if (header == nullptr) return false;
        const std::string& h = *header;
        const std::string prefix = "Bearer ";
        if (h.size() <= prefix.size() || h.compare(0, prefix.size(), prefix) != 0) return false;
        std::string d = sha256_hex(std::string_view(h).substr(prefix.size()));
        return d.size() == s_->token_digest.size() &&
               CRYPTO_memcmp(d.data(), s_->token_digest.data(), d.size()) == 0;
    }

    static std::vector<std::string> split_path(const std::string& path) {
        std::vector<std::string> parts;
        size_t i = 0;
        while (i < path.size()) {
            size_t j = path.find('/', i);
            if (j == std::string::npos) j = path.size();
            if (j > i) parts.push_back(path.substr(i, j - i));
            i = j + 1;
        }
        return parts;
    }

    HttpReply route(const HttpRequest& req, const std::string& text) {
        std::map<std::string, std::string> q;
        std::string path;
        try {
            Poco::URI uri(req.target);
            for (const auto& [k, v] : uri.getQueryParameters())
                q[k] = v;
            path = uri.getPath();
        } catch (const Poco::Exception&) {
            throw HttpError(400, "malformed request target (bad percent-encoding)");
        }
        auto p = split_path(path);
        const std::string& m = req.method;
        auto is = [&](std::initializer_list<const char*> want) {
            if (p.size() != want.size()) return false;
            size_t i = 0;
            for (const char* w : want) {
                if (std::string_view(w) != "*" && p[i] != w) return false;
                ++i;
            }
            return true;
        };
        auto method = [&](const char* want) {
            if (m != want) throw HttpError(405, "use " + std::string(want) + " here", want);
        };
        if (is({"admin", "plugins"})) {
            method("GET");
            return reply(200, plugins());
        }
        if (is({"admin", "plugins", "*", "pause"}) || is({"admin", "plugins", "*", "resume"})) {
            method("POST");
            const std::string& name = p[2];
            if (!s_->dispatcher.has_plugin(name))
                throw HttpError(404, "no loaded plugin '" + name + "'");
            bool pause = p[3] == "pause";
            s_->dispatcher.set_paused(name, pause);
            return reply(200, json::Value::object().set("plugin", name).set("paused", pause));
        }
        if (is({"admin", "events"})) {
            method("GET");
            return reply(200, events(q));
        }
        if (is({"admin", "events", "*"})) {
            method("GET");
            return reply(200, event(p[2]));
        }
        if (is({"admin", "deliveries"})) {
            method("GET");
            return reply(200, deliveries(q));
        }
        if (is({"admin", "deliveries", "*", "replay"})) {
            method("POST");
            int64_t id = parse_int("delivery id", p[2], 1, INT64_MAX);
            size_t n = s_->dispatcher.replay(std::span<const int64_t>(&id, 1));
            if (n == 0) throw HttpError(409, "delivery " + p[2] + " does not exist or is not dead");
            return reply(200, json::Value::object().set("replayed", 1));
        }
        if (is({"admin", "reload"}) && s_->reloader != nullptr) {
            if (m == "GET") return reply(200, reload_json(s_->reloader->status()));
            if (m != "POST") throw HttpError(405, "use GET or POST here", "GET, POST");
            auto st = s_->reloader->reload("admin");
            return reply(st.last_result == "ok" ? 200 : 422, reload_json(st));
        }
        if (is({"admin", "replay"})) {
            method("POST");
            return reply(200, replay(text));
        }
        if (is({"admin", "kill"})) {
            method("POST");
            return reply(200, kill(text));
        }
        throw HttpError(404, "no such admin endpoint: " + terminal_safe(path));
    }

    static json::Value reload_json(const ReloadStatus& st) {
        auto warnings = json::Value::array();
        for (const auto& w : st.last_warnings)
            warnings.push_back(w);
        return json::Value::object()
            .set("generation", st.generation)
            .set("reloads_ok", st.reloads_ok)
            .set("reloads_failed", st.reloads_failed)
            .set("last_result",
                 st.last_result.empty() ? json::Value(nullptr) : json::Value(st.last_result))
            .set("last_error",
                 st.last_error.empty() ? json::Value(nullptr) : json::Value(st.last_error))
            .set("last_warnings", std::move(warnings))
            .set("last_trigger",
                 st.last_trigger.empty() ? json::Value(nullptr) : json::Value(st.last_trigger))
            .set("last_at", time_or_null(st.last_at_ms))
            .set("last_duration_ms", st.last_duration_ms);
    }

    json::Value plugins() {
        std::map<std::string, std::array<int64_t, 3>> counts;
        for (auto& [name, c] : s_->store.delivery_counts())
            counts[name] = c;
        auto list = json::Value::array();
        for (const auto& st : s_->dispatcher.status()) {
            auto c = counts[st.plugin];
            list.push_back(json::Value::object()
                               .set("name", st.plugin)
                               .set("kind", st.kind)
                               .set("version", st.version)
                               .set("loaded", st.loaded)
                               .set("isolation", st.isolated ? "process" : "in-process")
                               .set("paused", st.paused)
                               .set("ordered", st.ordered)
                               .set("concurrency", st.concurrency)
                               .set("max_batch", st.max_batch)
                               .set("due", st.due)
                               .set("later", st.later)
                               .set("held", st.held)
                               .set("in_flight", st.in_flight)
                               .set("queue_lag_seconds", st.oldest_due_age_s)
                               .set("pending", c[0])
                               .set("done", c[1])
                               .set("dead", c[2]));
            counts.erase(st.plugin);
        }
        // Enabled plugins that could not be loaded: their deliveries wait.
        auto down = json::Value::array();
        for (const auto& [name, why] : s_->dispatcher.down()) {
            auto c = counts[name];
            down.push_back(json::Value::object()
                               .set("name", name)
                               .set("reason", why)
                               .set("pending", c[0])
                               .set("dead", c[2]));
            counts.erase(name);
        }
        // Deliveries in the store for plugins this config does not load.
        auto waiting = json::Value::array();
        for (const auto& [name, c] : counts)
            if (c[0] > 0 || c[2] > 0)
                waiting.push_back(
                    json::Value::object().set("name", name).set("pending", c[0]).set("dead", c[2]));
        auto out = json::Value::object()
                       .set("plugins", std::move(list))
                       .set("down", std::move(down))
                       .set("not_loaded", std::move(waiting));
        if (s_->reloader) out.set("generation", s_->reloader->status().generation);
        return out;
    }

    static size_t limit_of(const std::map<std::string, std::string>& q) {
        auto it = q.find("limit");
        return it == q.end() ? 100 : static_cast<size_t>(parse_int("limit", it->second, 1, 1000));
    }

    json::Value events(const std::map<std::string, std::string>& q) {
        static const std::set<std::string> known = {"type",  "status", "since",
                                                    "until", "before", "limit"};
        check_known(q, known);
        EventFilter f;
        if (auto it = q.find("type"); it != q.end()) f.type = it->second;
        if (auto it = q.find("status"); it != q.end()) f.status = parse_state("status", it->second);
        if (auto it = q.find("since"); it != q.end()) f.since_ms = parse_time("since", it->second);
        if (auto it = q.find("until"); it != q.end()) f.until_ms = parse_time("until", it->second);
        if (auto it = q.find("before"); it != q.end()) {
            if (!is_event_id(it->second))
                throw HttpError(400, "before: expected an event id, got '" + it->second + "'");
            f.before_id = it->second;
        }
        f.limit = limit_of(q);
        auto list = json::Value::array();
        auto rows = s_->store.list_events(f);
        for (const auto& e : rows)
            list.push_back(json::Value::object()
                               .set("id", e.id)
                               .set("source", e.source)
                               .set("type", e.type)
                               .set("received_at", iso(e.received_at_ms))
                               .set("deliveries", json::Value::object()
                                                      .set("pending", e.pending)
                                                      .set("done", e.done)
                                                      .set("dead", e.dead)));
        auto out = json::Value::object().set("events", std::move(list));
        out.set("next_before",
                rows.size() == f.limit ? json::Value(rows.back().id) : json::Value(nullptr));
        return out;
    }

    json::Value event(const std::string& id) {
        if (!is_event_id(id)) throw HttpError(400, "'" + id + "' is not an event id");
        auto e = s_->store.get(id);
        if (!e) throw HttpError(404, "no event " + id);
        json::Value body;
        try {
            body = json::parse(e->body);
        } catch (const json::ParseError&) {
            body = json::Value(e->body);
        }
        auto list = json::Value::array();
        for (const auto& d : s_->store.event_deliveries(id))
            list.push_back(delivery_json(d, true));
        return json::Value::object()
            .set("id", e->id)
            .set("source", e->source)
            .set("type", e->type)
            .set("idempotency_key", e->key)
            .set("received_at", iso(e->received_at_ms))
            .set("body", std::move(body))
            .set("deliveries", std::move(list));
    }

    json::Value deliveries(const std::map<std::string, std::string>& q) {
        static const std::set<std::string> known = {"state", "plugin", "before", "limit"};
        check_known(q, known);
        DeliveryFilter f;
        if (auto it = q.find("state"); it != q.end()) f.state = parse_state("state", it->second);
        if (auto it = q.find("plugin"); it != q.end()) f.plugin = it->second;
        if (auto it = q.find("before"); it != q.end())
            f.before_id = parse_int("before", it->second, 1, INT64_MAX);
        f.limit = limit_of(q);
        auto rows = s_->store.list_deliveries(f);
        auto list = json::Value::array();
        for (const auto& d : rows)
            list.push_back(delivery_json(d, false));
        auto out = json::Value::object().set("deliveries", std::move(list));
        out.set("next_before",
                rows.size() == f.limit ? json::Value(rows.back().id) : json::Value(nullptr));
        return out;
    }

    // A body's "ids": delivery ids, each a positive whole number.
    static std::vector<int64_t> ids_of(const json::Value& v) {
        if (!v.is_array()) throw HttpError(400, "ids: expected an array of delivery ids");
        std::vector<int64_t> ids;
        for (const auto& x : v.items()) {
            if (!x.is_integer() || x.as_int64() < 1)
                throw HttpError(400, "ids: expected positive whole numbers");
            ids.push_back(x.as_int64());
        }
        return ids;
    }

    json::Value replay(const std::string& text) {
        // The body was capped while reading (admit, too_large).
        json::Value body = text.empty() ? json::Value::object() : json::parse(text);
        if (!body.is_object()) throw HttpError(400, "body: expected a JSON object");
        std::vector<int64_t> ids;
        if (const json::Value* v = body.find("ids")) {
            ids = ids_of(*v);
        } else if (const json::Value* pl = body.find("plugin"); pl && pl->is_string()) {
            ids = s_->store.dead_ids(pl->as_string(), 100000);
        } else if (body.get_bool("all", false)) {
            ids = s_->store.dead_ids("", 100000);
        } else {
            throw HttpError(400, R"(body: give {"ids":[…]}, {"plugin":"name"} or {"all":true})");
        }
        size_t n = ids.empty() ? 0 : s_->dispatcher.replay(ids);
        return json::Value::object().set("replayed", n).set("asked", ids.size());
    }

    // The operator's way out: pending deliveries marked dead, by ids, by
    // plugin, by event (all given must match), with an optional reason.
    json::Value kill(const std::string& text) {
        json::Value body = text.empty() ? json::Value::object() : json::parse(text);
        if (!body.is_object()) throw HttpError(400, "body: expected a JSON object");
        for (const auto& [k, v] : body.members())
            if (k != "ids" && k != "plugin" && k != "event" && k != "reason")
                throw HttpError(400, "body: unknown field '" + k + "'");
        KillFilter f;
        if (const json::Value* v = body.find("ids")) {
            f.ids = ids_of(*v);
            if (f.ids.empty())
                throw HttpError(400, "ids: expected a non-empty array of delivery ids");
        }
        auto text_field = [&](const char* name) -> std::string {
            const json::Value* v = body.find(name);
            if (v == nullptr) return "";
            if (!v->is_string() || v->as_string().empty() || v->as_string().size() > 512)
                throw HttpError(400, std::string(name) + ": expected a non-empty string");
            return v->as_string();
        };
        f.plugin = text_field("plugin");
        f.event_id = text_field("event");
        const std::string why = text_field("reason");
        if (!f.any())
            throw HttpError(
                400, R"(body: give {"ids":[…]}, {"plugin":"name"} and/or {"event":"evt_…"})");
        const std::string reason =
            "marked dead by the operator" + (why.empty() ? std::string() : ": " + why);
        auto ids = s_->dispatcher.kill(f, reason);
        auto list = json::Value::array();
        for (int64_t id : ids)
            list.push_back(id);
        return json::Value::object().set("killed", ids.size()).set("ids", std::move(list));
    }

    static void check_known(const std::map<std::string, std::string>& q,
                            const std::set<std::string>& known) {
        for (const auto& [k, v] : q)
            if (!known.count(k)) throw HttpError(400, "unknown query parameter '" + k + "'");
    }

    std::shared_ptr<AdminServer::Shared> s_;
};

namespace {

HttpServerOptions admin_http_options(const AdminConfig& config) {
    HttpServerOptions o;
    o.name = "admin";
    o.address = config.address;
    o.port = config.port;
    // Loopback callers only: no per-peer cap (they are all one peer), but
    // enough threads that a few stalled connections block nothing, and
    // short deadlines, since the CLI sends its requests at once.
    o.threads = 16;
    o.max_queued = 64;
    o.max_connections = 256;
    o.header_timeout = std::chrono::milliseconds(5'000);
    o.body_timeout = std::chrono::milliseconds(5'000);
    o.idle_timeout = std::chrono::milliseconds(5'000);
    o.io_timeout = std::chrono::milliseconds(5'000);
    return o;
}

}  // namespace

AdminServer::AdminServer(const AdminConfig& config, Store& store, Dispatcher& dispatcher,
                         Logger& log, Metrics& metrics, Reloader* reloader)
    : config_(config),
      shared_(std::make_shared<Shared>(store, dispatcher, log)),
      service_(std::make_unique<AdminService>(shared_)),
      http_(std::make_unique<HttpServer>(admin_http_options(config), *service_, log, metrics)) {
    shared_->reloader = reloader;
    if (!config.token || !config.token->resolved || config.token->value.empty())
        throw std::runtime_error(
            "admin.token is required while the admin API is enabled (set admin.enabled: false to "
            "run without it)");
    shared_->token_digest = sha256_hex(config.token->value);
}

AdminServer::~AdminServer() {
    stop();
}

void AdminServer::start() {
    http_->start();
}

void AdminServer::stop() {
    http_->stop(std::chrono::milliseconds(2'000));
}

uint16_t AdminServer::port() const {
    return http_->port();
}

}  // namespace clayhook
