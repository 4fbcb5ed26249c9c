#pragma once

// The host's last words. A plugin running in-process can crash the host
// (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT); when it does, the handler
// installed here writes, async-signal-safely, one log line naming the signal,
// the plugin and the deliveries of the call the crashing thread was in, and
// a crash record (a small file the next start reads: crash/CrashRecord.h),
// then lets the signal take its course (the previous handler, or the default
// action: the exit status and a core dump stay what they were).
//
// Each dispatcher thread marks the calls it makes with a CallScope; threads
// that run plugin code get an alternate signal stack (prepare_thread), so a
// stack overflow in a plugin is reported too.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace clayhook::fatal {

// Installs the handlers once per process. `record_path` "" = no crash
// record; `owner` is the store's host_id (written into the record). Later
// calls change the record path and owner only.
void install(const std::string& record_path, const std::string& owner,
             std::string_view component = "host");

// Gives the calling thread an alternate signal stack (freed when the thread
// ends). Call at the start of a thread that runs plugin code.
void prepare_thread();

// While alive, the calling thread is in a call of `plugin` handling
// `deliveries` (the first 32 are recorded).
class CallScope {
  public:
    CallScope(std::string_view plugin, std::span<const int64_t> deliveries) noexcept;
    ~CallScope();
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;
};

}  // namespace clayhook::fatal
