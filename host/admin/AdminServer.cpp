#include "admin/AdminServer.h"

#include "admin/StatsHistory.h"
#include "config/ConfigView.h"
#include "console/ConsoleAssets.h"
#include "console/ConsoleSessions.h"
#include "dispatch/Dispatcher.h"
#include "http/HttpServer.h"
#include "log/Logger.h"
#include "reload/Reloader.h"
#include "store/Store.h"
#include "text/Text.h"
#include "util/Clock.h"
#include "verify/Verifier.h"

#include <clayhook/json.hpp>

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/URI.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <istream>
#include <map>
#include <optional>
#include <set>

namespace clayhook {

struct AdminServer::Shared {
    Store& store;
    Dispatcher& dispatcher;
    Logger& log;
    Metrics& metrics;
    Reloader* reloader = nullptr;
    std::string token_digest;  // sha256 hex of the token: compared in constant time
    // The console: sessions signed in with the token, and wrong tokens per peer.
    ConsoleSessions sessions{std::chrono::hours(8), [] { return SystemClock::unix_ms(); }};
    LoginLimiter limiter{5, std::chrono::minutes(1), [] { return SystemClock::unix_ms(); }};
    std::unique_ptr<StatsHistory> history;  // the overview's last hour
    Shared(Store& s, Dispatcher& d, Logger& l, Metrics& m)
        : store(s), dispatcher(d), log(l), metrics(m) {}
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
        if (is_console(req.path)) {
            // The console's pages decide for themselves (the sign-in page and
            // its assets are public); its only body is the sign-in form.
            if (content_length > kMaxConsoleBody) {
                a.answer = HttpReply(413, "", "text/plain");
                return a;
            }
            a.max_body = kMaxConsoleBody;
            return a;
        }
        auto c = std::make_shared<const Caller>(caller(req));
        if (!c->ok) {
            s_->log.warn("admin", "unauthorized request",
                         {{"method", terminal_safe(req.method)},
                          {"path", terminal_safe(req.path)},
                          {"peer", req.peer}});
            a.answer = reply(401, error_json("a valid 'Authorization: Bearer <admin token>' (or a "
                                             "console session) is required"));
            a.answer->set("WWW-Authenticate", "Bearer");
            return a;
        }
        // A request the browser sends on its own (a form or a link of
        // another site) carries the cookie but cannot know the CSRF token.
        if (c->session && req.method != "GET" && req.method != "HEAD") {
            const std::string* t = req.header("x-csrf-token");
            if (t == nullptr || !ConsoleSessions::same(*t, c->session->csrf)) {
                s_->log.warn("admin", "request refused: missing or wrong CSRF token",
                             {{"method", terminal_safe(req.method)},
                              {"path", terminal_safe(req.path)},
                              {"peer", req.peer}});
                a.answer = reply(403, error_json("missing or wrong CSRF token"));
                return a;
            }
        }
        if (content_length > kMaxBody) {
            a.answer = reply(413, error_json("body over 1 MiB"));
            return a;
        }
        a.max_body = kMaxBody;
        a.context = std::move(c);  // handle() acts for the caller admit() checked
        return a;
    }

    HttpReply too_large(const HttpRequest&, uint64_t) override {
        return reply(413, error_json("body over 1 MiB"));
    }

