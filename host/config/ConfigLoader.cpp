#include "config/ConfigLoader.h"

#include "config/ConfigError.h"
#include "config/SecretResolver.h"
#include "config/Units.h"
#include "text/Text.h"

#include <yaml-cpp/yaml.h>
#include <clayhook/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace clayhook {

std::string Position::str() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

const char* isolation_name(Isolation i) {
    return i == Isolation::process ? "process" : "in-process";
}

const char* scheme_name(VerifyScheme s) {
    switch (s) {
        case VerifyScheme::hmac_sha256:
            return "hmac-sha256";
        case VerifyScheme::hmac_sha256_timestamp:
            return "hmac-sha256-timestamp";
        case VerifyScheme::token:
            return "token";
        case VerifyScheme::standard_webhooks:
            return "standard-webhooks";
    }
    return "?";
}

std::vector<const Secret*> Config::all_secrets() const {
    std::vector<const Secret*> out;
    if (admin.token) out.push_back(&*admin.token);
    if (store.postgres_url) out.push_back(&*store.postgres_url);
    for (const auto& s : sources)
        for (const auto& sec : s.verify.secrets)
            out.push_back(&sec);
    for (const auto& p : plugins)
        for (const auto& sec : p.secrets)
            out.push_back(&sec);
    return out;
}

ConfigError::ConfigError(Position pos, std::string key, std::string message)
    : std::runtime_error(pos.str() + ": " + (key.empty() ? "" : key + ": ") + message),
      pos_(std::move(pos)),
      key_(std::move(key)),
      message_(std::move(message)) {}

namespace {

// A YAML node with the key path that led to it, so every error can say
// where it is and what it is called.
class Node {
  public:
    Node(YAML::Node node, std::string key, const std::string* file)
        : node_(std::move(node)), key_(std::move(key)), file_(file) {}

    const YAML::Node& yaml() const { return node_; }
    const std::string& key() const { return key_; }

    Position pos() const {
        auto m = node_.Mark();
        return Position{*file_, m.line + 1, m.column + 1};
    }
    [[noreturn]] void fail(const std::string& message) const {
        throw ConfigError(pos(), key_, message);
    }

    bool is_map() const { return node_.IsMap(); }
    bool is_null() const { return !node_.IsDefined() || node_.IsNull(); }

    // A map whose keys must all be in `allowed`; unknown keys are errors,
    // with the closest allowed key suggested. Duplicate keys are errors too
    // (yaml-cpp would keep one silently).
    void expect_map(std::initializer_list<std::string_view> allowed) const { check_map(&allowed); }
    // A map with keys of the plugin's choosing: only duplicates are errors.
    void expect_map_any() const { check_map(nullptr); }

    void check_map(const std::initializer_list<std::string_view>* allowed_keys) const {
        if (!node_.IsMap()) fail("expected a mapping (key: value), found " + kind());
        std::set<std::string> seen;
        for (auto it = node_.begin(); it != node_.end(); ++it) {
            Node k(it->first, key_, file_);
            if (!it->first.IsScalar()) k.fail("keys must be plain names");
            std::string name = it->first.Scalar();
            std::string full = child_key(name);
            if (!seen.insert(name).second) throw ConfigError(k.pos(), full, "duplicate key");
            if (allowed_keys == nullptr) continue;
            const auto& allowed = *allowed_keys;
            if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
            std::string msg = "unknown key";
            size_t best = 3;
            std::string_view suggestion;
            for (auto a : allowed) {
                size_t d = edit_distance(name, a);
                if (d < best) best = d, suggestion = a;
            }
            if (!suggestion.empty())
                msg += " (did you mean '" + std::string(suggestion) + "'?)";
            else {
                msg += " (expected one of:";
                for (auto a : allowed)
                    msg += " " + std::string(a);
                msg += ")";
            }
            throw ConfigError(k.pos(), full, msg);
        }
    }

    bool has(std::string_view name) const {
        return node_.IsMap() && node_[std::string(name)].IsDefined() &&
               !node_[std::string(name)].IsNull();
    }
    Node child(std::string_view name) const {
        return Node(node_[std::string(name)], child_key(name), file_);
    }
    Node required(std::string_view name) const {
        if (!has(name)) throw ConfigError(pos(), child_key(name), "required key is missing");
        return child(name);
    }

    std::vector<Node> list() const {
        if (!node_.IsSequence()) fail("expected a list, found " + kind());
        std::vector<Node> out;
        size_t i = 0;
        for (const auto& n : node_)
            out.emplace_back(n, key_ + "[" + std::to_string(i++) + "]", file_);
        return out;
    }

