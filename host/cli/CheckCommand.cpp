// `clayhook check`: loads a config the way `serve` would, loads and creates
// every plugin, and reports what it found, without ever showing a secret.
#include "app/Generation.h"
#include "cli/Commands.h"

#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginSet.h"
#include "routing/EventCatalogue.h"
#include "store/PgStore.h"

#include <clayhook/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>

namespace clayhook {

namespace {

using json::Value;

std::string ms_text(std::chrono::milliseconds d) {
    auto ms = d.count();
    if (ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
    if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : sep) + s;
    return out;
}

Value secret_json(const Secret& s) {
    Value o = Value::object();
    o.set("ref", s.ref);  // as written: a name or a path, never the value
    o.set("resolved", s.resolved);
    if (s.resolved)
        o.set("from", s.origin);
    else
        o.set("error", s.error);
    o.set("at", s.pos.str());
    return o;
}

std::string event_type_text(const EventTypeConfig& e) {
    switch (e.from) {
        case EventTypeFrom::body_field:
            return "body field '" + e.field + "'";
        case EventTypeFrom::header:
            return "header " + e.header;
        case EventTypeFrom::fixed:
            return "fixed '" + e.value + "'";
    }
    return "";
}

std::string idempotency_text(const IdempotencyConfig& i) {
    std::string out;
    if (!i.header.empty()) out += "header " + i.header + ", else ";
    if (!i.fields.empty()) out += "fields " + join(i.fields, "+") + ", else ";
    return out + "sha256(body)";
}

class Report {
  public:
    std::vector<std::string> errors, warnings;
    Value root = Value::object();
};

}  // namespace

int check_command(const std::string& file, bool as_json, std::ostream& out, std::ostream& err) {
    Report r;
    Config config;
    bool loaded = false;
    try {
        config = load_config(file, LoadOptions::with_bundled());
        loaded = true;
    } catch (const ConfigError& e) {
        r.errors.push_back(e.what());
    }

    // Plugin logs go to a buffer: the report is what check prints. Secrets
    // resolved by the config are redacted from it all the same.
    std::ostringstream plugin_log;
    Logger log(plugin_log, Level::warn);
    Metrics metrics;
    PluginSet plugins;
    std::string stage_dir;
    Value sources = Value::array(), plugin_list = Value::array(), routes = Value::array();
    Value store = Value::object();

    if (loaded) {
        for (const Secret* s : config.all_secrets()) {
            if (s->resolved)
                log.add_secret(s->value);
            else
                r.errors.push_back(s->pos.str() + ": secret " + s->ref + " " + s->error);
        }
        for (const auto& w : config.warnings)
            r.warnings.push_back(w);
        for (const auto* f : {&config.listener.tls.cert_file, &config.listener.tls.key_file})
            if (!f->empty() && !std::ifstream(*f))
                r.errors.push_back(file + ": listener.tls: cannot read " + *f);

        // The store: what serve will open. check never connects to a
        // database (serve does, and says why it cannot).
        store.set("engine", config.store.engine);
        if (config.store.engine == "postgres") {
            if (config.store.postgres_url && config.store.postgres_url->resolved) {
                try {
                    PgUrlInfo pg = inspect_postgres_url(config.store.postgres_url->value);
                    store.set("location", pg.name);
                    if (!pg.local() && pg.sslmode != "verify-full" && pg.sslmode != "verify-ca")
                        r.warnings.push_back(
                            "store.postgres_url reaches " + pg.host + " with sslmode " +
                            (pg.sslmode.empty() ? std::string("prefer (libpq's default)")
                                                : pg.sslmode) +
                            ": the server's certificate is not verified, so the password and "
                            "every delivery can be read by whoever sits in between; use "
                            "sslmode=verify-full and sslrootcert");
                } catch (const std::exception& e) {
                    r.errors.push_back(config.store.postgres_url->pos.str() + ": " + e.what());
                }
            }
            if (config.store.postgres_url)
                store.set("url", secret_json(*config.store.postgres_url));
        } else {
            store.set("location", config.store.path);
        }
        store.set("durable", config.store.durable);
        store.set("host_id", config.store.host_id.empty() ? std::string("(hostname:pid:random)")
                                                          : config.store.host_id);
        auto kept = [](std::chrono::milliseconds d) {
            return d.count() == 0 ? std::string("forever") : ms_text(d);
        };
        store.set("retention", kept(config.store.retention));
        store.set("dead_retention", kept(config.store.dead_retention));
        store.set("dedup_retention", ms_text(config.store.dedup_retention));
        store.set("lease", ms_text(config.dispatch.lease));
        store.set("poll_interval", ms_text(config.dispatch.poll_interval));

        for (const auto& s : config.sources) {
            Value o = Value::object();
            o.set("name", s.name);
            o.set("path", s.path);
            o.set("scheme", scheme_name(s.verify.scheme));
            o.set("header", s.verify.header);
            if (!s.verify.timestamp_header.empty()) {
                o.set("timestamp_header", s.verify.timestamp_header);
                o.set("tolerance", ms_text(s.verify.tolerance));
            }
            o.set("max_body_bytes", static_cast<int64_t>(s.max_body_bytes));
            o.set("event_type", event_type_text(s.event_type));
            o.set("idempotency", idempotency_text(s.idempotency));
            Value secrets = Value::array();
            for (const auto& sec : s.verify.secrets)
                secrets.push_back(secret_json(sec));
            o.set("secrets", secrets);
            sources.push_back(o);
        }

        try {
            stage_dir = make_stage_dir();
            plugins = PluginSet::load(config, stage_dir, log, metrics);
        } catch (const std::exception& e) {
            r.errors.push_back(e.what());
        }
        for (const auto& pc : config.plugins) {
            Value o = Value::object();
            o.set("name", pc.name);
            o.set("library", pc.library);
            o.set("path", pc.library_path);
            o.set("isolation", isolation_name(pc.isolation));
            if (pc.memory_limit > 0) o.set("memory_limit", static_cast<int64_t>(pc.memory_limit));
            const PluginInstance* inst = nullptr;
            for (const auto& i : plugins.instances)
                if (i->name() == pc.name) inst = i.get();
            if (!pc.enabled) {
                o.set("status", "disabled");
            } else if (inst != nullptr) {
                o.set("status", "loaded");
                o.set("plugin", inst->info().kind);
                o.set("version", inst->info().version);
                o.set("abi", inst->info().abi);
                Value pats = Value::array();
                for (const auto& p : inst->patterns())
                    pats.push_back(p.text());
                o.set("events", pats);
                o.set("events_from", pc.events ? "config" : "plugin");
                o.set("max_batch_size", static_cast<int64_t>(inst->max_batch_size()));
                o.set("max_concurrency", static_cast<int64_t>(inst->max_concurrency()));
                o.set("config", "accepted");
                if (!inst->info().declared_config.empty()) {
                    Value declared = Value::array();
                    for (const auto& line : inst->info().declared_config)
                        declared.push_back(line);
                    o.set("declared_config", declared);
                }
            } else {
                o.set("status", "refused");
                for (const auto& ref : plugins.refused)
                    if (ref.name == pc.name) {
                        o.set("reason", ref.reason);
                        r.errors.push_back(ref.reason);
                    }
            }
            Value secrets = Value::array();
            for (const auto& sec : pc.secrets)
                secrets.push_back(secret_json(sec));
            if (!pc.secrets.empty()) o.set("secrets", secrets);
            plugin_list.push_back(o);
        }

        // Routes over every type we know: the catalogue and fixed source types.
        std::vector<std::string> known = clay_event_catalogue();
        for (const auto& s : config.sources)
            if (s.event_type.from == EventTypeFrom::fixed &&
                std::find(known.begin(), known.end(), s.event_type.value) == known.end())
                known.push_back(s.event_type.value);
        for (const auto& type : known) {
            Value route = Value::object();
            route.set("event", type);
            Value names = Value::array();
            for (auto* i : plugins.route(type))
                names.push_back(i->name());
            route.set("plugins", names);
            routes.push_back(route);
        }
        for (auto& w : route_warnings(config, plugins))
            r.warnings.push_back(std::move(w));
        plugins = PluginSet{};  // destroy instances and unload before the stage dir goes
        if (!stage_dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(stage_dir, ec);
        }
    }

    bool ok = r.errors.empty();
    if (as_json) {
        Value root = Value::object();
        root.set("config", file);
        root.set("ok", ok);
        root.set("store", store);
        root.set("sources", sources);
        root.set("plugins", plugin_list);
        root.set("routes", routes);
        Value errs = Value::array(), warns = Value::array();
        for (const auto& e : r.errors)
            errs.push_back(e);
        for (const auto& w : r.warnings)
            warns.push_back(w);
        root.set("errors", errs);
        root.set("warnings", warns);
        out << json::dump(root) << "\n";
        return ok ? kExitOk : kExitFailed;
    }

    out << "clayhook check: " << file << "\n";
    if (loaded) {
        out << "\nstore\n  " << store.get_string("engine", "") << "  "
            << store.get_string("location", "(unknown)")
            << (store.get_bool("durable", true) ? "" : "  (not durable)") << "\n";
        if (const Value* url = store.find("url"))
            out << "    postgres_url " << url->get_string("ref", "") << ": "
                << (url->get_bool("resolved", false)
                        ? "resolved from " + url->get_string("from", "")
                        : url->get_string("error", ""))
                << " (check does not connect; serve does at start)\n";
        out << "    host_id " << store.get_string("host_id", "");
        if (store.get_string("engine", "") == "postgres")
            out << "; lease " << store.get_string("lease", "") << ", poll every "
                << store.get_string("poll_interval", "");
        else
            out << "; one process at a time (lock file " << store.get_string("location", "")
                << ".lock)";
        out << "\n    retention " << store.get_string("retention", "") << " (dead "
            << store.get_string("dead_retention", "") << "), dedup keys "
            << store.get_string("dedup_retention", "") << "\n";
        out << "\nsources\n";
        for (const auto& s : sources.items()) {
            out << "  " << s.get_string("name", "") << "  POST " << s.get_string("path", "")
                << "\n    verify: " << s.get_string("scheme", "") << " (header "
                << s.get_string("header", "");
            if (s.find("timestamp_header"))
                out << ", timestamp " << s.get_string("timestamp_header", "") << " within "
                    << s.get_string("tolerance", "");
            out << ")\n";
            for (const auto& sec : s.find("secrets")->items()) {
                out << "    secret " << sec.get_string("ref", "") << ": "
                    << (sec.get_bool("resolved", false)
                            ? "resolved from " + sec.get_string("from", "")
                            : sec.get_string("error", ""))
                    << "\n";
            }
            out << "    max body: " << s.get_int("max_body_bytes", 0)
                << " bytes; event type: " << s.get_string("event_type", "")
                << "; idempotency: " << s.get_string("idempotency", "") << "\n";
        }
        out << "\nplugins\n";
        if (plugin_list.size() == 0) out << "  (none)\n";
        for (const auto& p : plugin_list.items()) {
            std::string status = p.get_string("status", "");
            out << "  " << p.get_string("name", "") << "  " << status;
            if (status == "loaded") {
                std::vector<std::string> pats;
                for (const auto& e : p.find("events")->items())
                    pats.push_back(e.as_string());
                out << ": " << p.get_string("plugin", "") << " " << p.get_string("version", "")
                    << ", ABI " << p.get_string("abi", "") << ", " << p.get_string("path", "")
                    << "\n    isolation: " << p.get_string("isolation", "")
                    << (p.get_int("memory_limit", 0) > 0
                            ? ", memory_limit " +
                                  std::to_string(p.get_int("memory_limit", 0) / (1024 * 1024)) +
                                  " MiB"
                            : std::string())
                    << "\n    events: " << join(pats, ", ") << " (from the "
                    << p.get_string("events_from", "") << ")";
                if (p.get_int("max_batch_size", 0) > 0)
                    out << "; batches of up to " << p.get_int("max_batch_size", 0);
                if (p.get_int("max_concurrency", 0) > 0)
                    out << "; at most " << p.get_int("max_concurrency", 0) << " calls at once";
                out << "\n    config: accepted";
                if (const Value* d = p.find("declared_config")) {
                    std::vector<std::string> lines;
                    for (const auto& l : d->items())
                        lines.push_back(l.as_string());
                    out << " (declared): " << join(lines, ", ");
                }
                out << "\n";
            } else if (status == "refused") {
                out << "\n    " << p.get_string("reason", "")
                    << "\n    a host started with this config serves without it: its deliveries "
                       "are kept and wait until a reload loads it\n";
            } else {
                out << " (" << p.get_string("library", "") << ")\n";
            }
        }
        out << "\nroutes\n";
        for (const auto& rt : routes.items()) {
            std::vector<std::string> names;
            for (const auto& n : rt.find("plugins")->items())
                names.push_back(n.as_string());
            out << "  " << rt.get_string("event", "") << " -> "
                << (names.empty() ? "(nothing)" : join(names, ", ")) << "\n";
        }
    }
    if (!r.warnings.empty()) {
        out << "\nwarnings\n";
        for (const auto& w : r.warnings)
            out << "  " << w << "\n";
    }
    if (!r.errors.empty()) {
        out << "\nerrors\n";
        for (const auto& e : r.errors)
            out << "  " << e << "\n";
    }
    out << "\n"
        << (ok ? "usable" : "NOT usable") << ": " << r.errors.size() << " error(s), "
        << r.warnings.size() << " warning(s)\n";
    (void)err;
    return ok ? kExitOk : kExitFailed;
}

}  // namespace clayhook
