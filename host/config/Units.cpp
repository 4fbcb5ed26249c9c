#include "config/Units.h"

// One grammar for the host and the bundled plugins: the plugins' header
// (plugins/common/units.hpp) is the implementation.
#include "units.hpp"

namespace clayhook {

std::optional<int64_t> parse_duration_ms(std::string_view s, std::string& why) {
    auto p = clayhook_plugins::units::parse_duration(s);
    if (!p) {
        why = p.message;
        return std::nullopt;
    }
    return p.value->count();
}

std::optional<uint64_t> parse_size_bytes(std::string_view s, uint64_t max, std::string& why) {
    auto p = clayhook_plugins::units::parse_size(s, max);
    if (!p) {
        why = p.message;
        return std::nullopt;
    }
    return *p.value;
}

}  // namespace clayhook
