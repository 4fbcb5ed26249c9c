#pragma once

// The host's one syntax for durations and sizes, shared by its own config
// keys and by the keys plugins declare (plugins/ConfigSchema.h).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clayhook {

// "250ms", "30s", "5m", "2h", "7d"; a bare number is seconds. At most ten
// years. nullopt with `why` set when it is not one.
std::optional<int64_t> parse_duration_ms(std::string_view text, std::string& why);

// 1048576, "100KB", "1MiB", "2MB", "1GiB" (KB and KiB both 1024). At most
// `max`. nullopt with `why` set when it is not one.
std::optional<uint64_t> parse_size_bytes(std::string_view text, uint64_t max, std::string& why);

}  // namespace clayhook
