// clayhook C++ plugin SDK, header-only, over the C ABI in <clayhook/plugin_abi.h>.
//
// A plugin is a class and one macro line:
//
//   #include <clayhook/plugin.hpp>
//
//   class Hello {
//   public:
//       static constexpr const char* name = "hello";
//       static constexpr const char* version = "1.0.0";
//       static constexpr const char* events[] = {"enrichment.*"};
//
//       Hello(clayhook::Host& host, const clayhook::json::Value& config) : host_(host) {}
//       clayhook::Result handle(const clayhook::Event& e) {
//           host_.info("got " + std::string(e.type));
//           return clayhook::Result::done();
//       }
//   private:
//       clayhook::Host& host_;
//   };
//   CLAYHOOK_PLUGIN(Hello)
//
// Optional members:
//   static constexpr const char* description = "...";
//   static constexpr uint32_t max_concurrency = 1;      // calls at once (0: host default)
//   static constexpr uint32_t max_batch_size = 100;     // needs handle_batch:
//   void handle_batch(std::span<const clayhook::Event> batch, std::span<clayhook::Result> out);
//       (with handle_batch, handle() may be left out: one event is a batch of one;
//        a result handle_batch leaves as it found it is a retry, never a done)
//   static constexpr clayhook::ConfigKey config[] = {   // the config it takes (ABI 1.1):
//       clayhook::config::required(clayhook::ConfigType::string, "path", "the file to write"),
//       clayhook::config::optional(clayhook::ConfigType::duration, "timeout", "30s", "per call"),
//       clayhook::config::secret("token", "the API token"),
//   };
//       The host then checks the config against it (unknown keys, types, required
//       keys, secrets only as references) before the constructor runs, fills in
//       the defaults, and hands durations over in ms and sizes in bytes. A bare
//       number is seconds in a ConfigType::duration, milliseconds in a
//       ConfigType::duration_ms, whatever the key is called.
//
// Instances are created and destroyed on reloads: keep state in members, never
// in `thread_local` or static variables, which outlive an instance (and, with
// thread_local, hold values from the unloaded library on the host's threads).
// Everything the SDK exports is noexcept: an exception from the constructor
// refuses the plugin with its what(); one from handle() counts as a retry.
#pragma once

#include <clayhook/plugin_abi.h>
#include <clayhook/json.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace clayhook {

enum class LogLevel : int32_t {
    debug = CLAYHOOK_LOG_DEBUG,
    info = CLAYHOOK_LOG_INFO,
    warn = CLAYHOOK_LOG_WARN,
    error = CLAYHOOK_LOG_ERROR
};

// One event handed to a plugin. The views live for the duration of the call.
struct Event {
    std::string_view id;
    std::string_view source;
    std::string_view type;
    std::string_view idempotency_key;
    std::string_view body;  // raw JSON bytes as received
    std::chrono::system_clock::time_point received_at;
    uint32_t attempt = 1;

    // Parses the body; throws json::ParseError (a retry would not help, so
    // handlers usually answer Result::fail for it).
    json::Value json() const { return json::parse(body); }
};

// A config key a plugin declares (ABI 1.1); see config::required and friends.
using ConfigKey = clayhook_config_key;
enum class ConfigType : int32_t {
    string = CLAYHOOK_CONFIG_STRING,
    integer = CLAYHOOK_CONFIG_INTEGER,
    boolean = CLAYHOOK_CONFIG_BOOLEAN,
    // "250ms", "30s", "5m", "1h", "1d"; a bare number is seconds. Handed over
    // as integer milliseconds.
    duration = CLAYHOOK_CONFIG_DURATION,
    size = CLAYHOOK_CONFIG_SIZE,  // handed over as integer bytes
    string_list = CLAYHOOK_CONFIG_STRING_LIST,
    object = CLAYHOOK_CONFIG_OBJECT,  // anything, handed over as written
    // As duration, but a bare number is milliseconds (for a key that always
    // took integer ms, e.g. timeout_ms: 5000). Handed over as integer ms.
    // The key's name plays no part: only this type makes a bare number ms.
    duration_ms = CLAYHOOK_CONFIG_DURATION_MS,
};
namespace config {
// A key that must be given.
constexpr ConfigKey required(ConfigType type, const char* name, const char* help) {
    return ConfigKey{name, static_cast<int32_t>(type), CLAYHOOK_CONFIG_REQUIRED, nullptr, help};
}
// A key with a default, written as the YAML would write it ("30s", "true", "10");
// nullptr: no default (the key is then absent when not given).
constexpr ConfigKey optional(ConfigType type, const char* name, const char* default_value,
                             const char* help) {
    return ConfigKey{name, static_cast<int32_t>(type), 0, default_value, help};
}
// A required secret: ${VAR}, file:PATH or credential:NAME in the YAML, never the value.
constexpr ConfigKey secret(const char* name, const char* help) {
    return ConfigKey{name, CLAYHOOK_CONFIG_STRING,
                     CLAYHOOK_CONFIG_REQUIRED | CLAYHOOK_CONFIG_SECRET, nullptr, help};
}
// A secret that may be left out.
constexpr ConfigKey optional_secret(const char* name, const char* help) {
    return ConfigKey{name, CLAYHOOK_CONFIG_STRING, CLAYHOOK_CONFIG_SECRET, nullptr, help};
}
}  // namespace config