    HttpReply handle(const HttpRequest& req, std::string body,
                     const std::shared_ptr<const void>& context) override {
        try {
            if (is_console(req.path)) return secured(console(req, body));
            return route(req, body, *static_cast<const Caller*>(context.get()));
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

    static constexpr uint64_t kMaxConsoleBody = 4096;
    static constexpr const char* kCookie = "clayhook_session";

    // Who is asking: the token (the CLI, scripts) or a console session.
    struct Caller {
        bool ok = false;
        std::optional<ConsoleSessions::Session> session;  // set when by a session
    };

    bool is_token(std::string_view token) const {
        std::string d = sha256_hex(token);
        return d.size() == s_->token_digest.size() &&
               CRYPTO_memcmp(d.data(), s_->token_digest.data(), d.size()) == 0;
    }

    Caller caller(const HttpRequest& req) const {
        if (const std::string* h = req.header("authorization")) {
            const std::string prefix = "Bearer ";
            if (h->size() > prefix.size() && h->compare(0, prefix.size(), prefix) == 0 &&
                is_token(std::string_view(*h).substr(prefix.size())))
                return {true, std::nullopt};
            return {};  // a wrong token is wrong, whatever cookie comes with it
        }
        if (auto id = cookie(req, kCookie))
            if (auto s = s_->sessions.find(*id)) return {true, std::move(s)};
        return {};
    }

    // The value of cookie `name` in the Cookie header, if sent.
    static std::optional<std::string> cookie(const HttpRequest& req, std::string_view name) {
        const std::string* h = req.header("cookie");
        if (h == nullptr) return std::nullopt;
        std::string_view rest = *h;
        while (!rest.empty()) {
            size_t end = rest.find(';');
            std::string_view part = rest.substr(0, end);
            rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
            while (!part.empty() && part.front() == ' ')
                part.remove_prefix(1);
            if (part.size() > name.size() && part.substr(0, name.size()) == name &&
                part[name.size()] == '=')
                return std::string(part.substr(name.size() + 1));
        }
        return std::nullopt;
    }

    static bool is_console(const std::string& path) {
        return path == "/console" || path.rfind("/console/", 0) == 0;
    }

    // What every console answer carries: the page may run only its own
    // scripts and styles, talk only to this origin, and never be framed.
    static HttpReply secured(HttpReply r) {
        r.set("Content-Security-Policy",
              "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
        r.set("X-Content-Type-Options", "nosniff");
        r.set("X-Frame-Options", "DENY");
        r.set("Referrer-Policy", "no-referrer");
        r.set("Cache-Control", "no-store");
        return r;
    }

    static HttpReply see_other(const std::string& to) {
        HttpReply r(303, "", "text/plain");
        r.set("Location", to);
        return r;
    }

    static HttpReply asset(std::string_view name) {
        const ConsoleAsset* a = find_console_asset(name);
        if (a == nullptr) return HttpReply(404, "not found\n", "text/plain");
        return HttpReply(200, std::string(a->data), std::string(console_content_type(name)));
    }

    // Secure only when the browser reached us over TLS: the admin listener
    // speaks plain HTTP, so that is a TLS proxy in front saying so.
    static std::string cookie_attributes(const HttpRequest& req) {
        const std::string* proto = req.header("x-forwarded-proto");
        return std::string("; Path=/; HttpOnly; SameSite=Strict") +
               (proto != nullptr && *proto == "https" ? "; Secure" : "");
    }

    HttpReply console(const HttpRequest& req, const std::string& body) {
        const std::string& path = req.path;
        const std::string& m = req.method;
        if (path == "/console") return see_other("/console/");
        if (path.rfind("/console/assets/", 0) == 0) {
            if (m != "GET" && m != "HEAD") return HttpReply(405, "use GET\n", "text/plain");
            return asset(std::string_view(path).substr(16));
        }
        if (path == "/console/login") {
            if (m == "POST") return sign_in(req, body);
            if (m != "GET" && m != "HEAD") return HttpReply(405, "use GET or POST\n", "text/plain");
            return asset("login.html");
        }
        if (path == "/console/logout") {
            if (m != "POST") return HttpReply(405, "use POST\n", "text/plain");
            const Caller c = caller(req);
            const std::string* t = req.header("x-csrf-token");
            if (!c.session || t == nullptr || !ConsoleSessions::same(*t, c.session->csrf))
                return reply(403, error_json("missing or wrong CSRF token"));
            s_->sessions.remove(c.session->id);
            s_->log.info("admin", "console sign-out", {{"peer", req.peer}});
            HttpReply r = reply(200, json::Value::object().set("signed_out", true));
            r.set("Set-Cookie", std::string(kCookie) + "=; Max-Age=0" + cookie_attributes(req));
            return r;
        }
        static const char* kPages[] = {"/console/", "/console/events", "/console/dead",
                                       "/console/plugins", "/console/config"};
        bool page = std::find(std::begin(kPages), std::end(kPages), path) != std::end(kPages);
        if (!page && path.rfind("/console/events/", 0) == 0)
            page = is_event_id(std::string_view(path).substr(16));
        if (!page) return HttpReply(404, "not found\n", "text/plain");
        if (m != "GET" && m != "HEAD") return HttpReply(405, "use GET\n", "text/plain");
        // A page without a session is the sign-in page's business.
        if (!caller(req).session) return see_other("/console/login");
        return asset("index.html");
    }

    HttpReply sign_in(const HttpRequest& req, const std::string& body) {
        if (int64_t wait = s_->limiter.blocked_for(req.peer); wait > 0) {
            s_->log.warn("admin", "console sign-in refused: too many wrong tokens",
                         {{"peer", req.peer}});
            HttpReply r = see_other("/console/login?error=rate-limited");
            r.set("Retry-After", std::to_string((wait + 999) / 1000));
            return r;
        }
        std::string token;
        try {
            for (const auto& [k, v] : Poco::URI("/?" + body).getQueryParameters())
                if (k == "token") token = v;
        } catch (const Poco::Exception&) {
        }
        if (token.empty() || !is_token(token)) {
            s_->limiter.failed(req.peer);
            s_->log.warn("admin", "console sign-in refused: wrong token", {{"peer", req.peer}});
            return see_other("/console/login?error=bad-token");
        }
        s_->limiter.succeeded(req.peer);
        const auto session = s_->sessions.create();
        s_->log.info("admin", "console sign-in", {{"peer", req.peer}});
        HttpReply r = see_other("/console/");
        r.set("Set-Cookie", std::string(kCookie) + "=" + session.id +
                                "; Max-Age=" + std::to_string(s_->sessions.ttl().count() / 1000) +
                                cookie_attributes(req));
        return r;
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

    HttpReply route(const HttpRequest& req, const std::string& text, const Caller& c) {
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
        if (is({"admin", "session"})) {
            method("GET");
            if (!c.session) throw HttpError(404, "no console session: this is for the console");
            return reply(200, json::Value::object()
                                  .set("csrf", c.session->csrf)
                                  .set("expires_at", iso(c.session->expires_ms)));
        }
        if (is({"admin", "overview"})) {
            method("GET");
            return reply(200, overview());
        }
        if (is({"admin", "config"})) {
            method("GET");
            return reply(200, config_json());
        }
        if (is({"admin", "dead-letters"})) {
            method("GET");
            return reply(200, dead_letters());
        }
        if (is({"admin", "discard"})) {
            method("POST");
            return reply(200, discard(text));
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
            // The status and the file the host reads, absolute (the host's
            // own directory resolves a relative one), so that a client
            // elsewhere can tell whether it is the file it means.
            const auto answer = [this](const ReloadStatus& st) {
                std::error_code ec;
                std::filesystem::path file = std::filesystem::absolute(s_->reloader->file(), ec);
                json::Value v = reload_json(st);
                v.set("file", ec ? s_->reloader->file() : file.lexically_normal().string());
                return v;
            };
            if (m == "GET") return reply(200, answer(s_->reloader->status()));
            if (m != "POST") throw HttpError(405, "use GET or POST here", "GET, POST");
            auto st = s_->reloader->reload("admin");
            return reply(st.last_result == "ok" ? 200 : 422, answer(st));
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
        static const std::set<std::string> known = {"type",   "status", "since", "until",
                                                    "before", "limit",  "row_id"};
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
        if (auto it = q.find("row_id"); it != q.end()) {
            if (it->second.empty() || it->second.size() > 256)
                throw HttpError(400, "row_id: expected 1 to 256 characters");
            f.row_id = it->second;
        }
        f.limit = limit_of(q);
        auto list = json::Value::array();
        auto rows = s_->store.list_events(f);
        for (const auto& e : rows)
            list.push_back(json::Value::object()
                               .set("id", e.id)
                               .set("source", e.source)
                               .set("type", e.type)
                               .set("idempotency_key", e.key)
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
        static const std::set<std::string> known = {"state", "plugin", "before", "limit", "error"};
        check_known(q, known);
        DeliveryFilter f;
        if (auto it = q.find("state"); it != q.end()) f.state = parse_state("state", it->second);
        if (auto it = q.find("plugin"); it != q.end()) f.plugin = it->second;
        if (auto it = q.find("before"); it != q.end())
            f.before_id = parse_int("before", it->second, 1, INT64_MAX);
        if (auto it = q.find("error"); it != q.end()) f.last_error = it->second;
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

    json::Value overview() {
        auto out = json::Value::object();
        const json::Value p = plugins();
        if (s_->reloader) {
            out.set("generation", s_->reloader->status().generation);
            out.set("reload", reload_json(s_->reloader->status()));
        }
        const Store::Usage u = s_->store.usage();
        auto num_or_null = [](int64_t v) {
            return v >= 0 ? json::Value(static_cast<double>(v)) : json::Value(nullptr);
        };
        json::Value age(nullptr);
        if (u.oldest_pending_ms == 0) age = json::Value(0.0);
        if (u.oldest_pending_ms > 0)
            age = json::Value(std::max(
                0.0, static_cast<double>(SystemClock::unix_ms() - u.oldest_pending_ms) / 1000.0));
        out.set("store", json::Value::object()
                             .set("location", s_->store.location())
                             .set("writable", s_->store.writable())
                             .set("bytes", num_or_null(u.bytes))
                             .set("free_bytes", num_or_null(u.free_bytes))
                             .set("oldest_pending_age_seconds", std::move(age)));
        const StatsHistory::Counts t = s_->history->totals();
        out.set("intake", json::Value::object()
                              .set("accepted", t.accepted)
                              .set("duplicate", t.duplicate)
                              .set("rejected", t.rejected));
        out.set("plugins", *p.find("plugins"));
        out.set("down", *p.find("down"));
        auto history = json::Value::array();
        for (const auto& pt : s_->history->points())
            history.push_back(json::Value::object()
                                  .set("t", iso(pt.t_ms))
                                  .set("accepted", pt.in_interval.accepted)
                                  .set("duplicate", pt.in_interval.duplicate)
                                  .set("rejected", pt.in_interval.rejected)
                                  .set("done", pt.in_interval.done)
                                  .set("dead", pt.in_interval.dead)
                                  .set("store_bytes", num_or_null(pt.store_bytes)));
        out.set("history", std::move(history));
        return out;
    }

    json::Value config_json() {
        if (s_->reloader == nullptr) throw HttpError(404, "no config to show");
        const Config c = s_->reloader->config();
        const ReloadStatus st = s_->reloader->status();
        auto warnings = json::Value::array();
        for (const auto& w : c.warnings)
            warnings.push_back(w);
        for (const auto& w : c.route_warnings)
            warnings.push_back(w);
        for (const auto& w : st.last_warnings)
            warnings.push_back(w);
        return json::Value::object()
            .set("file", s_->reloader->file())
            .set("generation", st.generation)
            .set("config", config_view(c))
            .set("warnings", std::move(warnings));
    }

    json::Value dead_letters() {
        auto groups = json::Value::array();
        for (const auto& g : s_->store.dead_letter_groups(500))
            groups.push_back(json::Value::object()
                                 .set("plugin", g.plugin)
                                 .set("reason", g.reason)
                                 .set("count", g.count)
                                 .set("first_at", time_or_null(g.first_ms))
                                 .set("last_at", time_or_null(g.last_ms)));
        return json::Value::object().set("groups", std::move(groups));
    }

    json::Value discard(const std::string& text) {
        json::Value body = text.empty() ? json::Value::object() : json::parse(text);
        if (!body.is_object()) throw HttpError(400, "body: expected a JSON object");
        const json::Value* v = body.find("ids");
        if (v == nullptr) throw HttpError(400, R"(body: give {"ids":[…]})");
        auto ids = ids_of(*v);
        const size_t n = ids.empty() ? 0 : s_->store.discard_dead(ids);
        s_->log.info("admin", "dead deliveries discarded",
                     {{"asked", std::to_string(ids.size())}, {"discarded", std::to_string(n)}});
        return json::Value::object().set("discarded", n).set("asked", ids.size());
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
      shared_(std::make_shared<Shared>(store, dispatcher, log, metrics)),
      service_(std::make_unique<AdminService>(shared_)),
      http_(std::make_unique<HttpServer>(admin_http_options(config), *service_, log, metrics)) {
    shared_->reloader = reloader;
    if (!config.token || !config.token->resolved || config.token->value.empty())
        throw std::runtime_error(
            "admin.token is required while the admin API is enabled (set admin.enabled: false to "
            "run without it)");
    shared_->token_digest = sha256_hex(config.token->value);
    shared_->history = std::make_unique<StatsHistory>(metrics, store);
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
