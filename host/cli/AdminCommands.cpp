// `clayhook deliveries list`, `clayhook events list|show`, `clayhook replay`,
// `clayhook plugins`: clients of the admin API of a running host. The address and the token come
// from the config (admin.address, admin.port, admin.token); --admin URL overrides the address.
#include "clay/ClayApi.h"
#include "cli/Args.h"
#include "cli/Commands.h"
#include "cli/DefaultConfig.h"
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "store/Store.h"
#include "text/Text.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeParser.h>

#include <clayhook/json.hpp>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <optional>
#include <ostream>

namespace clayhook {

namespace {

using namespace cli;

struct Admin {
    std::string base;  // http://127.0.0.1:8081
    std::string token;
    std::string config_file;  // the config they came from
};

// The admin URL and token from the config. Returns an exit code on failure.
std::optional<int> admin_from(const Args& a, std::string_view cmd, Admin& out, std::ostream& err) {
    std::string file = a.get("--config").value_or(default_config_file());
    out.config_file = file;
    Config config;
    try {
        config = load_config(file, LoadOptions::with_bundled());
    } catch (const std::exception& e) {
        err << "clayhook " << cmd << ": " << e.what() << "\n";
        return kExitFailed;
    }
    if (auto u = a.get("--admin")) {
        out.base = *u;
        while (!out.base.empty() && out.base.back() == '/')
            out.base.pop_back();
    } else {
        if (!config.admin.enabled) {
            err << "clayhook " << cmd << ": the admin API is disabled in " << file
                << " (admin.enabled: false)\n";
            return kExitFailed;
        }
        std::string host = config.admin.address;
        if (host == "0.0.0.0") host = "127.0.0.1";
        if (host == "::") host = "::1";
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        out.base = "http://" + host + ":" + std::to_string(config.admin.port);
    }
    if (!config.admin.token || !config.admin.token->resolved) {
        err << "clayhook " << cmd << ": admin.token in " << file << " is not set"
            << (config.admin.token ? " (" + config.admin.token->error + ")" : std::string())
            << "\n";
        return kExitFailed;
    }
    out.token = config.admin.token->value;
    return std::nullopt;
}

// One admin call. On success returns the parsed body; else prints why and
// sets `code`.
std::optional<json::Value> call(const Admin& admin, const std::string& method,
                                const std::string& path, const std::string& body,
                                std::string_view cmd, std::ostream& err, int& code) {
    HttpHeaders headers = {{"Authorization", "Bearer " + admin.token}};
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    HttpResponse r;
    try {
        r = http_exchange(method, admin.base + path, headers, body, std::chrono::seconds(30));
    } catch (const NetworkError& e) {
        err << "clayhook " << cmd << ": no answer from the admin API at " << e.url() << ": "
            << e.what() << " (is the host running?)\n";
        code = kExitNetwork;
        return std::nullopt;
    } catch (const std::exception& e) {
        err << "clayhook " << cmd << ": " << e.what() << "\n";
        code = kExitUsage;
        return std::nullopt;
    }
    json::Value v;
    std::string parse_error;
    try {
        v = json::parse(r.body);
    } catch (const json::ParseError& e) {
        v = json::Value::object();
        parse_error = e.what();
    }
    if (r.status == 401) {
        err << "clayhook " << cmd << ": the admin API refused the token (401): check admin.token\n";
        code = kExitUnauthorized;
        return std::nullopt;
    }
    if (r.status < 200 || r.status > 299) {
        err << "clayhook " << cmd << ": admin API answered " << r.status << ": "
            << terminal_safe(v.get_string("error", r.body)) << "\n";
        code = kExitFailed;
        return std::nullopt;
    }
    if (!parse_error.empty()) {
        // Never an empty listing for an answer we could not read.
        err << "clayhook " << cmd << ": admin API answered " << r.status
            << " with a body that is not JSON (" << terminal_safe(parse_error) << ")\n";
        code = kExitFailed;
        return std::nullopt;
    }
    code = kExitOk;
    return v;
}

std::string url_encode(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

std::string str_or(const json::Value& v, std::string_view key, std::string_view dash = "-") {
    const json::Value* x = v.find(key);
    if (x == nullptr || x->is_null()) return std::string(dash);
    // What reaches the terminal: no control characters or raw invalid bytes.
    return terminal_safe(x->is_string() ? x->as_string() : json::dump(*x));
}

int deliveries_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.size() < 2 || args[1] != "list")
        return usage_error(err, "deliveries", "the subcommand is 'list'",
                           command_usage("deliveries"));
    Args a;
    if (auto problem = parse_args(
            args, 2, {"--config", "--admin", "--state", "--plugin", "--limit", "--before"},
            {"--json"}, a);
        !problem.empty() || !a.positional.empty())
        return usage_error(
            err, "deliveries list",
            problem.empty() ? "unexpected argument '" + a.positional[0] + "'" : problem,
            command_usage("deliveries"));
    Admin admin;
    if (auto code = admin_from(a, "deliveries list", admin, err)) return *code;
    std::string q;
    for (const char* k : {"state", "plugin", "limit", "before"})
        if (auto v = a.get(std::string("--") + k))
            q += (q.empty() ? "?" : "&") + std::string(k) + "=" + url_encode(*v);
    int code = 0;
    auto v = call(admin, "GET", "/admin/deliveries" + q, "", "deliveries list", err, code);
    if (!v) return code;
    if (a.has("--json")) {
        out << json::dump(*v) << "\n";
        return kExitOk;
    }
    const json::Value* list = v->find("deliveries");
    if (list == nullptr || !list->is_array() || list->size() == 0) {
        out << "no deliveries\n";
        return kExitOk;
    }
    out << std::left << std::setw(10) << "ID" << std::setw(9) << "STATE" << std::setw(16)
        << "PLUGIN" << std::setw(29) << "EVENT" << std::setw(24) << "TYPE" << std::setw(9)
        << "ATTEMPTS"
        << "LAST ERROR\n";
    for (const auto& d : list->items())
        out << std::left << std::setw(10) << str_or(d, "id") << std::setw(9) << str_or(d, "state")
            << std::setw(16) << str_or(d, "plugin") << std::setw(29) << str_or(d, "event_id")
            << std::setw(24) << str_or(d, "event_type") << std::setw(9) << str_or(d, "attempts")
            << str_or(d, "last_error", "") << "\n";
    if (const json::Value* n = v->find("next_before"); n && !n->is_null())
        out << "more: --before " << json::dump(*n) << "\n";
    return kExitOk;
}

// `s` padded to `width`, always followed by at least one space.
std::string cell(const std::string& s, size_t width) {
    return s.size() < width ? s + std::string(width - s.size(), ' ') : s + " ";
}

// At most `max` bytes of `s` (already terminal-safe), cut on a UTF-8 boundary
// and marked with "…" when cut.
std::string shortened(const std::string& s, size_t max) {
    if (s.size() <= max) return s;
    size_t n = max - 3;  // room for "…" (3 bytes)
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
        --n;
    return s.substr(0, n) + "…";
}

// A --since/--until value the admin API accepts: unix ms or ISO 8601.
bool valid_time(const std::string& v) {
    int64_t ms = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (ec == std::errc() && p == v.data() + v.size()) return ms >= 0;
    Poco::DateTime dt;
    int tzd = 0;
    return Poco::DateTimeParser::tryParse(v, dt, tzd);
}

// The problem with the `events list` flag values, or "" (checked here so a
// typo is a usage error, exit 2, and no request is made).
std::string events_list_problem(const Args& a) {
    if (auto t = a.get("--type"); t && t->empty()) return "--type: expected an event type";
    if (auto s = a.get("--status"); s && *s != "pending" && *s != "done" && *s != "dead")
        return "--status: expected pending, done or dead, got '" + terminal_safe(*s) + "'";
    for (const char* k : {"--since", "--until"})
        if (auto v = a.get(k); v && !valid_time(*v))
            return std::string(k) + ": expected unix milliseconds or an ISO 8601 time, got '" +
                   terminal_safe(*v) + "'";
    if (auto l = a.get("--limit")) {
        int n = 0;
        auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), n);
        if (ec != std::errc() || p != l->data() + l->size() || n < 1 || n > 1000)
            return "--limit: expected a whole number from 1 to 1000, got '" + terminal_safe(*l) +
                   "'";
    }
    if (auto b = a.get("--before"); b && !is_event_id(*b))
        return "--before: expected an event id (evt_ and 23 hex digits), got '" +
               terminal_safe(*b) + "'";
    return "";
}

