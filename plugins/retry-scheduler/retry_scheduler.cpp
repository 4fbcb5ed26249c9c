// retry-scheduler: re-runs failed enrichments through the Clay API, at
// exponentially spaced times, until the row comes back enriched or the
// attempts run out. Built against plugin-api/ only, like any third party's
// (plus Poco, through the bundled plugins' HTTP kit, plugins/common/).
//
// On `enrichment.failed` it decides from the error code whether a re-run can
// help (configurable retryable and final codes), then asks the host to hand
// it the same event again later (deliver_again_at). When that delivery
// arrives it calls `POST {clay_api}/v1/tables/{table_id}/rows/{row_id}/enrich`
// with the failed column. A later `enrichment.completed` for the row cancels
// whatever is pending. Its state (per row: attempts, the event being
// retried, when) lives in the host's key-value store, so it survives
// restarts. docs/plugins/retry-scheduler.md has the config and the details.
//
// The call goes through plugins/common/http_kit.hpp: https:// (http:// only to
// a loopback address), ca_file added to the system's CAs, an answer of at
// most 1 MiB, Retry-After as seconds or an HTTP-date. Durations (timeout_ms,
// backoff_base_ms, backoff_cap_ms, declared duration_ms) take "30s"-style
// strings or integer ms.
// The keys are declared in RetryScheduler::config (ABI 1.1): the host checks
// the config against them first (unknown keys, types, api_key only as a
// reference), fills in the defaults and hands durations over as integer ms.
#include <clayhook/plugin.hpp>

#include "http_kit.hpp"
#include "units.hpp"

#include <Poco/URI.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace json = clayhook::json;
namespace http = clayhook_plugins::http;
namespace units = clayhook_plugins::units;
using clayhook::Result;
using Clock = std::chrono::system_clock;
using std::chrono::milliseconds;

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
}

std::vector<std::string> string_list(const json::Value& config, std::string_view key,
                                     std::vector<std::string> fallback) {
    const json::Value* v = config.find(key);
    if (v == nullptr) return fallback;
    if (!v->is_array())
        throw std::runtime_error("config: '" + std::string(key) + "' must be a list of strings");
    std::vector<std::string> out;
    for (const auto& x : v->items()) {
        if (!x.is_string())
            throw std::runtime_error("config: '" + std::string(key) +
                                     "' must be a list of strings");
        out.push_back(x.as_string());
    }
    return out;
}

bool listed(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

// Durations: "250ms", "30s", "5m" (plugins/common/units.hpp), or integer
// milliseconds as before.
milliseconds duration(const json::Value& config, std::string_view key, milliseconds fallback,
                      milliseconds min, milliseconds max) {
    return units::duration_ms_setting(config, key, fallback, min, max);
}

// What Clay said when it refused, for the dead letter: at most this much.
constexpr size_t kMaxQuotedBody = 4096;

}  // namespace

