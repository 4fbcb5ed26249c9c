#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace clayhook {

// Where something was written: 1-based line and column.
struct Position {
    std::string file;
    int line = 0;
    int column = 0;
    std::string str() const;  // "file:line:column"
};

// A secret as referenced by the config. `ref` is what was written
// (`${CLAY_WEBHOOK_SECRET}`, `file:secrets/clay`) and is safe to show;
// `value` never leaves the process: no report, log line or error carries it.
struct Secret {
    std::string ref;
    Position pos;
    bool resolved = false;
    std::string origin;  // "env CLAY_WEBHOOK_SECRET", "file /abs/path": safe to show
    std::string error;   // why it did not resolve
    std::string value;
    // The same secret: the same value, however it was written or found.
    bool operator==(const Secret& o) const { return resolved == o.resolved && value == o.value; }
};

struct TlsConfig {
    std::string cert_file;
    std::string key_file;
    bool enabled() const { return !cert_file.empty(); }
    bool operator==(const TlsConfig&) const = default;
};

// Which HTTP server runs the intake: event loops (epoll, a few threads), or a
// thread per connection (the one that serves TLS). auto: events without TLS.
enum class ListenerServer { automatic, events, threads };

struct ListenerConfig {
    std::string address = "0.0.0.0";
    uint16_t port = 8080;
    ListenerServer server = ListenerServer::automatic;
    int loops = 0;     // events: event-loop threads; 0: one per CPU
    int threads = 64;  // threads: the connection pool
    int max_connections = 1024;
    int max_queued = 256;
    int max_connections_per_peer = 32;  // 0: no cap
    bool keep_alive = true;
    std::chrono::milliseconds read_timeout{10'000};    // each single wait (read or send)
    std::chrono::milliseconds header_timeout{10'000};  // the whole request head
    std::chrono::milliseconds body_timeout{10'000};    // the body: this + size / body_min_rate
    uint64_t body_min_rate = 64 * 1024;                // bytes per second
    std::chrono::milliseconds idle_timeout{15'000};    // between keep-alive requests
    // Request bodies held in memory at once, all connections together
    // (http/BodyBudget.h); 0: no cap.
    uint64_t max_body_memory = 256ull << 20;
    TlsConfig tls;
    bool operator==(const ListenerConfig&) const = default;

    // The server in force: auto is events without TLS, threads with it.
    bool event_loops() const {
        return server == ListenerServer::events ||
               (server == ListenerServer::automatic && !tls.enabled());
    }
};

struct AdminConfig {
    bool enabled = true;
    std::string address = "127.0.0.1";
    uint16_t port = 8081;
    std::optional<Secret> token;
    bool operator==(const AdminConfig&) const = default;
};

struct StoreConfig {
    std::string engine = "sqlite";         // sqlite | postgres
    std::string path = "var/clayhook.db";  // sqlite: relative to the working directory
    bool durable = true;
    std::chrono::milliseconds dedup_retention{7LL * 24 * 3600 * 1000};
    // Finished events (with their deliveries and attempts) are deleted once
    // received this long ago; events with a dead delivery after
    // dead_retention. 0 = kept for ever ("forever" in the YAML).
    std::chrono::milliseconds retention{7LL * 24 * 3600 * 1000};
    std::chrono::milliseconds dead_retention{30LL * 24 * 3600 * 1000};
    // SQLite: below this much free space on the store's filesystem new
    // deliveries are refused (503), so results and kv writes keep the rest.
    uint64_t min_free_space = 64ULL * 1024 * 1024;
    // SQLite: new deliveries go to an append-only journal (one fdatasync per
    // group) and are moved into the database in large batches behind the
    // answer. See docs/configuration.md, store.journal.
    bool journal = true;
    std::optional<Secret>
        postgres_url;          // libpq URL or key=value string; a secret (it may hold a password)
    size_t postgres_pool = 8;  // read/control connections kept open, besides the writer's
    std::chrono::milliseconds postgres_connect_timeout{5'000};
    std::string host_id;  // who this host is in delivery claims; "" = hostname:pid:random
    bool operator==(const StoreConfig&) const = default;
};

enum class VerifyScheme { hmac_sha256, hmac_sha256_timestamp, token, standard_webhooks };
const char* scheme_name(VerifyScheme s);

struct VerifyConfig {
    VerifyScheme scheme = VerifyScheme::hmac_sha256;
    std::string header;            // signature or token header (lower case)
    std::string timestamp_header;  // hmac-sha256-timestamp only
    std::chrono::milliseconds tolerance{300'000};
    std::vector<Secret> secrets;
};

enum class EventTypeFrom { body_field, header, fixed };

struct EventTypeConfig {
    EventTypeFrom from = EventTypeFrom::body_field;
    std::string field = "event";  // body_field: a dotted path
    std::string header;           // header
    std::string value;            // fixed
};

struct IdempotencyConfig {
    std::string header;               // delivery-id header, tried first when set
    std::vector<std::string> fields;  // body fields joined; then sha256(body)
};

struct SourceConfig {
    std::string name;
    std::string path;
    uint64_t max_body_bytes = 1024 * 1024;
    VerifyConfig verify;
    EventTypeConfig event_type;
    IdempotencyConfig idempotency;
    Position pos;
};

// Why a source's bodies could never be taken under this listener's
// max_body_memory (one body past the whole budget); "" when they can. The
// loader checks the file's listener, a reload the running one (`which`:
// "the running ").
inline std::string body_memory_problem(const SourceConfig& s, const ListenerConfig& l,
                                       const std::string& which = "") {
    if (l.max_body_memory == 0 || s.max_body_bytes <= l.max_body_memory) return "";
    return "source '" + s.name + "' accepts bodies of up to " + std::to_string(s.max_body_bytes) +
           " bytes, more than " + which + "listener.max_body_memory (" +
           std::to_string(l.max_body_memory) + " bytes, all request bodies held at once)";
}

struct RetryPolicy {
    int max_attempts = 10;
    std::chrono::milliseconds backoff_base{1'000};
    std::chrono::milliseconds backoff_cap{600'000};
    std::chrono::milliseconds max_age{24LL * 3600 * 1000};
};

struct DispatchConfig {
    int workers = 4;
    std::chrono::milliseconds call_timeout{30'000};
    // Batching plugins: how long a call waits for its batch to fill. 0: hand
    // over what is due at once (under load, batches form by themselves).
    std::chrono::milliseconds batch_linger{0};
    std::chrono::milliseconds shutdown_timeout{10'000};  // for running plugin calls at SIGTERM
    // How long a claimed delivery stays this host's without a renewal: a
    // host that dies leaves its claims to the others after this. Renewed
    // every lease/3 while the call runs.
    std::chrono::milliseconds lease{30'000};
    // Shared stores (PostgreSQL): how often a host looks for work stored,
    // given up or left behind by another host.
    std::chrono::milliseconds poll_interval{1'000};
    // A delivery whose calls ended this many times with the host dying
    // during them (a crash in an in-process plugin, SIGKILL) is dead: a
    // poison event must not crash the host at every start.
    int poison_after = 3;
    // Isolated plugins: a call still running call_timeout + call_grace after
    // it began kills its worker process (in-process calls cannot be stopped).
    std::chrono::milliseconds call_grace{5'000};
    // Isolated plugins: the wait before a worker that died is started again,
    // doubling at each death without an answered call in between, up to the
    // cap.
    std::chrono::milliseconds restart_backoff{200};
    std::chrono::milliseconds restart_backoff_cap{30'000};
    // Where a fatal signal writes which plugin call it hit, for the next
    // start ("" = beside a SQLite store, <path>.crash; none for PostgreSQL).
    std::string crash_record;
    RetryPolicy retry;
};

// Where a plugin's code runs: in the host's process (fastest; a crash in it
// is the host's), or in a supervised worker process of its own.
enum class Isolation { in_process, process };
const char* isolation_name(Isolation i);

struct PluginConfig {
    std::string name;           // instance name, unique in the config
    std::string library;        // as written: "bundled:jsonl-sink" or a path
    std::string library_path;   // resolved absolute path ("" when not found)
    std::string library_error;  // why library_path is empty
    bool enabled = true;
    std::optional<std::vector<std::string>> events;         // overrides the plugin's patterns
    int concurrency = 0;                                    // 0: the plugin's own, or the host's
    std::optional<std::chrono::milliseconds> batch_linger;  // overrides dispatch.batch_linger
    bool ordered = false;  // same ordering key → handed over one at a time, in order
    std::string ordering_key = "row_id";  // a dotted path in the body
    RetryPolicy retry;
    // Default: in-process for bundled plugins, process for a user's library.
    Isolation isolation = Isolation::process;
    uint64_t memory_limit = 0;       // isolation: process; the worker's RSS in bytes (0: none)
    std::string config_json = "{}";  // the config subtree as JSON, secrets resolved
    std::vector<Secret> secrets;     // references found inside config:, for reports
    Position pos;
    // The top-level keys under config:, where each is written and whether
    // its value was a secret reference: what a plugin's declared config
    // (plugins/ConfigSchema.h) is checked against, with positions.
    struct ConfigKeyInfo {
        Position pos;
        bool reference = false;
    };
    std::map<std::string, ConfigKeyInfo> config_keys{};
    Position config_pos{};  // the config: mapping (the entry itself when absent)
};

struct LogConfig {
    std::string level = "info";
    std::string format = "logfmt";  // or "json"
};

struct Config {
    std::string file;      // the YAML file as given
    std::string base_dir;  // the working directory: relative paths resolve against it
    ListenerConfig listener;
    AdminConfig admin;
    StoreConfig store;
    std::vector<SourceConfig> sources;
    std::vector<PluginConfig> plugins;
    DispatchConfig dispatch;
    LogConfig log;
    std::vector<std::string> warnings;  // usable, but worth a look
    // Set when a generation is built from it: route_warnings() (app/Generation.h).
    std::vector<std::string> route_warnings;

    // Every secret the config refers to, for resolution reports and redaction.
    std::vector<const Secret*> all_secrets() const;
};

}  // namespace clayhook
