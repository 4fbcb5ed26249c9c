// Small text helpers shared by the export-downloader's units.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace clayhook::exportdl {

inline std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Without leading and trailing spaces and tabs.
inline std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t");
    return std::string(s.substr(b, e - b + 1));
}

// Text from the server, fit for a reason or a log line: printable ASCII,
// at most `max` bytes.
inline std::string printable(std::string_view s, size_t max = 64) {
    std::string out;
    for (char c : s.substr(0, max))
        out += c >= 0x20 && c < 0x7f ? c : '?';
    if (s.size() > max) out += "...";
    return out;
}

// One or more ASCII digits, nothing else.
inline bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace clayhook::exportdl
