#include "config/ConfigView.h"

namespace clayhook {

namespace {

using json::Value;

std::string ms(std::chrono::milliseconds d) {
    const auto n = d.count();
    if (n == 0) return "0";
    if (n % 86'400'000 == 0) return std::to_string(n / 86'400'000) + "d";
    if (n % 3'600'000 == 0) return std::to_string(n / 3'600'000) + "h";
    if (n % 60'000 == 0) return std::to_string(n / 60'000) + "m";
    if (n % 1000 == 0) return std::to_string(n / 1000) + "s";
    return std::to_string(n) + "ms";
}

std::string kept(std::chrono::milliseconds d) {
    return d.count() == 0 ? std::string("forever") : ms(d);
}

Value secret(const Secret& s) {
    return Value::object()
        .set("ref", s.ref)
        .set("resolved", s.resolved)
        .set("from", s.resolved ? Value(s.origin) : Value(nullptr));
}

Value retry(const RetryPolicy& r) {
    return Value::object()
        .set("max_attempts", r.max_attempts)
        .set("backoff_base", ms(r.backoff_base))
        .set("backoff_cap", ms(r.backoff_cap))
        .set("max_age", ms(r.max_age));
}

// The plugin's config subtree with every resolved secret value replaced.
Value plugin_config(const PluginConfig& p) {
    std::string text = p.config_json;
    for (const auto& s : p.secrets) {
        if (!s.resolved || s.value.empty()) continue;
        const std::string quoted = json::quote(s.value);
        for (size_t at = text.find(quoted); at != std::string::npos;
             at = text.find(quoted, at + 12))
            text.replace(at, quoted.size(), "\"[redacted]\"");
    }
    try {
        return json::parse(text);
    } catch (const json::ParseError&) {
        return Value("(not shown)");
    }
}

}  // namespace

json::Value config_view(const Config& c) {
    Value listener = Value::object()
                         .set("address", c.listener.address)
                         .set("port", c.listener.port)
                         .set("server", c.listener.event_loops() ? "events" : "threads")
                         .set("loops", c.listener.loops)
                         .set("threads", c.listener.threads)
                         .set("max_connections", c.listener.max_connections)
                         .set("max_connections_per_peer", c.listener.max_connections_per_peer)
                         .set("tls", !c.listener.tls.cert_file.empty());
    Value admin = Value::object()
                      .set("enabled", c.admin.enabled)
                      .set("address", c.admin.address)
                      .set("port", c.admin.port)
                      .set("token", c.admin.token ? secret(*c.admin.token) : Value(nullptr));
    Value store =
        Value::object()
            .set("engine", c.store.engine)
            .set("path", c.store.engine == "sqlite" ? Value(c.store.path) : Value(nullptr))
            .set("postgres_url",
                 c.store.postgres_url ? secret(*c.store.postgres_url) : Value(nullptr))
            .set("durable", c.store.durable)
            .set("retention", kept(c.store.retention))
            .set("dead_retention", kept(c.store.dead_retention))
            .set("dedup_retention", ms(c.store.dedup_retention))
            .set("min_free_space", static_cast<double>(c.store.min_free_space))
            .set("host_id", c.store.host_id);
    Value sources = Value::array();
    for (const auto& s : c.sources) {
        Value secrets = Value::array();
        for (const auto& sec : s.verify.secrets)
            secrets.push_back(secret(sec));
        sources.push_back(Value::object()
                              .set("name", s.name)
                              .set("path", s.path)
                              .set("scheme", scheme_name(s.verify.scheme))
                              .set("header", s.verify.header)
                              .set("secrets", std::move(secrets))
                              .set("max_body_bytes", static_cast<double>(s.max_body_bytes)));
    }
    Value plugins = Value::array();
    for (const auto& p : c.plugins) {
        Value events = Value(nullptr);
        if (p.events) {
            events = Value::array();
            for (const auto& e : *p.events)
                events.push_back(e);
        }
        plugins.push_back(Value::object()
                              .set("name", p.name)
                              .set("library", p.library)
                              .set("enabled", p.enabled)
                              .set("isolation", isolation_name(p.isolation))
                              .set("events", std::move(events))
                              .set("ordered", p.ordered)
                              .set("concurrency", p.concurrency)
                              .set("retry", retry(p.retry))
                              .set("config", plugin_config(p)));
    }
    Value dispatch = Value::object()
                         .set("workers", c.dispatch.workers)
                         .set("call_timeout", ms(c.dispatch.call_timeout))
                         .set("batch_linger", ms(c.dispatch.batch_linger))
                         .set("shutdown_timeout", ms(c.dispatch.shutdown_timeout))
                         .set("lease", ms(c.dispatch.lease))
                         .set("poll_interval", ms(c.dispatch.poll_interval))
                         .set("poison_after", c.dispatch.poison_after)
                         .set("retry", retry(c.dispatch.retry));
    return Value::object()
        .set("listener", std::move(listener))
        .set("admin", std::move(admin))
        .set("store", std::move(store))
        .set("sources", std::move(sources))
        .set("plugins", std::move(plugins))
        .set("dispatch", std::move(dispatch))
        .set("log", Value::object().set("level", c.log.level).set("format", c.log.format));
}

}  // namespace clayhook