    std::string str() const {
        if (!node_.IsScalar()) fail("expected a text value, found " + kind());
        return node_.Scalar();
    }
    std::string non_empty_str() const {
        auto s = str();
        if (s.empty()) fail("must not be empty");
        return s;
    }
    bool boolean() const {
        auto s = str();
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
        fail("expected true or false, found '" + s + "'");
    }
    long long integer(long long min, long long max) const {
        auto s = str();
        errno = 0;
        char* end = nullptr;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || errno != 0 || *end != '\0')
            fail("expected a whole number, found '" + s + "'");
        if (v < min || v > max)
            fail("must be between " + std::to_string(min) + " and " + std::to_string(max) +
                 ", found " + s);
        return v;
    }
    // "250ms", "30s", "5m", "2h", "7d"; a bare number is seconds.
    std::chrono::milliseconds duration(std::chrono::milliseconds min) const {
        auto s = str();
        std::string why;
        auto ms = parse_duration_ms(s, why);
        if (!ms) fail(why);
        std::chrono::milliseconds d(*ms);
        if (d < min) fail("must be at least " + std::to_string(min.count()) + "ms");
        return d;
    }
    // 1048576, "100KB", "1MiB", "2MB" (KB/KiB = 1024; bytes either way).
    uint64_t size_bytes(uint64_t min, uint64_t max) const {
        auto s = str();
        std::string why;
        auto v = parse_size_bytes(s, max, why);
        if (!v) fail(why);
        if (*v < min || *v > max)
            fail("must be between " + std::to_string(min) + " and " + std::to_string(max) +
                 " bytes");
        return *v;
    }
    std::vector<std::string> string_list() const {
        std::vector<std::string> out;
        for (const auto& n : list())
            out.push_back(n.non_empty_str());
        return out;
    }
    template <class E>
    E choice(std::initializer_list<std::pair<std::string_view, E>> options) const {
        auto s = str();
        std::string names;
        for (const auto& [name, value] : options) {
            if (s == name) return value;
            names += (names.empty() ? "" : ", ") + std::string(name);
        }
        fail("unknown value '" + s + "' (expected one of: " + names + ")");
    }

    std::string kind() const {
        switch (node_.Type()) {
            case YAML::NodeType::Map:
                return "a mapping";
            case YAML::NodeType::Sequence:
                return "a list";
            case YAML::NodeType::Scalar:
                return "'" + node_.Scalar() + "'";
            case YAML::NodeType::Null:
                return "nothing";
            default:
                return "nothing";
        }
    }

  private:
    std::string child_key(std::string_view name) const {
        return key_.empty() ? std::string(name) : key_ + "." + std::string(name);
    }
    YAML::Node node_;
    std::string key_;
    const std::string* file_;
};

bool is_header_name(const std::string& h) {
    if (h.empty()) return false;
    for (char c : h)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    return true;
}

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string header_value(const Node& n) {
    auto h = n.non_empty_str();
    if (!is_header_name(h)) n.fail("'" + h + "' is not a valid HTTP header name");
    return lower(h);
}

class Loader {
  public:
    Loader(std::string file, const LoadOptions& options)
        : file_(std::move(file)), options_(options) {}

    Config load() {
        Config c;
        c.file = file_;
        c.base_dir = fs::current_path().string();
        // credential:NAME outside a unit: the file NAME beside the config.
        resolver_.emplace(c.base_dir,
                          (fs::path(c.base_dir) / file_).lexically_normal().parent_path().string());

        YAML::Node root_yaml;
        std::ifstream in(file_);
        if (!in)
            throw ConfigError(Position{file_, 0, 0}, "",
                              std::string("cannot read: ") + std::strerror(errno));
        try {
            root_yaml = YAML::Load(in);
        } catch (const YAML::ParserException& e) {
            throw ConfigError(Position{file_, e.mark.line + 1, e.mark.column + 1}, "",
                              "YAML syntax: " + e.msg);
        }
        Node root(root_yaml, "", &file_);
        if (root.is_null()) root.fail("the file is empty");
        root.expect_map(
            {"version", "listener", "admin", "store", "sources", "plugins", "dispatch", "log"});
        if (root.has("version") && root.child("version").integer(0, 1'000'000) != 1)
            root.child("version").fail("this host reads config version 1");

        if (root.has("log")) load_log(root.child("log"), c.log);
        if (root.has("listener")) load_listener(root.child("listener"), c.listener);
        if (root.has("admin")) load_admin(root.child("admin"), c.admin);
        if (root.has("store")) load_store(root.child("store"), c);
        if (root.has("dispatch")) load_dispatch(root.child("dispatch"), c.dispatch);

        auto sources = root.required("sources");
        if (sources.list().empty()) sources.fail("at least one source is needed");
        std::set<std::string> names, paths;
        for (const auto& s : sources.list()) {
            auto src = load_source(s);
            if (!names.insert(src.name).second)
                s.child("name").fail("another source already has the name '" + src.name + "'");
            if (!paths.insert(src.path).second)
                s.child("path").fail("another source already listens on '" + src.path + "'");
            if (std::string problem = body_memory_problem(src, c.listener); !problem.empty()) {
                const std::string why =
                    problem + ": raise it, or lower the source's max_body_bytes";
                // At the source's own value when it sets one, else at the
                // listener's (the defaults always fit together).
                if (s.has("max_body_bytes")) s.child("max_body_bytes").fail(why);
                root.child("listener").child("max_body_memory").fail(why);
            }
            c.sources.push_back(std::move(src));
        }

        std::set<std::string> plugin_names;
        if (root.has("plugins")) {
            for (const auto& p : root.child("plugins").list()) {
                auto pc = load_plugin(p, c.dispatch.retry);
                if (!plugin_names.insert(pc.name).second)
                    p.child("name").fail("another plugin already has the name '" + pc.name + "'");
                c.plugins.push_back(std::move(pc));
            }
        }
        // Checked last, not in load_admin: the admin API is on by default, so a
        // config without an admin: block needs its token too.
        if (c.admin.enabled && !c.admin.token) {
            Node at = root.has("admin") ? root.child("admin") : root;
            throw ConfigError(at.pos(), "admin.token",
                              "required while the admin API is enabled (token: "
                              "${CLAYHOOK_ADMIN_TOKEN}, or admin: {enabled: false})");
        }
        if (c.admin.enabled && c.admin.address != "127.0.0.1" && c.admin.address != "::1" &&
            c.admin.address != "localhost")
            c.warnings.push_back("admin.address " + c.admin.address +
                                 " is not a loopback address: the admin API is reachable from "
                                 "other machines");
        for (auto& w : resolver_->warnings())
            c.warnings.push_back(w);
        return c;
    }

