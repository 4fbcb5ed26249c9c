#include "log/Journal.h"

#include <sys/stat.h>

#include <charconv>
#include <cstdlib>
#include <string_view>

namespace clayhook {

namespace {

// A whole unsigned decimal number, nothing else.
bool parse_number(std::string_view s, unsigned long long& out) {
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

bool stream_is_journal(int fd) {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) return false;
    std::string_view value(env);
    auto colon = value.find(':');
    if (colon == std::string_view::npos) return false;
    unsigned long long dev = 0, ino = 0;
    if (!parse_number(value.substr(0, colon), dev) || !parse_number(value.substr(colon + 1), ino))
        return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev &&
           static_cast<unsigned long long>(st.st_ino) == ino;
}

}  // namespace clayhook
