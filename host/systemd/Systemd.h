#pragma once

// What `clayhook serve` says to and takes from systemd, without libsystemd:
// the notification protocol of sd_notify(3) (READY=1, RELOADING=1,
// STOPPING=1, WATCHDOG=1, STATUS=…) over the datagram socket named by
// $NOTIFY_SOCKET, the watchdog interval of sd_watchdog_enabled(3)
// ($WATCHDOG_USEC, $WATCHDOG_PID), and the listening socket of
// sd_listen_fds(3) ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES) for socket
// activation. Outside systemd every part is off and costs nothing.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace clayhook::systemd {

// The environment of `serve`, read once at start (take_environment) and then
// removed from it, so that plugin worker processes do not inherit it.
struct Environment {
    std::string notify_socket;                   // empty: no notifications
    std::chrono::microseconds watchdog_usec{0};  // 0: no watchdog
    int listen_fd = -1;                          // -1: bind the configured address
    std::string error;  // a malformed variable or a socket that cannot be used
};

// Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC/PID and LISTEN_PID/FDS/FDNAMES.
// Call it on the main thread before any other starts (it calls unsetenv).
// LISTEN_* counts only when LISTEN_PID is this process; of several sockets
// the one named "intake" (FileDescriptorName=) is taken, else the first.
// The taken descriptor must be a listening TCP socket; it is made
// close-on-exec. Sockets passed but not taken are closed.
Environment take_environment();

// A parse of the variables' values, for tests: `self` is this process's pid.
Environment parse_environment(const char* notify_socket, const char* watchdog_usec,
                              const char* watchdog_pid, const char* listen_pid,
                              const char* listen_fds, const char* listen_fdnames, long self);

// Sends notifications to the socket (a path, or "@name" for an abstract
// one). Thread-safe; a failed send is reported by a false return, never
// thrown: systemd going away must not stop the host.
class Notifier {
  public:
    explicit Notifier(std::string socket) : socket_(std::move(socket)) {}
    bool enabled() const { return !socket_.empty(); }
    bool notify(std::string_view state) const noexcept;
    // "RELOADING=1" with MONOTONIC_USEC= (systemd 253+ wants both).
    bool reloading() const noexcept;

  private:
    std::string socket_;
};

}  // namespace clayhook::systemd
