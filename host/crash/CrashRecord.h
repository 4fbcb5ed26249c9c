#pragma once

// The crash record a fatal signal leaves (crash/FatalSignal.h), as the next
// start reads it: which signal, whose claims (the store's host_id), and
// which plugin call the crashing thread was in.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace clayhook {

struct CrashRecord {
    std::string signal;  // "SIGSEGV"
    std::string owner;   // the host_id of the process that died
    std::string plugin;  // "" when the crash was outside a plugin call
    std::vector<int64_t> deliveries;

    // "the host died of SIGSEGV during this call (plugin crasher)"
    std::string reason() const;
};

// Reads the record at `path`: nullopt when there is none; throws
// std::runtime_error when it exists but cannot be read or parsed.
std::optional<CrashRecord> read_crash_record(const std::string& path);

}  // namespace clayhook