int events_list(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 2,
                                  {"--config", "--admin", "--type", "--status", "--since",
                                   "--until", "--limit", "--before"},
                                  {"--json"}, a);
        !problem.empty() || !a.positional.empty())
        return usage_error(
            err, "events list",
            terminal_safe(problem.empty() ? "unexpected argument '" + a.positional[0] + "'"
                                          : problem),
            command_usage("events"));
    if (auto problem = events_list_problem(a); !problem.empty())
        return usage_error(err, "events list", problem, command_usage("events"));
    Admin admin;
    if (auto code = admin_from(a, "events list", admin, err)) return *code;
    std::string q;
    for (const char* k : {"type", "status", "since", "until", "limit", "before"})
        if (auto v = a.get(std::string("--") + k))
            q += (q.empty() ? "?" : "&") + std::string(k) + "=" + url_encode(*v);
    int code = 0;
    auto v = call(admin, "GET", "/admin/events" + q, "", "events list", err, code);
    if (!v) return code;
    if (a.has("--json")) {
        out << json::dump(*v) << "\n";
        return kExitOk;
    }
    const json::Value* list = v->find("events");
    if (list == nullptr || !list->is_array() || list->size() == 0) {
        out << "no events\n";
        return kExitOk;
    }
    // The key only when the answer carries it (`idempotency_key`).
    bool keys = false;
    for (const auto& e : list->items())
        keys = keys || e.find("idempotency_key") != nullptr;
    constexpr size_t kKeyWidth = 34;
    out << cell("ID", 28) << cell("RECEIVED_AT", 25) << cell("TYPE", 23) << cell("SOURCE", 12)
        << (keys ? cell("KEY", kKeyWidth) : "") << cell("PENDING", 8) << cell("DONE", 8)
        << "DEAD\n";
    for (const auto& e : list->items()) {
        const json::Value* d = e.find("deliveries");
        const json::Value none = json::Value::object();
        const json::Value& n = d ? *d : none;
        std::string line = cell(str_or(e, "id"), 28) + cell(str_or(e, "received_at"), 25) +
                           cell(str_or(e, "type"), 23) + cell(str_or(e, "source"), 12);
        if (keys) line += cell(shortened(str_or(e, "idempotency_key"), kKeyWidth - 1), kKeyWidth);
        line += cell(str_or(n, "pending"), 8) + cell(str_or(n, "done"), 8) + str_or(n, "dead");
        out << line << "\n";
    }
    if (const json::Value* n = v->find("next_before"); n && !n->is_null())
        out << "more: --before " << str_or(*v, "next_before") << "\n";
    return kExitOk;
}

