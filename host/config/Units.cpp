#include "config/Units.h"

#include <cctype>

namespace clayhook {

namespace {
size_t digits(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
        ++i;
    return i;
}
uint64_t to_number(std::string_view s) {
    uint64_t n = 0;
    for (char c : s)
        n = n * 10 + static_cast<uint64_t>(c - '0');
    return n;
}
}  // namespace

std::optional<int64_t> parse_duration_ms(std::string_view s, std::string& why) {
    const size_t i = digits(s);
    const std::string_view unit = s.substr(i);
    if (i == 0 || i > 12) {
        why = "expected a duration like 250ms, 30s, 5m, 2h or 7d, found '" + std::string(s) + "'";
        return std::nullopt;
    }
    const int64_t n = static_cast<int64_t>(to_number(s.substr(0, i)));  // <= 12 digits
    const int64_t mul = unit == "ms"                  ? 1
                        : unit == "s" || unit.empty() ? 1000
                        : unit == "m"                 ? 60'000
                        : unit == "h"                 ? 3'600'000
                        : unit == "d"                 ? 86'400'000
                                                      : -1;
    if (mul < 0) {
        why = "unknown duration unit '" + std::string(unit) + "' (ms, s, m, h, d)";
        return std::nullopt;
    }
    if (n > 10LL * 366 * 86'400'000 / mul) {
        why = "is longer than ten years";
        return std::nullopt;
    }
    return n * mul;
}

std::optional<uint64_t> parse_size_bytes(std::string_view s, uint64_t max, std::string& why) {
    const size_t i = digits(s);
    if (i == 0 || i > 15) {
        why = "expected a size like 65536, 100KB or 1MiB, found '" + std::string(s) + "'";
        return std::nullopt;
    }
    const std::string_view unit = s.substr(i);
    const uint64_t n = to_number(s.substr(0, i));
    const uint64_t mul = unit.empty() || unit == "B"     ? 1
                         : unit == "KB" || unit == "KiB" ? 1024
                         : unit == "MB" || unit == "MiB" ? 1024 * 1024
                         : unit == "GB" || unit == "GiB" ? 1024ULL * 1024 * 1024
                                                         : 0;
    if (mul == 0) {
        why = "unknown size unit '" + std::string(unit) +
              "' (B, KB/KiB, MB/MiB, GB/GiB; all 1024-based)";
        return std::nullopt;
    }
    if (n > max / mul) {
        why = "must be at most " + std::to_string(max) + " bytes";
        return std::nullopt;
    }
    return n * mul;
}

}  // namespace clayhook