// What a handler answers.
class Result {
  public:
    static Result done() { return Result(CLAYHOOK_DONE, {}, {}); }
    // Try again later; `after` = 0 leaves the wait to the host's backoff policy.
    static Result retry(std::string reason,
                        std::chrono::milliseconds after = std::chrono::milliseconds(0)) {
        return Result(CLAYHOOK_RETRY, std::move(reason), after);
    }
    // Will never succeed: the delivery goes to the dead letters with the reason.
    static Result fail(std::string reason) { return Result(CLAYHOOK_FAIL, std::move(reason), {}); }

    // No answer yet: handed to the host as a retry saying the plugin set no
    // result (a handle_batch slot left alone is never a silent done).
    Result() = default;
    bool is_set() const { return set_; }
    clayhook_status status() const { return status_; }
    const std::string& reason() const { return reason_; }
    std::chrono::milliseconds retry_after() const { return after_; }

  private:
    Result(clayhook_status s, std::string r, std::chrono::milliseconds a)
        : set_(true), status_(s), reason_(std::move(r)), after_(a) {}
    bool set_ = false;
    clayhook_status status_ = CLAYHOOK_RETRY;
    std::string reason_;
    std::chrono::milliseconds after_{0};
};

// A host service answered with an error code.
class HostError : public std::runtime_error {
  public:
    HostError(const char* what, int32_t code) : std::runtime_error(what), code_(code) {}
    int32_t code() const { return code_; }

  private:
    int32_t code_;
};

// The host's services, as seen from a plugin instance.
class Host {
  public:
    explicit Host(const clayhook_host_api* api) : api_(api) {}

    void log(LogLevel level, std::string_view message) const {
        api_->log(api_->host_ctx, static_cast<int32_t>(level), view(message));
    }
    void debug(std::string_view m) const { log(LogLevel::debug, m); }
    void info(std::string_view m) const { log(LogLevel::info, m); }
    void warn(std::string_view m) const { log(LogLevel::warn, m); }
    void error(std::string_view m) const { log(LogLevel::error, m); }

    // labels: "k=v,k2=v2". Exported as clayhook_plugin_<name>{plugin="..."}.
    void counter_add(std::string_view name, double delta = 1.0,
                     std::string_view labels = {}) const {
        check(api_->counter_add(api_->host_ctx, view(name), view(labels), delta), "counter_add");
    }
    void gauge_set(std::string_view name, double value, std::string_view labels = {}) const {
        check(api_->gauge_set(api_->host_ctx, view(name), view(labels), value), "gauge_set");
    }

    // The plugin's durable key-value store. Throws HostError when the host
    // has none or the store failed.
    std::optional<std::string> kv_get(std::string_view key) const {
        std::string out;
        int32_t rc = api_->kv_get(
            api_->host_ctx, view(key),
            [](void* user, const char* data, size_t len) {
                static_cast<std::string*>(user)->assign(data, len);
            },
            &out);
        if (rc == CLAYHOOK_NOT_FOUND) return std::nullopt;
        check(rc, "kv_get");
        return out;
    }
    void kv_put(std::string_view key, std::string_view value) const {
        check(api_->kv_put(api_->host_ctx, view(key), view(value)), "kv_put");
    }
    // Returns false when the key was not there.
    bool kv_delete(std::string_view key) const {
        int32_t rc = api_->kv_delete(api_->host_ctx, view(key));
        if (rc == CLAYHOOK_NOT_FOUND) return false;
        check(rc, "kv_delete");
        return true;
    }
    // Hand event `event_id` to this plugin again at `when`.
    void deliver_again_at(std::string_view event_id,
                          std::chrono::system_clock::time_point when) const {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
        check(api_->deliver_again_at(api_->host_ctx, view(event_id),
                                     static_cast<int64_t>(ms.count())),
              "deliver_again_at");
    }