  private:
    Secret secret(const Node& n) {
        auto ref = n.str();
        Secret s = resolver_->resolve(ref, n.pos());
        if (!s.error.empty() && s.error.rfind("syntax:", 0) == 0) n.fail(s.error.substr(8));
        return s;
    }

    void load_log(const Node& n, LogConfig& log) {
        n.expect_map({"level", "format"});
        if (n.has("level")) {
            log.level = n.child("level").choice<std::string>(
                {{"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"error", "error"}});
        }
        if (n.has("format"))
            log.format =
                n.child("format").choice<std::string>({{"logfmt", "logfmt"}, {"json", "json"}});
    }

    void load_listener(const Node& n, ListenerConfig& l) {
        n.expect_map({"address", "port", "server", "loops", "threads", "max_connections",
                      "max_queued", "max_connections_per_peer", "keep_alive", "read_timeout",
                      "header_timeout", "body_timeout", "body_min_rate", "idle_timeout",
                      "max_body_memory", "tls"});
        if (n.has("address")) l.address = n.child("address").non_empty_str();
        if (n.has("port")) l.port = static_cast<uint16_t>(n.child("port").integer(0, 65535));
        if (n.has("server"))
            l.server =
                n.child("server").choice<ListenerServer>({{"auto", ListenerServer::automatic},
                                                          {"events", ListenerServer::events},
                                                          {"threads", ListenerServer::threads}});
        if (n.has("loops")) l.loops = static_cast<int>(n.child("loops").integer(0, 64));
        if (n.has("threads")) l.threads = static_cast<int>(n.child("threads").integer(1, 1024));
        if (n.has("max_connections"))
            l.max_connections = static_cast<int>(n.child("max_connections").integer(1, 1'000'000));
        if (n.has("max_queued"))
            l.max_queued = static_cast<int>(n.child("max_queued").integer(1, 1'000'000));
        if (n.has("keep_alive")) l.keep_alive = n.child("keep_alive").boolean();
        if (n.has("max_connections_per_peer"))
            l.max_connections_per_peer =
                static_cast<int>(n.child("max_connections_per_peer").integer(0, 1'000'000));
        if (n.has("read_timeout"))
            l.read_timeout = n.child("read_timeout").duration(std::chrono::milliseconds(1));
        if (n.has("header_timeout"))
            l.header_timeout = n.child("header_timeout").duration(std::chrono::milliseconds(1));
        if (n.has("body_timeout"))
            l.body_timeout = n.child("body_timeout").duration(std::chrono::milliseconds(1));
        if (n.has("body_min_rate"))
            l.body_min_rate = n.child("body_min_rate").size_bytes(1, 1ULL << 40);
        if (n.has("idle_timeout"))
            l.idle_timeout = n.child("idle_timeout").duration(std::chrono::milliseconds(1));
        if (n.has("max_body_memory"))
            l.max_body_memory = n.child("max_body_memory").size_bytes(0, 1ULL << 40);
        if (n.has("tls")) {
            auto t = n.child("tls");
            t.expect_map({"cert_file", "key_file"});
            l.tls.cert_file = path_value(t.required("cert_file"));
            l.tls.key_file = path_value(t.required("key_file"));
            if (l.server == ListenerServer::events)
                n.child("server").fail(
                    "the event-loop server does not serve TLS: use server: threads (or auto) "
                    "with tls, or terminate TLS in front of the host");
        }
    }

    void load_admin(const Node& n, AdminConfig& a) {
        n.expect_map({"enabled", "address", "port", "token"});
        if (n.has("enabled")) a.enabled = n.child("enabled").boolean();
        if (n.has("address")) a.address = n.child("address").non_empty_str();
        if (n.has("port")) a.port = static_cast<uint16_t>(n.child("port").integer(0, 65535));
        if (n.has("token")) a.token = secret(n.child("token"));
    }

    void load_store(const Node& n, Config& c) {
        auto& s = c.store;
        n.expect_map({"engine", "path", "durable", "dedup_retention", "retention", "dead_retention",
                      "min_free_space", "journal", "postgres_url", "postgres_pool",
                      "postgres_connect_timeout", "host_id"});
        if (n.has("engine"))
            s.engine = n.child("engine").choice<std::string>(
                {{"sqlite", "sqlite"}, {"postgres", "postgres"}});
        if (n.has("path")) s.path = n.child("path").non_empty_str();
        if (n.has("durable")) s.durable = n.child("durable").boolean();
        if (n.has("dedup_retention"))
            s.dedup_retention = n.child("dedup_retention").duration(std::chrono::seconds(1));
        load_retention(n, s);
        if (n.has("min_free_space"))
            s.min_free_space = n.child("min_free_space").size_bytes(0, 1ULL << 40);
        if (n.has("journal")) s.journal = n.child("journal").boolean();
        if (n.has("postgres_url")) s.postgres_url = secret(n.child("postgres_url"));
        if (n.has("postgres_pool"))
            s.postgres_pool = static_cast<size_t>(n.child("postgres_pool").integer(1, 64));
        if (n.has("postgres_connect_timeout"))
            s.postgres_connect_timeout =
                n.child("postgres_connect_timeout").duration(std::chrono::seconds(1));
        if (n.has("host_id")) {
            s.host_id = n.child("host_id").non_empty_str();
            if (s.host_id.size() > 200) n.child("host_id").fail("at most 200 characters");
        }
        if (s.engine == "postgres" && !s.postgres_url)
            throw ConfigError(n.pos(), "store.postgres_url", "required when engine is postgres");
        s.path = (fs::path(c.base_dir) / s.path).lexically_normal().string();
        if (!s.durable)
            c.warnings.push_back(
                "store.durable is false: acknowledged deliveries can be lost "
                "on a power failure");
    }

    // retention and dead_retention: a duration of at least 1s, or "forever"
    // (0). An event must outlive its dedup record, or a sender's retry of a
    // deleted event would be stored and delivered again; a dead delivery is
    // kept at least as long as a done one.
    void load_retention(const Node& n, StoreConfig& s) {
        auto read = [&](const char* key, std::chrono::milliseconds& out) {
            const Node v = n.child(key);
            out = v.yaml().IsScalar() && v.str() == "forever" ? std::chrono::milliseconds(0)
                                                              : v.duration(std::chrono::seconds(1));
        };
        if (n.has("retention")) read("retention", s.retention);
        if (n.has("dead_retention")) {
            read("dead_retention", s.dead_retention);
        } else if (s.retention == std::chrono::milliseconds(0)) {
            s.dead_retention = s.retention;
        } else {
            s.dead_retention = std::max(s.dead_retention, s.retention);
        }
        auto at_least = [](std::chrono::milliseconds a, std::chrono::milliseconds b) {
            return a.count() == 0 || (b.count() != 0 && a >= b);  // 0 = for ever
        };
        auto secs = [](std::chrono::milliseconds d) {
            return d.count() == 0 ? std::string("forever") : std::to_string(d.count() / 1000) + "s";
        };
        const std::string why =
            ": an event deleted while its dedup record lives would be stored and delivered "
            "again when its sender retries it";
        if (!at_least(s.retention, s.dedup_retention)) {
            if (n.has("retention"))
                n.child("retention")
                    .fail("must be at least store.dedup_retention (" + secs(s.dedup_retention) +
                          ")" + why);
            n.child("dedup_retention")
                .fail("must not be longer than store.retention (" + secs(s.retention) +
                      ", the default)" + why);
        }
        if (!at_least(s.dead_retention, s.retention))
            n.child("dead_retention")
                .fail("must be at least store.retention (" + secs(s.retention) +
                      "): dead deliveries are kept longer than done ones, so an operator can "
                      "still replay them");
    }

    void load_retry(const Node& n, RetryPolicy& r) {
        n.expect_map({"max_attempts", "backoff_base", "backoff_cap", "max_age"});
        if (n.has("max_attempts"))
            r.max_attempts = static_cast<int>(n.child("max_attempts").integer(1, 1000));
        if (n.has("backoff_base"))
            r.backoff_base = n.child("backoff_base").duration(std::chrono::milliseconds(1));
        if (n.has("backoff_cap"))
            r.backoff_cap = n.child("backoff_cap").duration(std::chrono::milliseconds(1));
        if (n.has("max_age")) r.max_age = n.child("max_age").duration(std::chrono::seconds(1));
        if (r.backoff_cap < r.backoff_base) n.fail("backoff_cap must not be below backoff_base");
    }

    void load_dispatch(const Node& n, DispatchConfig& d) {
        n.expect_map({"workers", "call_timeout", "batch_linger", "shutdown_timeout", "lease",
                      "poll_interval", "poison_after", "call_grace", "restart_backoff",
                      "restart_backoff_cap", "crash_record", "retry"});
        if (n.has("workers")) d.workers = static_cast<int>(n.child("workers").integer(1, 256));
        if (n.has("call_timeout"))
            d.call_timeout = n.child("call_timeout").duration(std::chrono::milliseconds(1));
        if (n.has("batch_linger"))
            d.batch_linger = n.child("batch_linger").duration(std::chrono::milliseconds(0));
        if (n.has("shutdown_timeout"))
            d.shutdown_timeout = n.child("shutdown_timeout").duration(std::chrono::milliseconds(0));
        if (n.has("lease")) d.lease = n.child("lease").duration(std::chrono::seconds(1));
        if (n.has("poll_interval"))
            d.poll_interval = n.child("poll_interval").duration(std::chrono::milliseconds(50));
        if (n.has("poison_after"))
            d.poison_after = static_cast<int>(n.child("poison_after").integer(1, 1000));
        if (n.has("call_grace"))
            d.call_grace = n.child("call_grace").duration(std::chrono::milliseconds(0));
        if (n.has("restart_backoff"))
            d.restart_backoff = n.child("restart_backoff").duration(std::chrono::milliseconds(1));
        if (n.has("restart_backoff_cap"))
            d.restart_backoff_cap =
                n.child("restart_backoff_cap").duration(std::chrono::milliseconds(1));
        if (d.restart_backoff_cap < d.restart_backoff)
            n.fail("restart_backoff_cap must not be below restart_backoff");
        if (n.has("crash_record"))
            d.crash_record =
                (fs::path(resolver_->base_dir()) / n.child("crash_record").non_empty_str())
                    .lexically_normal()
                    .string();
        if (n.has("retry")) load_retry(n.child("retry"), d.retry);
    }

    SourceConfig load_source(const Node& n) {
        n.expect_map({"name", "path", "max_body_bytes", "verify", "event_type", "idempotency"});
        SourceConfig s;
        s.pos = n.pos();
        s.name = n.required("name").non_empty_str();
        if (!valid_name(s.name))
            n.child("name").fail("names use a-z, 0-9, '-', '_' and start with a letter or digit");
        s.path = n.required("path").non_empty_str();
        if (s.path == "/healthz" || s.path == "/readyz" || s.path == "/metrics")
            n.child("path").fail(s.path + " is the host's own endpoint");
        if (s.path[0] != '/' || s.path.find_first_of(" ?#") != std::string::npos)
            n.child("path").fail("a path starts with '/' and has no spaces, '?' or '#'");
        if (n.has("max_body_bytes"))
            s.max_body_bytes = n.child("max_body_bytes").size_bytes(1, 64ULL * 1024 * 1024);

        auto v = n.required("verify");
        v.expect_map({"scheme", "header", "timestamp_header", "tolerance", "secrets"});
        auto& vc = s.verify;
        vc.scheme = v.required("scheme").choice<VerifyScheme>(
            {{"hmac-sha256", VerifyScheme::hmac_sha256},
             {"hmac-sha256-timestamp", VerifyScheme::hmac_sha256_timestamp},
             {"token", VerifyScheme::token},
             {"standard-webhooks", VerifyScheme::standard_webhooks}});
        switch (vc.scheme) {
            case VerifyScheme::hmac_sha256:
            case VerifyScheme::hmac_sha256_timestamp:
                vc.header = "x-clay-signature";
                break;
            case VerifyScheme::token:
                vc.header = "x-clay-webhook-auth";
                break;
            case VerifyScheme::standard_webhooks:
                vc.header = "webhook-signature";
                break;
        }
        bool timestamped = vc.scheme == VerifyScheme::hmac_sha256_timestamp ||
                           vc.scheme == VerifyScheme::standard_webhooks;
        if (vc.scheme == VerifyScheme::hmac_sha256_timestamp)
            vc.timestamp_header = "x-clay-timestamp";
        if (vc.scheme == VerifyScheme::standard_webhooks) vc.timestamp_header = "webhook-timestamp";
        if (v.has("header")) {
            if (vc.scheme == VerifyScheme::standard_webhooks)
                v.child("header").fail("standard-webhooks fixes its header names");
            vc.header = header_value(v.child("header"));
        }
        if (v.has("timestamp_header")) {
            if (vc.scheme != VerifyScheme::hmac_sha256_timestamp)
                v.child("timestamp_header").fail("only the hmac-sha256-timestamp scheme uses it");
            vc.timestamp_header = header_value(v.child("timestamp_header"));
        }
        if (v.has("tolerance")) {
            if (!timestamped)
                v.child("tolerance")
                    .fail(std::string("the ") + scheme_name(vc.scheme) +
                          " scheme carries no timestamp");
            vc.tolerance = v.child("tolerance").duration(std::chrono::seconds(1));
        }
        auto secrets = v.required("secrets");
        for (const auto& sn : secrets.list())
            vc.secrets.push_back(secret(sn));
        if (vc.secrets.empty()) secrets.fail("at least one secret is needed");

        s.event_type.from = EventTypeFrom::body_field;
        if (n.has("event_type")) {
            auto e = n.child("event_type");
            e.expect_map({"from", "field", "header", "value"});
            auto& ec = s.event_type;
            ec.from = e.required("from").choice<EventTypeFrom>({{"body", EventTypeFrom::body_field},
                                                                {"header", EventTypeFrom::header},
                                                                {"fixed", EventTypeFrom::fixed}});
            auto only = [&](std::string_view key, EventTypeFrom want) {
                if (e.has(key) && ec.from != want)
                    e.child(key).fail("does not go with from: " + e.child("from").str());
            };
            only("field", EventTypeFrom::body_field);
            only("header", EventTypeFrom::header);
            only("value", EventTypeFrom::fixed);
            if (ec.from == EventTypeFrom::body_field && e.has("field"))
                ec.field = e.child("field").non_empty_str();
            if (ec.from == EventTypeFrom::header) ec.header = header_value(e.required("header"));
            if (ec.from == EventTypeFrom::fixed) {
                ec.value = e.required("value").non_empty_str();
                if (!valid_event_type(ec.value))
                    e.child("value").fail("an event type uses a-z, 0-9, '_', '-' and dots");
            }
        }

        auto& ic = s.idempotency;
        if (vc.scheme == VerifyScheme::standard_webhooks)
            ic.header = "webhook-id";
        else
            ic.fields = {"event", "row_id", "timestamp"};
        if (n.has("idempotency")) {
            auto i = n.child("idempotency");
            i.expect_map({"header", "fields"});
            ic.header.clear();
            ic.fields.clear();
            if (i.has("header")) ic.header = header_value(i.child("header"));
            if (i.has("fields")) ic.fields = i.child("fields").string_list();
        }
        return s;
    }

    PluginConfig load_plugin(const Node& n, const RetryPolicy& defaults) {
        n.expect_map({"name", "library", "enabled", "events", "concurrency", "batch_linger",
                      "ordered", "ordering_key", "retry", "isolation", "memory_limit", "config"});
        PluginConfig p;
        p.pos = n.pos();
        p.retry = defaults;
        p.name = n.required("name").non_empty_str();
        if (!valid_name(p.name))
            n.child("name").fail("names use a-z, 0-9, '-', '_' and start with a letter or digit");
        p.library = n.required("library").non_empty_str();
        if (n.has("enabled")) p.enabled = n.child("enabled").boolean();
        if (n.has("events")) {
            p.events = n.child("events").string_list();
            if (p.events->empty()) n.child("events").fail("at least one event pattern is needed");
        }
        if (n.has("concurrency"))
            p.concurrency = static_cast<int>(n.child("concurrency").integer(1, 1024));
        if (n.has("batch_linger"))
            p.batch_linger = n.child("batch_linger").duration(std::chrono::milliseconds(0));
        if (n.has("ordered")) p.ordered = n.child("ordered").boolean();
        if (n.has("ordering_key")) {
            p.ordering_key = n.child("ordering_key").non_empty_str();
            if (!p.ordered) n.child("ordering_key").fail("only means something with ordered: true");
        }
        if (n.has("retry")) load_retry(n.child("retry"), p.retry);
        // A user's library runs in a worker process unless told otherwise:
        // its crash must not take the intake down. Bundled plugins ship with
        // the host and are tested with it: in-process, without the hop.
        p.isolation =
            p.library.rfind("bundled:", 0) == 0 ? Isolation::in_process : Isolation::process;
        if (n.has("isolation")) {
            const std::string v = n.child("isolation").non_empty_str();
            if (v == "process")
                p.isolation = Isolation::process;
            else if (v == "in-process")
                p.isolation = Isolation::in_process;
            else
                n.child("isolation").fail("expected process or in-process, found '" + v + "'");
        }
        if (n.has("memory_limit")) {
            p.memory_limit = n.child("memory_limit").size_bytes(16ULL << 20, 1ULL << 40);
            if (p.isolation != Isolation::process)
                n.child("memory_limit").fail("only means something with isolation: process");
        }
        p.config_pos = n.pos();
        if (n.has("config")) {
            auto cfg = n.child("config");
            if (!cfg.is_map()) cfg.fail("a plugin's config is a mapping");
            p.config_json = to_json(cfg, p.secrets);
            p.config_pos = cfg.pos();
            const YAML::Node map = cfg.yaml();
            for (auto it = map.begin(); it != map.end(); ++it) {
                const YAML::Node k = it->first;
                const YAML::Node v = it->second;
                const bool reference = v.IsScalar() && v.Tag() == "?" &&
                                       SecretResolver::is_reference(v.Scalar()) &&
                                       v.Scalar().rfind("file://", 0) != 0;
                const auto mark = k.Mark();
                p.config_keys[k.Scalar()] = {Position{file_, mark.line + 1, mark.column + 1},
                                             reference};
            }
        }
        resolve_library(n.child("library"), p);
        return p;
    }

    void resolve_library(const Node& n, PluginConfig& p) {
        const std::string prefix = "bundled:";
        if (p.library.rfind(prefix, 0) == 0) {
            std::string name = p.library.substr(prefix.size());
            if (!valid_name(name)) n.fail("'" + name + "' is not a bundled plugin name");
            if (auto found = find_bundled_plugin(name, options_.bundled_plugin_dirs)) {
                p.library_path = *found;
                return;
            }
            std::string dirs;
            for (const auto& d : options_.bundled_plugin_dirs)
                dirs += (dirs.empty() ? "" : ", ") + d;
            p.library_error = "bundled plugin '" + name +
                              "' not found (looked in: " + (dirs.empty() ? "no folders" : dirs) +
                              ")";
            return;
        }
        fs::path path = fs::path(resolver_->base_dir()) / p.library;
        p.library_path = path.lexically_normal().string();
    }

    // What one plugin's config may expand to. YAML aliases let a few hundred
    // bytes stand for billions of values ("billion laughs"), and an alias
    // inside its own anchor for endless nesting. The caps are checked while
    // converting, so such a config is refused as soon as it crosses one,
    // having cost no more than the caps. Real configs are far below them.
    static constexpr size_t kMaxConfigValues = 100'000;  // every use of an alias counts
    static constexpr size_t kMaxConfigJsonBytes = 1024 * 1024;
    // As deep as the plugins' JSON parser reads (the SDK's limit).
    static constexpr size_t kMaxConfigDepth = json::detail::kMaxDepth;

    struct JsonOut {
        const Node& root;  // plugins[N].config: where a cap error points
        std::vector<Secret>& secrets;
        std::string text;
        size_t values = 0;
        // Secret references already resolved, by the position of their node:
        // an alias of one is the same reference, read and listed once.
        std::map<std::pair<int, int>, std::string> resolved;
    };

    // YAML → JSON text for the plugin. Plain scalars that read as numbers,
    // booleans or null keep those types; quoted scalars stay strings. A string
    // that is a secret reference (${VAR}, file:PATH) is replaced by its value.
    std::string to_json(const Node& n, std::vector<Secret>& secrets) {
        JsonOut out{n, secrets, {}, 0, {}};
        std::string key = n.key();
        append_json(n.yaml(), key, out, 1);
        return std::move(out.text);
    }

    // `key` is the node's key path (plugins[0].config.a[2]); children append
    // to it and cut it back, so that no value costs a string of its own.
    void append_json(const YAML::Node& y, std::string& key, JsonOut& out, size_t depth) {
        if (++out.values > kMaxConfigValues)
            out.root.fail("expands to more than " + std::to_string(kMaxConfigValues) +
                          " values (YAML aliases count at each use); a plugin's config is "
                          "limited to " +
                          std::to_string(kMaxConfigValues) + " values and 1 MiB of JSON");
        const size_t key_len = key.size();
        switch (y.Type()) {
            case YAML::NodeType::Map: {
                if (depth > kMaxConfigDepth) too_deep(out);
                Node(y, key, &file_).expect_map_any();
                out.text += '{';
                bool first = true;
                for (auto it = y.begin(); it != y.end(); ++it) {
                    if (!first) out.text += ',';
                    first = false;
                    const std::string& k = it->first.Scalar();
                    out.text += quote(k);
                    out.text += ':';
                    key += '.';
                    key += k;
                    append_json(it->second, key, out, depth + 1);
                    key.resize(key_len);
                }
                out.text += '}';
                break;
            }
            case YAML::NodeType::Sequence: {
                if (depth > kMaxConfigDepth) too_deep(out);
                out.text += '[';
                size_t i = 0;
                for (const auto& c : y) {
                    if (i != 0) out.text += ',';
                    key += '[';
                    key += std::to_string(i++);
                    key += ']';
                    append_json(c, key, out, depth + 1);
                    key.resize(key_len);
                }
                out.text += ']';
                break;
            }
            case YAML::NodeType::Scalar:
                append_scalar(y, key, out);
                break;
            default:
                out.text += "null";
                break;
        }
        if (out.text.size() > kMaxConfigJsonBytes)
            out.root.fail(
                "expands to more than 1 MiB of JSON (YAML aliases count at each use); a "
                "plugin's config is limited to " +
                std::to_string(kMaxConfigValues) + " values and 1 MiB of JSON");
    }

    [[noreturn]] static void too_deep(const JsonOut& out) {
        out.root.fail("nests deeper than " + std::to_string(kMaxConfigDepth) +
                      " levels (is a YAML alias used inside its own anchor?)");
    }

    void append_scalar(const YAML::Node& y, const std::string& key, JsonOut& out) {
        const std::string& s = y.Scalar();
        bool plain = y.Tag() == "?";
        // Only plain (unquoted) scalars are references, so quoting keeps
        // a literal "file:..." or "${...}" as text.
        if (plain && SecretResolver::is_reference(s) && s.rfind("file://", 0) != 0) {
            auto at = std::make_pair(y.Mark().line, y.Mark().column);
            auto seen = out.resolved.find(at);
            if (seen == out.resolved.end()) {
                Secret sec = secret(Node(y, key, &file_));
                seen = out.resolved.emplace(at, sec.value).first;
                out.secrets.push_back(std::move(sec));
            }
            out.text += quote(seen->second);
            return;
        }
        if (plain) {
            if (s == "true" || s == "false" || looks_numeric(s)) {
                out.text += s;
                return;
            }
            if (s == "null" || s == "~") {
                out.text += "null";
                return;
            }
        }
        out.text += quote(s);
    }

    static bool looks_numeric(const std::string& s) {
        // JSON's number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
        size_t i = 0, n = s.size();
        if (i < n && s[i] == '-') ++i;
        if (i >= n) return false;
        if (s[i] == '0')
            ++i;
        else if (std::isdigit(static_cast<unsigned char>(s[i])))
            while (i < n && std::isdigit(static_cast<unsigned char>(s[i])))
                ++i;
        else
            return false;
        if (i < n && s[i] == '.') {
            ++i;
            if (i >= n || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
            while (i < n && std::isdigit(static_cast<unsigned char>(s[i])))
                ++i;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
            ++i;
            if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
            if (i >= n || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
            while (i < n && std::isdigit(static_cast<unsigned char>(s[i])))
                ++i;
        }
        return i == n;
    }

    static std::string quote(const std::string& s) { return json::quote(s); }

    std::string path_value(const Node& n) {
        return (fs::path(resolver_->base_dir()) / n.non_empty_str()).lexically_normal().string();
    }

    static bool valid_name(const std::string& s) {
        if (s.empty() || !(std::islower(static_cast<unsigned char>(s[0])) ||
                           std::isdigit(static_cast<unsigned char>(s[0]))))
            return false;
        for (char c : s)
            if (!(std::islower(static_cast<unsigned char>(c)) ||
                  std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
                return false;
        return true;
    }

    static bool valid_event_type(const std::string& s) {
        if (s.empty()) return false;
        for (char c : s)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
                return false;
        return true;
    }

    std::string file_;
    const LoadOptions& options_;
    std::optional<SecretResolver> resolver_;
};

}  // namespace

LoadOptions LoadOptions::with_bundled() {
    LoadOptions o;
    o.bundled_plugin_dirs = default_bundled_plugin_dirs();
    return o;
}

Config load_config(const std::string& file, const LoadOptions& options) {
    Loader loader(file, options);
    try {
        return loader.load();
    } catch (const YAML::Exception& e) {
        // Anything yaml-cpp throws past the parse (rare) still names a place.
        throw ConfigError(Position{file, e.mark.line + 1, e.mark.column + 1}, "", e.msg);
    }
}

void require_secrets(const Config& config) {
    for (const Secret* s : config.all_secrets())
        if (!s->resolved) throw ConfigError(s->pos, "", "secret " + s->ref + " " + s->error);
}

std::optional<std::string> find_bundled_plugin(const std::string& name,
                                               const std::vector<std::string>& dirs) {
    for (const auto& dir : dirs) {
        fs::path candidate = fs::path(dir) / (name + ".so");
        std::error_code ec;
        if (fs::exists(candidate, ec)) return fs::absolute(candidate).lexically_normal().string();
    }
    return std::nullopt;
}

std::vector<std::string> default_bundled_plugin_dirs() {
    std::vector<std::string> dirs;
    if (const char* env = std::getenv("CLAYHOOK_PLUGIN_DIR"); env && *env) dirs.emplace_back(env);
    char exe[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        fs::path bin = fs::path(std::string(exe, static_cast<size_t>(n))).parent_path();
        dirs.push_back((bin / ".." / "plugins").lexically_normal().string());
        dirs.push_back((bin / ".." / CLAYHOOK_INSTALL_LIBDIR / "clayhook" / "plugins")
                           .lexically_normal()
                           .string());
    }
    return dirs;
}

}  // namespace clayhook