// `v` as indented JSON, each line after the first starting with `indent`.
// Every key and scalar goes through terminal_safe: json::dump leaves DEL and
// the C1 controls (U+0080–U+009F) as they are.
void pretty(std::string& out, const json::Value& v, const std::string& indent) {
    if (v.is_array() && v.size() > 0) {
        out += "[\n";
        for (size_t i = 0; i < v.size(); ++i) {
            out += indent + "  ";
            pretty(out, v[i], indent + "  ");
            out += i + 1 < v.size() ? ",\n" : "\n";
        }
        out += indent + "]";
    } else if (v.is_object() && v.size() > 0) {
        out += "{\n";
        size_t i = 0;
        for (const auto& [key, item] : v.members()) {
            out += indent + "  " + terminal_safe(json::quote(key)) + ": ";
            pretty(out, item, indent + "  ");
            out += ++i < v.size() ? ",\n" : "\n";
        }
        out += indent + "}";
    } else {
        out += terminal_safe(json::dump(v));
    }
}

std::string duration(const json::Value& v) {
    const json::Value* d = v.find("duration_ms");
    if (d == nullptr || !d->is_number()) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", d->as_double());
    return buf;
}

int events_show(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 2, {"--config", "--admin"}, {"--json"}, a);
        !problem.empty() || a.positional.size() != 1)
        return usage_error(
            err, "events show",
            terminal_safe(!problem.empty()       ? problem
                          : a.positional.empty() ? "give the event id"
                                                 : "unexpected argument '" + a.positional[1] + "'"),
            command_usage("events"));
    const std::string& id = a.positional[0];
    if (!is_event_id(id))
        return usage_error(
            err, "events show",
            "'" + terminal_safe(id) + "' is not an event id (evt_ and 23 hex digits)",
            command_usage("events"));
    Admin admin;
    if (auto code = admin_from(a, "events show", admin, err)) return *code;
    int code = 0;
    auto v = call(admin, "GET", "/admin/events/" + id, "", "events show", err, code);
    if (!v) return code;
    if (a.has("--json")) {
        out << json::dump(*v) << "\n";
        return kExitOk;
    }
    std::string s;
    s += "id:          " + str_or(*v, "id") + "\n";
    s += "source:      " + str_or(*v, "source") + "\n";
    s += "type:        " + str_or(*v, "type") + "\n";
    s += "key:         " + str_or(*v, "idempotency_key") + "\n";
    s += "received_at: " + str_or(*v, "received_at") + "\n";
    if (const json::Value* body = v->find("body"); body == nullptr) {
        s += "body:        -\n";
    } else if (body->is_string()) {
        // Not JSON (the API gives it as a string): raw, escaped.
        s += "body (not JSON, shown with escapes):\n  " + terminal_safe(body->as_string()) + "\n";
    } else {
        s += "body:\n  ";
        pretty(s, *body, "  ");
        s += "\n";
    }
    const json::Value* ds = v->find("deliveries");
    const size_t n = ds && ds->is_array() ? ds->size() : 0;
    s += "deliveries:  " + std::to_string(n) + (n == 0 ? " (no plugin took this event)\n" : "\n");
    for (size_t i = 0; i < n; ++i) {
        const json::Value& d = (*ds)[i];
        s += "  delivery " + str_or(d, "id") + "  plugin " + str_or(d, "plugin") + "  " +
             str_or(d, "state") + "  attempts " + str_or(d, "attempts") + "\n";
        if (const json::Value* due = d.find("due_at"); due && !due->is_null())
            s += "    due_at:      " + str_or(d, "due_at") + "\n";
        if (const json::Value* fin = d.find("finished_at"); fin && !fin->is_null())
            s += "    finished_at: " + str_or(d, "finished_at") + "\n";
        if (const json::Value* e = d.find("last_error"); e && !e->is_null())
            s += "    last_error:  " + str_or(d, "last_error") + "\n";
        const json::Value* h = d.find("attempts_history");
        if (h == nullptr || !h->is_array() || h->size() == 0) continue;
        s += "    attempts that did not succeed:\n";
        for (const auto& t : h->items())
            s += "      #" + cell(str_or(t, "attempt"), 4) + cell(str_or(t, "started_at"), 25) +
                 cell(duration(t), 10) + cell(str_or(t, "outcome"), 6) + str_or(t, "reason", "") +
                 "\n";
    }
    out << s;
    return kExitOk;
}

