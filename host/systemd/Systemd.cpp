#include "systemd/Systemd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace clayhook::systemd {

namespace {

constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START

bool parse_number(const char* text, long long& out) {
    if (text == nullptr || *text == '\0') return false;
    const char* end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, out);
    return ec == std::errc() && p == end;
}

std::vector<std::string> split_names(const char* names) {
    std::vector<std::string> out;
    if (names == nullptr) return out;
    std::string_view rest(names);
    for (;;) {
        auto colon = rest.find(':');
        out.emplace_back(rest.substr(0, colon));
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
    }
    return out;
}

}  // namespace

Environment parse_environment(const char* notify_socket, const char* watchdog_usec,
                              const char* watchdog_pid, const char* listen_pid,
                              const char* listen_fds, const char* listen_fdnames, long self) {
    Environment env;
    if (notify_socket != nullptr && *notify_socket != '\0') {
        if (notify_socket[0] != '/' && notify_socket[0] != '@')
            env.error = "NOTIFY_SOCKET is neither a path nor an abstract socket (@name)";
        else if (std::strlen(notify_socket) >= sizeof(sockaddr_un::sun_path))
            env.error = "NOTIFY_SOCKET is longer than a socket path can be";
        else
            env.notify_socket = notify_socket;
    }
    if (watchdog_usec != nullptr && *watchdog_usec != '\0') {
        long long usec = 0, pid = 0;
        bool for_us = watchdog_pid == nullptr || *watchdog_pid == '\0' ||
                      (parse_number(watchdog_pid, pid) && pid == self);
        if (!parse_number(watchdog_usec, usec) || usec <= 0)
            env.error = "WATCHDOG_USEC is not a positive number of microseconds";
        else if (for_us)
            env.watchdog_usec = std::chrono::microseconds(usec);
    }
    if (listen_fds != nullptr && *listen_fds != '\0') {
        long long pid = 0, n = 0;
        if (!parse_number(listen_pid, pid)) {
            env.error = "LISTEN_FDS is set but LISTEN_PID is not a pid";
        } else if (pid == self) {
            if (!parse_number(listen_fds, n) || n < 1 || n > 64) {
                env.error = "LISTEN_FDS is not a count of passed sockets";
            } else {
                auto names = split_names(listen_fdnames);
                int chosen = kListenFdsStart;
                for (size_t i = 0; i < names.size() && i < static_cast<size_t>(n); ++i)
                    if (names[i] == "intake") chosen = kListenFdsStart + static_cast<int>(i);
                env.listen_fd = chosen;
            }
        }
    }
    return env;
}

Environment take_environment() {
    Environment env = parse_environment(std::getenv("NOTIFY_SOCKET"), std::getenv("WATCHDOG_USEC"),
                                        std::getenv("WATCHDOG_PID"), std::getenv("LISTEN_PID"),
                                        std::getenv("LISTEN_FDS"), std::getenv("LISTEN_FDNAMES"),
                                        static_cast<long>(::getpid()));
    long long passed = 0;
    if (env.listen_fd >= 0 && parse_number(std::getenv("LISTEN_FDS"), passed)) {
        // Every passed descriptor is ours now: close-on-exec for all (a
        // plugin worker must not hold the listener open), closed if not used.
        for (int fd = kListenFdsStart; fd < kListenFdsStart + passed; ++fd) {
            if (fd == env.listen_fd) continue;
            ::close(fd);
        }
        int fd = env.listen_fd;
        int flags = ::fcntl(fd, F_GETFD);
        int type = 0, listening = 0;
        socklen_t len = sizeof type;
        bool is_stream = flags >= 0 && ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                         type == SOCK_STREAM;
        len = sizeof listening;
        bool is_listening = is_stream &&
                            ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
                            listening != 0;
        sockaddr_storage addr{};
        len = sizeof addr;
        bool is_inet = is_listening &&
                       ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
                       (addr.ss_family == AF_INET || addr.ss_family == AF_INET6);
        if (!is_inet) {
            env.error = "socket activation: descriptor " + std::to_string(fd) +
                        " is not a listening TCP socket (the .socket unit needs "
                        "ListenStream=ADDRESS:PORT)";
            if (flags >= 0) ::close(fd);
            env.listen_fd = -1;
        } else {
            ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID",
                             "LISTEN_FDS", "LISTEN_FDNAMES"})
        ::unsetenv(name);
    return env;
}

bool Notifier::notify(std::string_view state) const noexcept {
    if (socket_.empty()) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_.data(), socket_.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
    if (socket_[0] == '@') {
        addr.sun_path[0] = '\0';  // abstract namespace: no trailing NUL counted
    } else {
        len += 1;
    }
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    ssize_t n;
    do {
        n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&addr), len);
    } while (n < 0 && errno == EINTR);
    ::close(fd);
    return n == static_cast<ssize_t>(state.size());
}

bool Notifier::reloading() const noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    long long usec = static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
    return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

}  // namespace clayhook::systemd
