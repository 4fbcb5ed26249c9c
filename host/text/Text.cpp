#include "text/Text.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace clayhook {

namespace {

// The length of the well-formed UTF-8 sequence at s[i], or 0; its code
// point in `cp`.
size_t utf8_sequence(std::string_view s, size_t i, uint32_t& cp) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t min;
    if (b < 0x80) {
        cp = b;
        return 1;
    } else if ((b & 0xE0) == 0xC0) {
        len = 2, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        len = 3, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        len = 4, cp = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
        auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

bool is_control(uint32_t cp) {
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

}  // namespace

bool valid_utf8(std::string_view s) {
    uint32_t cp;
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence(s, i, cp);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string to_valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    uint32_t cp;
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence(s, i, cp);
        if (n == 0) {
            out += "\xef\xbf\xbd";
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

bool clean_label(std::string_view s, size_t max_bytes) {
    if (s.empty() || s.size() > max_bytes) return false;
    uint32_t cp;
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence(s, i, cp);
        if (n == 0 || is_control(cp)) return false;
        i += n;
    }
    return true;
}

std::string terminal_safe(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    uint32_t cp;
    char esc[8];
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence(s, i, cp);
        if (n == 0 || (n == 1 && is_control(cp))) {
            auto b = static_cast<unsigned char>(s[i]);
            if (b == '\n') {
                out += "\\n";
            } else if (b == '\r') {
                out += "\\r";
            } else if (b == '\t') {
                out += "\\t";
            } else {
                std::snprintf(esc, sizeof esc, "\\x%02x", b);
                out += esc;
            }
            ++i;
        } else if (is_control(cp)) {  // C1, two bytes in UTF-8
            std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(cp));
            out += esc;
            i += n;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

std::string hex_lower(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) {
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
    return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j)
        prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min(
                {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

}  // namespace clayhook
