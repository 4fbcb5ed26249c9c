#pragma once

// Reading a journal segment file whole, for recovery and for backups: in
// read() calls, to its end even when it grew after being opened (the one in
// use does). A byte-at-a-time stream copy of a 64 MiB segment took most of a
// second here.

#include <sys/types.h>

#include <optional>
#include <string>

namespace clayhook::journal {

struct SegmentFile {
    std::string bytes;
    dev_t dev = 0;  // the file read, whatever its name points to by now
    ino_t ino = 0;
};

// The file's bytes; nullopt with `error` empty when it does not exist (a
// segment deleted since it was listed), with `error` set when it cannot be
// opened or read.
std::optional<SegmentFile> read_segment_file(const std::string& path, std::string& error);

}  // namespace clayhook::journal