// The delivery ids given on the command line, as a JSON array; nullopt with
// `why` when one is not an id.
std::optional<json::Value> delivery_ids(const std::vector<std::string>& args, std::string& why) {
    auto ids = json::Value::array();
    for (const auto& p : args) {
        char* end = nullptr;
        long long id = std::strtoll(p.c_str(), &end, 10);
        if (p.empty() || *end != '\0' || id < 1) {
            why = "'" + p + "' is not a delivery id";
            return std::nullopt;
        }
        ids.push_back(static_cast<int64_t>(id));
    }
    return ids;
}

int replay_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config", "--admin", "--plugin"}, {"--all-dead"}, a);
        !problem.empty())
        return usage_error(err, "replay", problem, command_usage("replay"));
    const int ways = (a.positional.empty() ? 0 : 1) + (a.get("--plugin") ? 1 : 0) +
                     (a.has("--all-dead") ? 1 : 0);
    if (ways != 1)
        return usage_error(err, "replay", "give delivery ids, --plugin NAME or --all-dead (one)",
                           command_usage("replay"));
    auto body = json::Value::object();
    if (!a.positional.empty()) {
        std::string why;
        auto ids = delivery_ids(a.positional, why);
        if (!ids) return usage_error(err, "replay", why, command_usage("replay"));
        body.set("ids", std::move(*ids));
    } else if (auto p = a.get("--plugin")) {
        body.set("plugin", *p);
    } else {
        body.set("all", true);
    }
    Admin admin;
    if (auto code = admin_from(a, "replay", admin, err)) return *code;
    int code = 0;
    auto v = call(admin, "POST", "/admin/replay", json::dump(body), "replay", err, code);
    if (!v) return code;
    int64_t replayed = v->get_int("replayed", 0), asked = v->get_int("asked", 0);
    out << "replayed " << replayed << " dead deliver" << (replayed == 1 ? "y" : "ies");
    if (asked != replayed) out << " (" << (asked - replayed) << " not dead or not found)";
    out << "\n";
    return !a.positional.empty() && replayed < asked ? kExitFailed : kExitOk;
}

