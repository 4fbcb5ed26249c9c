// `clayhook deliveries list`, `clayhook replay`, `clayhook plugins`: clients of
// the admin API of a running host. The address and the token come from the
// config (admin.address, admin.port, admin.token); --admin URL overrides the
// address.
#include "clay/ClayApi.h"
#include "cli/Args.h"
#include "cli/Commands.h"
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "text/Text.h"

#include <clayhook/json.hpp>

#include <cstdlib>
#include <iomanip>
#include <optional>
#include <ostream>

namespace clayhook {

namespace {

using namespace cli;

constexpr const char* kDeliveriesUsage =
    R"(usage: clayhook deliveries list [--config FILE] [--admin URL]
         [--state pending|done|dead] [--plugin NAME] [--limit N] [--before ID] [--json]
)";
constexpr const char* kReplayUsage =
    R"(usage: clayhook replay [--config FILE] [--admin URL] (ID... | --plugin NAME | --all-dead)
)";
constexpr const char* kKillUsage =
    R"(usage: clayhook kill [--config FILE] [--admin URL] (ID... | [--plugin NAME] [--event ID])
         [--reason TEXT]
marks pending deliveries dead (the operator's way out of a poison delivery);
replay them once the plugin is fixed
)";
constexpr const char* kReloadUsage =
    R"(usage: clayhook reload [--config FILE] [--admin URL] [--json]
)";
constexpr const char* kPluginsUsage =
    R"(usage: clayhook plugins [list|pause NAME|resume NAME] [--config FILE] [--admin URL] [--json]
)";

std::string default_config_path() {
    const char* env = std::getenv("CLAYHOOK_CONFIG");
    return env && *env ? env : "config/clayhook.yaml";
}

struct Admin {
    std::string base;  // http://127.0.0.1:8081
    std::string token;
};

// The admin URL and token from the config. Returns an exit code on failure.
std::optional<int> admin_from(const Args& a, std::string_view cmd, const char* usage, Admin& out,
                              std::ostream& err) {
    std::string file = a.get("--config").value_or(default_config_path());
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
    (void)usage;
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
        return usage_error(err, "deliveries", "the subcommand is 'list'", kDeliveriesUsage);
    Args a;
    if (auto problem = parse_args(
            args, 2, {"--config", "--admin", "--state", "--plugin", "--limit", "--before"},
            {"--json"}, a);
        !problem.empty() || !a.positional.empty())
        return usage_error(
            err, "deliveries list",
            problem.empty() ? "unexpected argument '" + a.positional[0] + "'" : problem,
            kDeliveriesUsage);
    Admin admin;
    if (auto code = admin_from(a, "deliveries list", kDeliveriesUsage, admin, err)) return *code;
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
        return usage_error(err, "replay", problem, kReplayUsage);
    const int ways = (a.positional.empty() ? 0 : 1) + (a.get("--plugin") ? 1 : 0) +
                     (a.has("--all-dead") ? 1 : 0);
    if (ways != 1)
        return usage_error(err, "replay", "give delivery ids, --plugin NAME or --all-dead (one)",
                           kReplayUsage);
    auto body = json::Value::object();
    if (!a.positional.empty()) {
        std::string why;
        auto ids = delivery_ids(a.positional, why);
        if (!ids) return usage_error(err, "replay", why, kReplayUsage);
        body.set("ids", std::move(*ids));
    } else if (auto p = a.get("--plugin")) {
        body.set("plugin", *p);
    } else {
        body.set("all", true);
    }
    Admin admin;
    if (auto code = admin_from(a, "replay", kReplayUsage, admin, err)) return *code;
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
        return usage_error(err, "kill", problem, kKillUsage);
    if (a.positional.empty() && !a.get("--plugin") && !a.get("--event"))
        return usage_error(err, "kill", "give delivery ids, --plugin NAME or --event ID",
                           kKillUsage);
    auto body = json::Value::object();
    if (!a.positional.empty()) {
        std::string why;
        auto ids = delivery_ids(a.positional, why);
        if (!ids) return usage_error(err, "kill", why, kKillUsage);
        body.set("ids", std::move(*ids));
    }
    if (auto p = a.get("--plugin")) body.set("plugin", *p);
    if (auto e = a.get("--event")) body.set("event", *e);
    if (auto r = a.get("--reason")) body.set("reason", *r);
    Admin admin;
    if (auto code = admin_from(a, "kill", kKillUsage, admin, err)) return *code;
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
        return usage_error(err, "plugins", problem, kPluginsUsage);
    std::string sub = a.positional.empty() ? "list" : a.positional[0];
    if (!((sub == "list" && a.positional.size() <= 1) ||
          ((sub == "pause" || sub == "resume") && a.positional.size() == 2)))
        return usage_error(err, "plugins", "expected list, pause NAME or resume NAME",
                           kPluginsUsage);
    Admin admin;
    if (auto code = admin_from(a, "plugins", kPluginsUsage, admin, err)) return *code;
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

int reload_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config", "--admin"}, {"--json"}, a);
        !problem.empty() || !a.positional.empty())
        return usage_error(
            err, "reload",
            problem.empty() ? "unexpected argument '" + a.positional[0] + "'" : problem,
            kReloadUsage);
    Admin admin;
    if (auto code = admin_from(a, "reload", kReloadUsage, admin, err)) return *code;
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
    if (a.has("--json")) {
        (r.status == 200 ? out : err) << json::dump(v) << "\n";
        return r.status == 200 ? kExitOk : kExitFailed;
    }
    if (r.status == 422) {
        err << "clayhook reload: refused, generation " << v.get_int("generation", 0)
            << " keeps serving: " << terminal_safe(v.get_string("last_error", r.body)) << "\n";
        return kExitFailed;
    }
    if (r.status != 200) {
        err << "clayhook reload: admin API answered " << r.status << ": "
            << terminal_safe(v.get_string("error", r.body)) << "\n";
        return kExitFailed;
    }
    out << "reloaded: generation " << v.get_int("generation", 0) << " serving (took "
        << static_cast<int64_t>(v.get_double("last_duration_ms", 0)) << " ms)\n";
    if (const json::Value* w = v.find("last_warnings"); w && w->is_array())
        for (const auto& x : w->items())
            out << "warning: " << x.as_string() << "\n";
    return kExitOk;
}

}  // namespace

int admin_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args[0] == "deliveries") return deliveries_command(args, out, err);
    if (args[0] == "replay") return replay_command(args, out, err);
    if (args[0] == "reload") return reload_command(args, out, err);
    if (args[0] == "kill") return kill_command(args, out, err);
    return plugins_command(args, out, err);
}

}  // namespace clayhook