  private:
    static clayhook_str view(std::string_view s) { return clayhook_str{s.data(), s.size()}; }
    static void check(int32_t rc, const char* what) {
        if (rc == CLAYHOOK_OK) return;
        const char* why = rc == CLAYHOOK_ERR_UNSUPPORTED ? ": not supported by this host"
                          : rc == CLAYHOOK_ERR_INVALID   ? ": invalid arguments"
                          : rc == CLAYHOOK_NOT_FOUND     ? ": not found"
                                                         : ": store error";
        throw HostError((std::string("host ") + what + why).c_str(), rc);
    }
    const clayhook_host_api* api_;
};

namespace sdk {

// Copies text into a host-owned buffer, truncating, always NUL-terminated.
inline void copy_text(std::string_view text, char* buf, size_t cap) noexcept {
    if (buf == nullptr || cap == 0) return;
    size_t n = std::min(text.size(), cap - 1);
    if (n > 0) std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
}

inline Event to_event(const clayhook_event& e) noexcept {
    auto sv = [](clayhook_str s) { return std::string_view(s.data ? s.data : "", s.len); };
    Event ev;
    ev.id = sv(e.id);
    ev.source = sv(e.source);
    ev.type = sv(e.type);
    ev.idempotency_key = sv(e.idempotency_key);
    ev.body = sv(e.body);
    ev.received_at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::milliseconds(e.received_at_ms)));
    ev.attempt = e.attempt;
    return ev;
}

inline void write_result(const Result& r, clayhook_result* out) noexcept {
    if (!r.is_set()) {
        out->status = CLAYHOOK_RETRY;
        out->retry_after_ms = 0;
        copy_text("the plugin set no result for this event (a default clayhook::Result)",
                  out->reason, sizeof(out->reason));
        return;
    }
    out->status = r.status();
    auto ms = r.retry_after().count();
    out->retry_after_ms = ms <= 0 ? 0u : static_cast<uint32_t>(std::min<long long>(ms, UINT32_MAX));
    copy_text(r.reason(), out->reason, sizeof(out->reason));
}

inline void write_exception(std::exception_ptr ep, clayhook_result* out) noexcept {
    out->status = CLAYHOOK_RETRY;
    out->retry_after_ms = 0;
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception& e) {
        copy_text(std::string("exception in handler: ") + e.what(), out->reason,
                  sizeof(out->reason));
    } catch (...) {
        copy_text("unknown exception in handler", out->reason, sizeof(out->reason));
    }
}

template <class T>
concept HasDescription = requires {
    { T::description } -> std::convertible_to<const char*>;
};
template <class T>
concept HasMaxConcurrency = requires {
    { T::max_concurrency } -> std::convertible_to<uint32_t>;
};
template <class T>
concept HasMaxBatch = requires {
    { T::max_batch_size } -> std::convertible_to<uint32_t>;
};
template <class T>
concept HasBatchHandler = requires(T& t, std::span<const Event> in, std::span<Result> out) {
    t.handle_batch(in, out);
};
template <class T>
concept HasHandler = requires(T& t, const Event& e) {
    { t.handle(e) } -> std::same_as<Result>;
};
template <class T>
concept HasConfigKeys = requires {
    std::size(T::config);
    { T::config[0] } -> std::convertible_to<ConfigKey>;
};

// One instance: the Host wrapper lives beside the plugin object, so the
// reference the plugin keeps stays valid until destroy().
template <class T>
struct Instance {
    Instance(const clayhook_host_api* api, const json::Value& config)
        : host(api), plugin(host, config) {}
    Host host;
    T plugin;
};