class RetryScheduler {
  public:
    static constexpr const char* name = "retry-scheduler";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description =
        "re-runs failed Clay enrichments with backoff until the row is enriched";
    static constexpr const char* events[] = {"enrichment.failed", "enrichment.completed"};
    static constexpr clayhook::ConfigKey config[] = {
        clayhook::config::optional(clayhook::ConfigType::string, "clay_api", "https://api.clay.com",
                                   "Base URL of the Clay API: `https://` only, but `http://` to "
                                   "a loopback address."),
        clayhook::config::secret("api_key",
                                 "Clay's API key, sent as `Authorization: Bearer …`: "
                                 "`${CLAY_API_KEY}`, `file:PATH` or `credential:NAME`."),
        clayhook::config::optional(clayhook::ConfigType::integer, "max_attempts", "5",
                                   "Re-runs asked of Clay per row, 1 to 100; a failure after "
                                   "that many is a dead letter."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "backoff_base_ms", "1m",
                                   "The wait before re-run 1; re-run n waits base × 2^(n-1), at "
                                   "most `backoff_cap_ms`. 1ms to ten years."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "backoff_cap_ms", "1h",
                                   "The longest wait, at least `backoff_base_ms`, at most ten "
                                   "years."),
        clayhook::config::optional(
            clayhook::ConfigType::string_list, "retryable_codes",
            R"(["PROVIDER_TIMEOUT", "PROVIDER_ERROR", "RATE_LIMITED", "INTERNAL_ERROR", "TIMEOUT"])",
            "`error.code` values worth a re-run."),
        clayhook::config::optional(
            clayhook::ConfigType::string_list, "final_codes",
            R"(["INVALID_INPUT", "NOT_FOUND", "INSUFFICIENT_CREDITS", "UNAUTHORIZED", "NO_DATA"])",
            "Codes that will not get better: a dead letter at once, no call to Clay."),
        clayhook::config::optional(clayhook::ConfigType::boolean, "retry_unknown_codes", "false",
                                   "A code in neither list: `false` makes it a dead letter, "
                                   "`true` re-runs it."),
        clayhook::config::optional(clayhook::ConfigType::string, "default_column", nullptr,
                                   "The column to re-run when the event has no `error.column`; "
                                   "with neither, a dead letter."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "timeout_ms", "30s",
                                   "Connect timeout and each wait to send or to read, per API "
                                   "call; 1ms to 10m."),
        clayhook::config::optional(clayhook::ConfigType::string, "ca_file", nullptr,
                                   "A PEM file of CA certificates added to the system's CAs; "
                                   "certificates are always verified."),
    };

