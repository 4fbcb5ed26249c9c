#pragma once

// Checks on text that came from the network before it is stored, logged,
// put in JSON or printed on a terminal.

#include <string>
#include <string_view>

namespace clayhook {

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF).
bool valid_utf8(std::string_view s);

// A name-like value (an event type, a delivery id): valid UTF-8, not empty,
// at most `max_bytes`, and no control character (C0, DEL, C1).
bool clean_label(std::string_view s, size_t max_bytes = 256);

// `s` with every byte that is not part of well-formed UTF-8 replaced by
// U+FFFD; well-formed input comes back unchanged.
std::string to_valid_utf8(std::string_view s);

// `s` made safe for a terminal: control characters and bytes that are not
// valid UTF-8 become visible escapes (\n, \x1b, \xff); everything else is
// kept.
std::string terminal_safe(std::string_view s);

// The bytes of `s` as lower-case hex, two digits each.
std::string hex_lower(std::string_view s);

// Levenshtein distance: how many single-byte edits turn a into b (the "did
// you mean" of config errors).
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace clayhook