int kill_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem =
            parse_args(args, 1, {"--config", "--admin", "--plugin", "--event", "--reason"}, {}, a);
        !problem.empty())
        return usage_error(err, "kill", problem, command_usage("kill"));
    if (a.positional.empty() && !a.get("--plugin") && !a.get("--event"))
        return usage_error(err, "kill", "give delivery ids, --plugin NAME or --event ID",
                           command_usage("kill"));
    auto body = json::Value::object();
    if (!a.positional.empty()) {
        std::string why;
        auto ids = delivery_ids(a.positional, why);
        if (!ids) return usage_error(err, "kill", why, command_usage("kill"));
        body.set("ids", std::move(*ids));
    }
    if (auto p = a.get("--plugin")) body.set("plugin", *p);
    if (auto e = a.get("--event")) body.set("event", *e);
    if (auto r = a.get("--reason")) body.set("reason", *r);
    Admin admin;
    if (auto code = admin_from(a, "kill", admin, err)) return *code;
    int code = 0;
    auto v = call(admin, "POST", "/admin/kill", json::dump(body), "kill", err, code);
    if (!v) return code;
    const int64_t killed = v->get_int("killed", 0);
    out << "marked " << killed << " pending deliver" << (killed == 1 ? "y" : "ies") << " dead";
    if (const json::Value* ids = v->find("ids"); ids && ids->is_array() && !ids->items().empty()) {
        out << ":";
        for (const auto& x : ids->items())
            out << " " << json::dump(x);
    }
    out << "\n";
    return !a.positional.empty() && killed < static_cast<int64_t>(a.positional.size()) ? kExitFailed
                                                                                       : kExitOk;
}

int plugins_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config", "--admin"}, {"--json"}, a);
        !problem.empty())
        return usage_error(err, "plugins", problem, command_usage("plugins"));
    std::string sub = a.positional.empty() ? "list" : a.positional[0];
    if (!((sub == "list" && a.positional.size() <= 1) ||
          ((sub == "pause" || sub == "resume") && a.positional.size() == 2)))
        return usage_error(err, "plugins", "expected list, pause NAME or resume NAME",
                           command_usage("plugins"));
    Admin admin;
    if (auto code = admin_from(a, "plugins", admin, err)) return *code;
    int code = 0;
    if (sub != "list") {
        auto v = call(admin, "POST", "/admin/plugins/" + url_encode(a.positional[1]) + "/" + sub,
                      "", "plugins " + sub, err, code);
        if (!v) return code;
        out << a.positional[1] << (sub == "pause" ? " paused\n" : " resumed\n");
        return kExitOk;
    }
    auto v = call(admin, "GET", "/admin/plugins", "", "plugins", err, code);
    if (!v) return code;
    if (a.has("--json")) {
        out << json::dump(*v) << "\n";
        return kExitOk;
    }
    out << std::left << std::setw(16) << "PLUGIN" << std::setw(24) << "KIND" << std::setw(8)
        << "PAUSED" << std::setw(8) << "LOADED" << std::setw(9) << "PENDING" << std::setw(10)
        << "IN_FLIGHT" << std::setw(10) << "DONE" << std::setw(8) << "DEAD"
        << "LAG_S\n";
    if (const json::Value* list = v->find("plugins"); list && list->is_array())
        for (const auto& p : list->items())
            out << std::left << std::setw(16) << str_or(p, "name") << std::setw(24)
                << (str_or(p, "kind") + " " + str_or(p, "version")) << std::setw(8)
                << (p.get_bool("paused", false) ? "yes" : "no") << std::setw(8)
                << (p.get_bool("loaded", true) ? "yes" : "no") << std::setw(9)
                << str_or(p, "pending") << std::setw(10) << str_or(p, "in_flight") << std::setw(10)
                << str_or(p, "done") << std::setw(8) << str_or(p, "dead")
                << str_or(p, "queue_lag_seconds") << "\n";
    if (const json::Value* list = v->find("down"); list && list->is_array())
        for (const auto& p : list->items())
            out << "DOWN: " << str_or(p, "name") << " (" << str_or(p, "pending")
                << " pending deliveries wait for it): " << terminal_safe(str_or(p, "reason"))
                << "\n";
    if (const json::Value* list = v->find("not_loaded"); list && list->is_array())
        for (const auto& p : list->items())
            out << "not loaded: " << str_or(p, "name") << " (" << str_or(p, "pending")
                << " pending, " << str_or(p, "dead") << " dead)\n";
    return kExitOk;
}