    RetryScheduler(clayhook::Host& host, const json::Value& cfg)
        : host_(host),
          api_key_(cfg.get_string("api_key", "")),
          default_column_(cfg.get_string("default_column", "")),
          retryable_(string_list(
              cfg, "retryable_codes",
              {"PROVIDER_TIMEOUT", "PROVIDER_ERROR", "RATE_LIMITED", "INTERNAL_ERROR", "TIMEOUT"})),
          final_(string_list(
              cfg, "final_codes",
              {"INVALID_INPUT", "NOT_FOUND", "INSUFFICIENT_CREDITS", "UNAUTHORIZED", "NO_DATA"})),
          retry_unknown_(cfg.get_bool("retry_unknown_codes", false)),
          max_attempts_(cfg.get_int("max_attempts", 5)),
          base_ms_(duration(cfg, "backoff_base_ms", milliseconds(60'000), milliseconds(1),
                            units::kMaxDuration)
                       .count()),
          cap_ms_(duration(cfg, "backoff_cap_ms", milliseconds(3'600'000), milliseconds(1),
                           units::kMaxDuration)
                      .count()) {
        if (api_key_.empty())
            throw std::runtime_error(
                "config: 'api_key' is required (write it as ${CLAY_API_KEY} or file:PATH)");
        if (max_attempts_ < 1 || max_attempts_ > 100)
            throw std::runtime_error("config: 'max_attempts' must be between 1 and 100");
        if (cap_ms_ < base_ms_)
            throw std::runtime_error(
                "config: 'backoff_base_ms' must be at least 1 and 'backoff_cap_ms' at least that");
        const milliseconds timeout = duration(cfg, "timeout_ms", milliseconds(30'000),
                                              milliseconds(1), milliseconds(600'000));
        try {
            endpoint_ = http::Endpoint::parse(cfg.get_string("clay_api", "https://api.clay.com"),
                                              http::AllowHttp::loopback);
        } catch (const http::UrlError& e) {
            throw std::runtime_error(std::string("config: 'clay_api' ") + e.what());
        }
        // Certificates and host names are always verified; ca_file (PEM) is
        // added to the system's CAs (a private CA, the tests').
        http::ClientOptions o;
        o.connect_timeout = timeout;
        o.read_timeout = timeout;
        try {
            client_ = std::make_unique<http::Client>(cfg.get_string("ca_file", ""), o);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(std::string("config: 'ca_file': ") + e.what());
        }
        host_.info("re-running failed enrichments through " + endpoint_.url());
    }

    Result handle(const clayhook::Event& e) {
        json::Value body;
        try {
            body = e.json();
        } catch (const json::ParseError& err) {
            return Result::fail(std::string("the body is not JSON: ") + err.what());
        }
        std::string table = body.get_string("table_id", "");
        std::string row = body.get_string("row_id", "");
        if (table.empty() || row.empty())
            return Result::fail("the event has no table_id or row_id: nothing to re-run");
        const std::string key = "row:" + table + "/" + row;
        // One handling per row at a time (the state is read, then written).
        std::lock_guard lock(stripes_[std::hash<std::string>{}(key) % kStripes]);
        if (e.type == "enrichment.completed") return completed(key);
        if (e.type != "enrichment.failed") return Result::done();  // subscribed elsewhere: ignore
        return failed(e, body, table, row, key);
    }

  private:
    // Per row, in the host's key-value store.
    struct State {
        std::string event;     // the failed event this row's pending re-run belongs to
        int64_t attempts = 0;  // re-runs asked of Clay so far (across this row's failures)
        std::string status;    // "scheduled": a re-run is due at next_at; "rerun": asked of Clay
        int64_t next_at = 0;
        std::string code;
        std::string column;
    };

    std::optional<State> load(const std::string& key) const {
        auto v = host_.kv_get(key);
        if (!v) return std::nullopt;
        json::Value j = json::parse(*v);
        State s;
        s.event = j.get_string("event", "");
        s.attempts = j.get_int("attempts", 0);
        s.status = j.get_string("status", "");
        s.next_at = j.get_int("next_at", 0);
        s.code = j.get_string("code", "");
        s.column = j.get_string("column", "");
        return s;
    }
    void save(const std::string& key, const State& s) const {
        host_.kv_put(key, json::dump(json::Value::object()
                                         .set("event", s.event)
                                         .set("attempts", s.attempts)
                                         .set("status", s.status)
                                         .set("next_at", s.next_at)
                                         .set("code", s.code)
                                         .set("column", s.column)));
    }

    int64_t delay_for(int64_t attempt) const {  // attempt >= 1
        int64_t d = base_ms_;
        for (int64_t i = 1; i < attempt && d < cap_ms_; ++i)
            d = d > cap_ms_ / 2 ? cap_ms_ : d * 2;
        return std::min(d, cap_ms_);
    }

    Result completed(const std::string& key) {
        auto s = load(key);
        if (!s) return Result::done();
        // The row is enriched: whatever is pending for it is cancelled (its
        // scheduled delivery finds no state and does nothing).
        host_.kv_delete(key);
        if (s->attempts > 0) {
            host_.counter_add("recovered_total");
            host_.info("row recovered after " + std::to_string(s->attempts) +
                       " re-run(s): " + key.substr(4));
        } else {
            host_.counter_add("cancelled_total");
        }
        return Result::done();
    }

    Result failed(const clayhook::Event& e, const json::Value& body, const std::string& table,
                  const std::string& row, const std::string& key) {
        std::string code_text;
        if (const json::Value* c = body.at_path("error.code"); c && c->is_string())
            code_text = c->as_string();
        std::string column;
        if (const json::Value* c = body.at_path("error.column"); c && c->is_string())
            column = c->as_string();
        if (column.empty()) column = default_column_;
        std::string message;
        if (const json::Value* m = body.at_path("error.message"); m && m->is_string())
            message = m->as_string();

        auto state = load(key);
        const std::string marker = "seen:" + std::string(e.id);
        const bool seen = host_.kv_get(marker).has_value();

        if (seen) {
            // This event was handled before: either its scheduled re-delivery
            // has come, or the first handling is running again after a crash.
            if (!state || state->event != e.id || state->status != "scheduled") {
                // Cancelled by a success, or superseded by a newer failure.
                host_.kv_delete(marker);
                return Result::done();
            }
            if (now_ms() + 1000 < state->next_at) {
                // Early: the first handling again. Make sure the re-delivery
                // is there (asking again moves the pending one, no second).
                host_.deliver_again_at(
                    e.id, Clock::time_point(std::chrono::milliseconds(state->next_at)));
                return Result::done();
            }
            return rerun(key, *state, table, row, std::string(e.id));
        }

        // A new failure of this row.
        if (listed(final_, code_text))
            return give_up(key, "final error code " + code_text + ": " + message);
        if (!listed(retryable_, code_text) && !retry_unknown_)
            return give_up(
                key, "error code '" + code_text + "' is not in retryable_codes (" + message + ")");
        const int64_t attempts = state ? state->attempts : 0;
        if (attempts >= max_attempts_)
            return give_up(key, "gave up after " + std::to_string(attempts) + " re-run(s); last " +
                                    code_text + ": " + message);
        State s;
        s.event = std::string(e.id);
        s.attempts = attempts;
        s.status = "scheduled";
        s.next_at = now_ms() + delay_for(attempts + 1);
        s.code = code_text;
        s.column = column;
        save(key, s);
        host_.kv_put(marker, "1");
        host_.deliver_again_at(e.id, Clock::time_point(std::chrono::milliseconds(s.next_at)));
        host_.counter_add("scheduled_total");
        return Result::done();
    }

    Result give_up(const std::string& key, const std::string& why) {
        host_.kv_delete(key);
        host_.counter_add("given_up_total");
        return Result::fail(why);
    }

    Result rerun(const std::string& key, State s, const std::string& table, const std::string& row,
                 const std::string& event_id) {
        if (s.column.empty())
            return give_up(key,
                           "no column to re-run (the event has no error.column and "
                           "default_column is not set)");
        std::string path = "/v1/tables/" + encode(table) + "/rows/" + encode(row) + "/enrich";
        std::string body = json::dump(json::Value::object().set("column", s.column));
        http::Response a;
        try {
            a = client_->send(endpoint_, {"POST",
                                          path,
                                          {{"Authorization", "Bearer " + api_key_},
                                           {"Content-Type", "application/json"},
                                           {"Accept", "application/json"}},
                                          body});
        } catch (const http::Error& e) {
            if (e.retryable())
                return Result::retry(std::string("Clay API unreachable: ") + e.what());
            return give_up(key,
                           std::string("Clay's answer to the re-run is unusable: ") + e.what());
        }
        const http::Verdict v = http::classify(a);
        if (v.kind == http::Verdict::retry) {
            const milliseconds wait = v.retry_after.value_or(std::chrono::seconds(0));
            if (a.status == 429)
                return Result::retry("Clay API rate limited (429)",
                                     std::max<milliseconds>(wait, std::chrono::seconds(1)));
            return Result::retry("Clay API answered " + std::to_string(a.status), wait);
        }
        if (v.kind == http::Verdict::fail)
            return give_up(key, "Clay refused the re-run (" + std::to_string(a.status) +
                                    "): " + a.body.substr(0, kMaxQuotedBody));
        ++s.attempts;
        s.status = "rerun";
        save(key, s);
        host_.kv_delete("seen:" + event_id);
        host_.counter_add("rerun_total");
        host_.info("re-ran " + s.column + " for " + table + "/" + row + " (attempt " +
                   std::to_string(s.attempts) + ")");
        return Result::done();
    }

    static std::string encode(const std::string& s) {
        std::string out;
        Poco::URI::encode(s, "/?#&=+", out);
        return out;
    }

    static constexpr size_t kStripes = 64;
    std::mutex stripes_[kStripes];
    clayhook::Host& host_;
    std::string api_key_;
    std::string default_column_;
    std::vector<std::string> retryable_, final_;
    bool retry_unknown_;
    int64_t max_attempts_, base_ms_, cap_ms_;
    http::Endpoint endpoint_;
    std::unique_ptr<http::Client> client_;
};

CLAYHOOK_PLUGIN(RetryScheduler)
