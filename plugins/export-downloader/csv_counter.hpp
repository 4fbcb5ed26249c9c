// CSV records, RFC 4180, counted while streaming: a record ends at a newline
// (LF or CR LF) outside double quotes, so a quoted field may hold newlines;
// "" inside quotes is a quote, which toggling handles. A last record without
// a newline counts; empty lines do not. Any delimiter works; a stray quote
// inside an unquoted field (not RFC 4180) throws the count off, and the file
// goes aside for a person. Fed in pieces of any size, split anywhere.
#pragma once

#include <cstddef>
#include <cstdint>

namespace clayhook::exportdl {

class CsvCounter {
  public:
    void feed(const char* p, size_t n);
    // Records so far, the last one counted even without its newline.
    uint64_t records() const { return records_ + (content_ ? 1 : 0); }
    // Records less the header.
    uint64_t data_rows() const { return records() == 0 ? 0 : records() - 1; }
    // Whether the text so far ends inside a quoted field.
    bool open_quote() const { return quoted_; }

  private:
    uint64_t records_ = 0;
    bool content_ = false;
    bool quoted_ = false;
};

}  // namespace clayhook::exportdl
