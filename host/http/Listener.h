#pragma once

// A listening HTTP server as its owner drives it: HttpServer (a thread per
// connection, TLS) and EventServer (epoll loops) both are one.

#include <chrono>
#include <cstdint>
#include <string>

namespace clayhook {

class Listener {
  public:
    virtual ~Listener() = default;
    // Binds (or adopts an inherited socket) and starts accepting. Throws
    // when it cannot.
    virtual void start() = 0;
    // Stops accepting; requests in flight finish and are answered (up to
    // `drain`), with `Connection: close`; idle connections are closed at
    // once, the rest when `drain` ends. Returns once no request is being
    // handled any more.
    virtual void stop(std::chrono::milliseconds drain) = 0;
    virtual uint16_t port() const = 0;
    // The address a local client reaches the listener at: the bound one, or
    // loopback for a wildcard (0.0.0.0, ::). Empty before start().
    virtual std::string local_host() const = 0;
    virtual bool stopping() const = 0;
};

}  // namespace clayhook