template <class T>
struct Exports {
    static_assert(
        requires {
            { T::name } -> std::convertible_to<const char*>;
        },
        "clayhook: the plugin class needs `static constexpr const char* name = "
        "\"my-plugin\";`");
    static_assert(
        requires {
            { T::version } -> std::convertible_to<const char*>;
        },
        "clayhook: the plugin class needs `static constexpr const char* version = "
        "\"1.0.0\";`");
    static_assert(
        requires {
            std::size(T::events);
            { T::events[0] } -> std::convertible_to<const char*>;
        },
        "clayhook: the plugin class needs `static constexpr const char* events[] = "
        "{\"enrichment.completed\"};`");
    static_assert(std::is_constructible_v<T, Host&, const json::Value&>,
                  "clayhook: the plugin class needs a constructor "
                  "`T(clayhook::Host& host, const clayhook::json::Value& config)`");
    static_assert(HasHandler<T> || (HasMaxBatch<T> && HasBatchHandler<T>),
                  "clayhook: the plugin class needs `clayhook::Result handle(const "
                  "clayhook::Event& event)`, or max_batch_size and handle_batch");

    static constexpr uint32_t batch_size() {
        if constexpr (HasMaxBatch<T>) {
            static_assert(HasBatchHandler<T>,
                          "clayhook: max_batch_size needs `void handle_batch(std::span<const "
                          "clayhook::Event> batch, std::span<clayhook::Result> results)`");
            return T::max_batch_size;
        } else {
            return 0;
        }
    }

    static void* create(const clayhook_host_api* api, clayhook_str config, char* err,
                        size_t cap) noexcept {
        try {
            json::Value cfg = config.len == 0
                                  ? json::Value::object()
                                  : json::parse(std::string_view(config.data, config.len));
            return new Instance<T>(api, cfg);
        } catch (const std::exception& e) {
            copy_text(e.what(), err, cap);
        } catch (...) {
            copy_text("unknown exception while creating the plugin", err, cap);
        }
        return nullptr;
    }

    static void destroy(void* instance) noexcept {
        try {
            delete static_cast<Instance<T>*>(instance);
        } catch (...) {
            // A destructor that throws has nowhere to report to; the host
            // goes on. (Destructors are noexcept by default, so this is rare.)
        }
    }

    static void handle(void* instance, const clayhook_event* event, clayhook_result* out) noexcept {
        if constexpr (HasHandler<T>) {
            try {
                Result r = static_cast<Instance<T>*>(instance)->plugin.handle(to_event(*event));
                write_result(r, out);
            } catch (...) {
                write_exception(std::current_exception(), out);
            }
        } else {
            handle_batch(instance, event, 1, out);  // one event is a batch of one
        }
    }

    static void handle_batch(void* instance, const clayhook_event* events, size_t count,
                             clayhook_result* outs) noexcept {
        if constexpr (batch_size() > 0) {
            try {
                std::vector<Event> in;
                in.reserve(count);
                for (size_t i = 0; i < count; ++i)
                    in.push_back(to_event(events[i]));
                std::vector<Result> results(count);
                static_cast<Instance<T>*>(instance)->plugin.handle_batch(
                    std::span<const Event>(in), std::span<Result>(results));
                for (size_t i = 0; i < count; ++i)
                    write_result(results[i], &outs[i]);
            } catch (...) {
                for (size_t i = 0; i < count; ++i)
                    write_exception(std::current_exception(), &outs[i]);
            }
        } else {
            (void)instance;
            (void)events;
            (void)count;
            (void)outs;
        }
    }

    static inline const clayhook_plugin_descriptor descriptor = [] {
        clayhook_plugin_descriptor d{};
        d.abi_major = CLAYHOOK_ABI_MAJOR;
        d.abi_minor = CLAYHOOK_ABI_MINOR;
        d.struct_size = sizeof(clayhook_plugin_descriptor);
        d.name = T::name;
        d.version = T::version;
        if constexpr (HasDescription<T>) d.description = T::description;
        d.event_patterns = T::events;
        d.event_pattern_count = std::size(T::events);
        d.max_batch_size = batch_size();
        if constexpr (HasMaxConcurrency<T>) d.max_concurrency = T::max_concurrency;
        d.create = &create;
        d.destroy = &destroy;
        d.handle = &handle;
        d.handle_batch = batch_size() > 0 ? &handle_batch : nullptr;
        if constexpr (HasConfigKeys<T>) {
            d.config_keys = T::config;
            d.config_key_count = std::size(T::config);
        }
        return d;
    }();
};

}  // namespace sdk
}  // namespace clayhook

// Exports the plugin class T: the only symbol the library makes visible.
#define CLAYHOOK_PLUGIN(T)                                                              \
    extern "C" __attribute__((visibility("default"))) const clayhook_plugin_descriptor* \
    clayhook_plugin_entry(void) noexcept {                                              \
        return &::clayhook::sdk::Exports<T>::descriptor;                                \
    }