// Whether the file the host reloaded (`host_file`, absolute as the admin API
// gives it) is the config given here (`cli_file`, relative to this
// directory): both resolved with weakly_canonical, so that symlinks and
// `..` do not make one file two. A relative or missing `host_file` (a host
// that does not say, or says relative to its own directory) is not compared.
bool same_config_file(const std::string& host_file, const std::string& cli_file) {
    namespace fs = std::filesystem;
    const fs::path host(host_file);
    if (host_file.empty() || !host.is_absolute()) return true;
    std::error_code e1, e2;
    fs::path h = fs::weakly_canonical(host, e1);
    fs::path c = fs::absolute(cli_file, e2);
    if (!e2) c = fs::weakly_canonical(c, e2);
    if (e1) h = host.lexically_normal();
    if (e2) c = fs::path(cli_file).lexically_normal();
    return h == c;
}

void warn_if_other_file(const std::string& host_file, const std::string& cli_file,
                        std::ostream& err) {
    if (same_config_file(host_file, cli_file)) return;
    err << "clayhook reload: warning: the host reloaded " << terminal_safe(host_file) << ", not "
        << terminal_safe(cli_file) << " given here\n";
}

int reload_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config", "--admin"}, {"--json"}, a);
        !problem.empty() || !a.positional.empty())
        return usage_error(
            err, "reload",
            problem.empty() ? "unexpected argument '" + a.positional[0] + "'" : problem,
            command_usage("reload"));
    Admin admin;
    if (auto code = admin_from(a, "reload", admin, err)) return *code;
    // A refused reload answers 422 with the status: show it, exit 1.
    HttpResponse r;
    try {
        r = http_exchange("POST", admin.base + "/admin/reload",
                          {{"Authorization", "Bearer " + admin.token}}, "",
                          std::chrono::minutes(5));
    } catch (const NetworkError& e) {
        err << "clayhook reload: no answer from the admin API at " << e.url() << ": " << e.what()
            << " (is the host running?)\n";
        return kExitNetwork;
    } catch (const std::exception& e) {
        err << "clayhook reload: " << e.what() << "\n";
        return kExitUsage;
    }
    if (r.status == 401) {
        err << "clayhook reload: the admin API refused the token (401): check admin.token\n";
        return kExitUnauthorized;
    }
    json::Value v;
    try {
        v = json::parse(r.body);
    } catch (const json::ParseError&) {
        err << "clayhook reload: admin API answered " << r.status << ": " << terminal_safe(r.body)
            << "\n";
        return kExitFailed;
    }
    // The file the host read (absolute; older hosts do not say).
    const json::Value* f = v.is_object() ? v.find("file") : nullptr;
    const std::string host_file = f && f->is_string() ? f->as_string() : "";
    if (a.has("--json")) {
        (r.status == 200 ? out : err) << json::dump(v) << "\n";
        warn_if_other_file(host_file, admin.config_file, err);
        return r.status == 200 ? kExitOk : kExitFailed;
    }
    if (r.status == 422) {
        err << "clayhook reload: refused, generation " << v.get_int("generation", 0)
            << " keeps serving: " << terminal_safe(v.get_string("last_error", r.body)) << "\n";
        warn_if_other_file(host_file, admin.config_file, err);
        return kExitFailed;
    }
    if (r.status != 200) {
        err << "clayhook reload: admin API answered " << r.status << ": "
            << terminal_safe(v.get_string("error", r.body)) << "\n";
        return kExitFailed;
    }
    out << "reloaded" << (host_file.empty() ? "" : " " + terminal_safe(host_file))
        << ": generation " << v.get_int("generation", 0) << " serving (took "
        << static_cast<int64_t>(v.get_double("last_duration_ms", 0)) << " ms)\n";
    if (const json::Value* w = v.find("last_warnings"); w && w->is_array())
        for (const auto& x : w->items())
            out << "warning: " << terminal_safe(x.is_string() ? x.as_string() : json::dump(x))
                << "\n";
    warn_if_other_file(host_file, admin.config_file, err);
    return kExitOk;
}

}  // namespace

int events_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.size() >= 2 && args[1] == "list") return events_list(args, out, err);
    if (args.size() >= 2 && args[1] == "show") return events_show(args, out, err);
    return usage_error(err, "events", "the subcommand is 'list' or 'show'",
                       command_usage("events"));
}

int admin_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args[0] == "deliveries") return deliveries_command(args, out, err);
    if (args[0] == "replay") return replay_command(args, out, err);
    if (args[0] == "reload") return reload_command(args, out, err);
    if (args[0] == "kill") return kill_command(args, out, err);
    return plugins_command(args, out, err);
}

}  // namespace clayhook
