#include "csv_counter.hpp"

namespace clayhook::exportdl {

void CsvCounter::feed(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        char c = p[i];
        if (c == '"') {
            quoted_ = !quoted_;
            content_ = true;
        } else if (c == '\n' && !quoted_) {
            if (content_) ++records_;
            content_ = false;
        } else if (c != '\r') {
            content_ = true;
        }
    }
}

}  // namespace clayhook::exportdl
