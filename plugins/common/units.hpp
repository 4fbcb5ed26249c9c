// Durations and sizes in the bundled plugins' configs, in the host's own
// syntax (host/config/ConfigLoader.cpp, "duration" and "size_bytes"), so that
// a plugin's keys read like clayhook.yaml's. Header-only, plugin-api only.
//
//   duration: digits, then a unit: ms, s, m, h, d ("250ms", "30s", "5m",
//             "1h", "1d"); no unit is seconds ("30"); no sign, no fraction,
//             no space; at most 12 digits and at most ten years.
//   size:     digits, then a unit: B, KB or KiB, MB or MiB, GB or GiB, all
//             1024-based ("64KiB", "1MiB", "10MB"); no unit is bytes
//             ("65536"); at most 15 digits and at most the key's maximum.
//
// In a plugin's JSON config a duration or size is such a string. For the keys
// that took integers before (timeout_ms, backoff_base_ms, ...), an integer is
// still read as before: milliseconds (duration_ms_setting); jsonl-sink keeps
// its integers as seconds and bytes, which is the host's meaning of a bare
// number anyway.
#pragma once

#include <clayhook/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace clayhook_plugins::units {

// What was wrong with a duration or a size.
enum class Problem {
    none,
    malformed,     // no digits first (empty, a sign, a space), or too many of them
    unknown_unit,  // `unit` holds what followed the digits
    too_large,     // past ten years, or past the size's maximum
};

template <class T>
struct Parsed {
    std::optional<T> value;
    Problem problem = Problem::none;
    std::string unit;     // with unknown_unit: the text after the digits
    std::string message;  // the host's words for the problem ("" when none)
    explicit operator bool() const { return value.has_value(); }
};

inline constexpr std::chrono::milliseconds kMaxDuration{10LL * 366 * 86'400'000};  // ten years

namespace detail {
inline size_t digits(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
        ++i;
    return i;
}
inline uint64_t number(std::string_view s) {  // at most 15 digits: no overflow
    uint64_t n = 0;
    for (char c : s)
        n = n * 10 + static_cast<uint64_t>(c - '0');
    return n;
}
}  // namespace detail

// "250ms", "30s", "5m", "2h", "7d"; a bare number is seconds.
inline Parsed<std::chrono::milliseconds> parse_duration(std::string_view s) {
    Parsed<std::chrono::milliseconds> out;
    const size_t i = detail::digits(s);
    if (i == 0 || i > 12) {
        out.problem = Problem::malformed;
        out.message =
            "expected a duration like 250ms, 30s, 5m, 2h or 7d, found '" + std::string(s) + "'";
        return out;
    }
    const std::string_view unit = s.substr(i);
    const auto n = static_cast<int64_t>(detail::number(s.substr(0, i)));
    const int64_t mul = unit == "ms"                  ? 1
                        : unit == "s" || unit.empty() ? 1000
                        : unit == "m"                 ? 60'000
                        : unit == "h"                 ? 3'600'000
                        : unit == "d"                 ? 86'400'000
                                                      : -1;
    if (mul < 0) {
        out.problem = Problem::unknown_unit;
        out.unit = std::string(unit);
        out.message = "unknown duration unit '" + out.unit + "' (ms, s, m, h, d)";
        return out;
    }
    if (n > kMaxDuration.count() / mul) {
        out.problem = Problem::too_large;
        out.message = "is longer than ten years";
        return out;
    }
    out.value = std::chrono::milliseconds(n * mul);
    return out;
}

// 1048576, "100KB", "1MiB", "2MB", "1GiB" (KB and KiB both 1024), at most `max`.
inline Parsed<uint64_t> parse_size(std::string_view s, uint64_t max = UINT64_MAX) {
    Parsed<uint64_t> out;
    const size_t i = detail::digits(s);
    if (i == 0 || i > 15) {
        out.problem = Problem::malformed;
        out.message = "expected a size like 65536, 100KB or 1MiB, found '" + std::string(s) + "'";
        return out;
    }
    const std::string_view unit = s.substr(i);
    const uint64_t n = detail::number(s.substr(0, i));
    const uint64_t mul = unit.empty() || unit == "B"     ? 1
                         : unit == "KB" || unit == "KiB" ? 1024
                         : unit == "MB" || unit == "MiB" ? 1024 * 1024
                         : unit == "GB" || unit == "GiB" ? 1024ULL * 1024 * 1024
                                                         : 0;
    if (mul == 0) {
        out.problem = Problem::unknown_unit;
        out.unit = std::string(unit);
        out.message =
            "unknown size unit '" + out.unit + "' (B, KB/KiB, MB/MiB, GB/GiB; all 1024-based)";
        return out;
    }
    if (n > max / mul) {
        out.problem = Problem::too_large;
        out.message = "must be at most " + std::to_string(max) + " bytes";
        return out;
    }
    out.value = n * mul;
    return out;
}

// A duration the way a message shows it: the largest unit that says it exactly
// ("10m", "1500ms"), so that it reads back as written.
inline std::string format_duration(std::chrono::milliseconds d) {
    const int64_t ms = d.count();
    if (ms != 0) {
        for (auto [unit, mul] : {std::pair{"d", 86'400'000LL}, std::pair{"h", 3'600'000LL},
                                 std::pair{"m", 60'000LL}, std::pair{"s", 1000LL}})
            if (ms % mul == 0) return std::to_string(ms / mul) + unit;
    }
    return std::to_string(ms) + "ms";
}

// A duration in a plugin's config under `key`, between `min` and `max`:
// a string in the host's syntax, or, for the keys that took integer
// milliseconds before (timeout_ms, ...), an integer of milliseconds. Throws
// std::runtime_error naming the key ("config: 'timeout_ms' ...").
inline std::chrono::milliseconds duration_ms(const clayhook::json::Value& v, std::string_view key,
                                             std::chrono::milliseconds min,
                                             std::chrono::milliseconds max) {
    const std::string at = "config: '" + std::string(key) + "' ";
    const std::string range = "from " + format_duration(min) + " to " + format_duration(max);
    std::optional<int64_t> integer;  // 5000, and 5e3 as the old get_int read it
    if (v.is_number()) {
        try {
            integer = v.as_int64();
        } catch (const clayhook::json::TypeError&) {
            // a fraction: not milliseconds, refused below
        }
    }
    if (integer) {
        const std::chrono::milliseconds d(*integer);
        if (d < min || d > max)
            throw std::runtime_error(at + "must be " + range + " (an integer is milliseconds), " +
                                     "found " + clayhook::json::dump(v));
        return d;
    }
    if (!v.is_string())
        throw std::runtime_error(at + "must be a duration like \"250ms\", \"30s\" or \"5m\" " +
                                 "(or an integer of milliseconds), found " +
                                 clayhook::json::dump(v));
    auto p = parse_duration(v.as_string());
    if (!p) throw std::runtime_error(at + p.message);
    if (*p.value < min || *p.value > max)
        throw std::runtime_error(at + "must be " + range + ", found '" + v.as_string() + "'");
    return *p.value;
}

// The same for an optional key: `fallback` when the config does not have it.
inline std::chrono::milliseconds duration_ms_setting(const clayhook::json::Value& config,
                                                     std::string_view key,
                                                     std::chrono::milliseconds fallback,
                                                     std::chrono::milliseconds min,
                                                     std::chrono::milliseconds max) {
    const clayhook::json::Value* v = config.find(key);
    if (v == nullptr) return fallback;
    return duration_ms(*v, key, min, max);
}

}  // namespace clayhook_plugins::units
